"""Just enough of bpf(2) to load a BPF LSM program from Python: the system
call, hash maps, an instruction encoder, and member offsets read from the
kernel's own BTF (/sys/kernel/btf/vmlinux).

Why by hand: the guard in ``ptyguard.py`` is some forty instructions, and
Debian's kernels run BPF LSM by default; a compiler (clang), libbpf or bcc on
every workshop machine would cost far more than this module.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)

MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, PROG_LOAD = 0, 1, 2, 5
RAW_TRACEPOINT_OPEN = 17
MAP_TYPE_HASH, MAP_TYPE_ARRAY = 1, 2
PROG_TYPE_LSM, ATTACH_LSM_MAC = 29, 27
PSEUDO_MAP_FD = 1
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

# helpers
MAP_LOOKUP, MAP_UPDATE, MAP_DELETE, GET_CURRENT_UID_GID = 1, 2, 3, 15

# registers
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)


class BPFError(OSError):
    """bpf(2) refused; ``log`` holds the verifier's words when a program was refused."""

    def __init__(self, err: int, what: str, log: str = ""):
        super().__init__(err, f"{what}: {os.strerror(err)}" + (f"\n{log}" if log else ""))
        self.log = log


def sys_bpf(cmd: int, attr: bytes, what: str) -> int:
    if _SYS_BPF is None:
        raise BPFError(errno.ENOSYS, f"{what}: bpf(2) on {os.uname().machine} is not known here")
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        raise BPFError(ctypes.get_errno(), what)
    return ret


def _addr(buf) -> int:
    return ctypes.addressof(buf)


class Map:
    """A BPF map of fixed-size keys and values: a hash (preallocated: no allocation
    in a hook) or an array (u32 index keys; its elements never move)."""

    def __init__(self, name: str, key_size: int, value_size: int, max_entries: int, kind: int = MAP_TYPE_HASH):
        self.key_size, self.value_size = key_size, value_size
        attr = struct.pack("=IIIIIII16s", kind, key_size, value_size, max_entries, 0, 0, 0,
                           name.encode()[:15]).ljust(72, b"\0")
        self.fd = sys_bpf(MAP_CREATE, attr, f"creating BPF map {name}")

    def _elem(self, cmd: int, key: bytes, value: bytes, what: str) -> bytes:
        """Update from ``value``, or look up into it; the value buffer after the call."""
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(value, self.value_size)
        sys_bpf(cmd, struct.pack("=IIQQQ", self.fd, 0, _addr(k), _addr(v), 0), what)
        return v.raw

    def update(self, key: bytes, value: bytes) -> None:
        self._elem(MAP_UPDATE_ELEM, key, value, "updating a BPF map")

    def lookup(self, key: bytes) -> bytes | None:
        try:
            return self._elem(MAP_LOOKUP_ELEM, key, b"", "reading a BPF map")
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- instructions -----------------------------------------------------------------------

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov(dst: int, src: int) -> bytes:         # dst = src (64 bit)
    return _insn(0xbf, dst, src)


def mov_imm(dst: int, imm: int) -> bytes:
    return _insn(0xb7, dst, imm=imm)


def mov32(dst: int, src: int) -> bytes:       # dst = (u32) src
    return _insn(0xbc, dst, src)


def add_imm(dst: int, imm: int) -> bytes:
    return _insn(0x07, dst, imm=imm)


def rsh_imm(dst: int, imm: int) -> bytes:
    return _insn(0x77, dst, imm=imm)


def load(size: int, dst: int, src: int, off: int) -> bytes:    # dst = *(size *)(src + off)
    return _insn(0x61 | {4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18}[size], dst, src, off)


def store(size: int, dst: int, off: int, src: int) -> bytes:   # *(size *)(dst + off) = src
    return _insn(0x63 | {4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18}[size], dst, src, off)


def atomic_add32(dst: int, off: int, src: int, fetch: bool = False) -> bytes:
    """Locked ``*(u32 *)(dst + off) += src``; with ``fetch`` the old value lands in ``src``."""
    return _insn(0xc3, dst, src, off, 0x01 if fetch else 0x00)


def map_fd(dst: int, fd: int) -> bytes:       # the two-slot load of a map's address
    return _insn(0x18, dst, PSEUDO_MAP_FD, 0, fd) + _insn(0, 0, 0, 0, 0)


def call(helper: int) -> bytes:
    return _insn(0x85, imm=helper)


def exit_() -> bytes:
    return _insn(0x95)


_JUMPS = {"==": 0x10, ">": 0x20, ">=": 0x30, "!=": 0x50, "<": 0xa0, "<=": 0xb0}


def jump_imm(op: str, dst: int, imm: int, label: str) -> tuple:
    """An unsigned compare against a constant; resolved by ``assemble``."""
    return ("jump", 0x05 | _JUMPS[op], dst, 0, imm, label)


def jump_reg(op: str, dst: int, src: int, label: str) -> tuple:
    return ("jump", 0x0d | _JUMPS[op], dst, src, 0, label)


def assemble(parts: list) -> bytes:
    """Instructions (bytes), labels (str) and jumps (tuples) to a program."""
    where, slot = {}, 0
    for p in parts:
        if isinstance(p, str):
            where[p] = slot
        else:
            slot += 1 if isinstance(p, tuple) else len(p) // 8
    out, slot = [], 0
    for p in parts:
        if isinstance(p, str):
            continue
        if isinstance(p, tuple):
            _, code, dst, src, imm, label = p
            out.append(_insn(code, dst, src, where[label] - slot - 1, imm))
            slot += 1
        else:
            out.append(p)
            slot += len(p) // 8
    return b"".join(out)


# -- programs ---------------------------------------------------------------------------

def load_lsm(name: str, hook: str, program: bytes, btf: "KernelBTF") -> int:
    """Load ``program`` for LSM hook ``hook`` and attach it; the link's fd.

    The program runs until the fd is closed (or the process dies).
    """
    target = btf.func_id("bpf_lsm_" + hook)
    insns = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = bytearray(128)
    struct.pack_into("=IIQQIIQII16sII", attr, 0, PROG_TYPE_LSM, len(program) // 8, _addr(insns),
                     _addr(license), 1, len(log), _addr(log), 0, 0, name.encode()[:15], 0, ATTACH_LSM_MAC)
    struct.pack_into("=I", attr, 108, target)
    try:
        prog = sys_bpf(PROG_LOAD, bytes(attr), f"loading BPF LSM program {name} for {hook}")
    except BPFError as e:
        raise BPFError(e.errno, f"loading BPF LSM program {name} for {hook}",
                       log.value.decode("utf-8", "replace")[-4000:]) from None
    try:
        return sys_bpf(RAW_TRACEPOINT_OPEN, struct.pack("=QI", 0, prog).ljust(16, b"\0"),
                       f"attaching BPF LSM program {name} to {hook}")
    finally:
        os.close(prog)


def lsm_active() -> bool | None:
    """Whether the kernel runs BPF LSM (``bpf`` in its LSM list); None when it cannot be read."""
    try:
        with open("/sys/kernel/security/lsm") as f:
            return "bpf" in f.read().strip().split(",")
    except OSError:
        return None


# -- the kernel's BTF ----------------------------------------------------------------------

_KIND_STRUCT, _KIND_UNION, _KIND_FUNC = 4, 5, 12
# bytes that follow each kind's 12-byte header, fixed or per member (vlen)
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}
_PER_MEMBER = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}


class KernelBTF:
    """The named functions and struct members of the running kernel's BTF."""

    def __init__(self, path: str = VMLINUX_BTF):
        with open(path, "rb") as f:
            data = f.read()
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from("<HBBIIIII", data)
        if magic != 0xEB9F:
            raise ValueError(f"{path} is not BTF")
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self._strings = data[hdr_len + str_off:]
        self._types: list = [None]   # ids start at 1: (kind, name_off, members or None)
        self._by_name: dict[tuple[int, int], int] = {}   # (kind, name offset): id
        header, member = struct.Struct("<III"), struct.Struct("<III")
        pos, end = 0, len(types)
        while pos < end:
            name_off, info, _size = header.unpack_from(types, pos)
            kind, vlen = (info >> 24) & 0x1f, info & 0xffff
            pos += 12
            members = None
            if kind in (_KIND_STRUCT, _KIND_UNION):
                members = (pos, vlen, info >> 31)   # parsed when asked for
                pos += 12 * vlen
            else:
                pos += _FIXED.get(kind, 0) + _PER_MEMBER.get(kind, 0) * vlen
            self._types.append((kind, name_off, members))
            if kind in (_KIND_STRUCT, _KIND_FUNC) and name_off:
                self._by_name.setdefault((kind, name_off), len(self._types) - 1)
        self._raw, self._member = types, member

    def _name_off(self, name: str) -> int:
        at = self._strings.find(b"\0" + name.encode() + b"\0")
        return at + 1 if at >= 0 else -1

    def _members(self, type_id: int):
        _, _, where = self._types[type_id]
        if where is None:
            return ()
        pos, vlen, kflag = where
        for i in range(vlen):
            m_name, m_type, m_off = self._member.unpack_from(self._raw, pos + 12 * i)
            yield m_name, m_type, (m_off & 0xffffff) if kflag else m_off

    def func_id(self, name: str) -> int:
        try:
            return self._by_name[(_KIND_FUNC, self._name_off(name))]
        except KeyError:
            raise LookupError(f"the kernel has no BTF function {name}") from None

    def offset(self, struct_name: str, member: str) -> int:
        """Byte offset of ``member`` in ``struct struct_name``, through anonymous unions."""
        type_id = self._by_name.get((_KIND_STRUCT, self._name_off(struct_name)))
        found = self._find(type_id, self._name_off(member)) if type_id else None
        if found is None:
            raise LookupError(f"the kernel's struct {struct_name} has no member {member}")
        return found // 8

    def _find(self, type_id: int, member: int, depth: int = 0) -> int | None:
        for m_name, m_type, bit_off in self._members(type_id):
            if m_name == member:
                return bit_off
            if not m_name and depth < 8 and self._types[m_type][0] in (_KIND_STRUCT, _KIND_UNION):
                found = self._find(m_type, member, depth + 1)
                if found is not None:
                    return bit_off + found
        return None
