"""A bound on the PTYs each lab host holds, whichever devpts they come from.

The lab host's own devpts has ``max=`` (``labroot.py``), but root in a user
namespace may mount devpts instances of its own (runc does, for every
container), and those draw on the machine-wide pool that every other lab
host's terminals share (``kernel.pty.max - kernel.pty.reserve``). seccomp
cannot see a file system type, so the bound is kept where PTYs are opened:
two BPF LSM programs count, per lab host, the open files of PTY devices
(``/dev/ptmx`` and every devpts' ``ptmx``, their slaves, ``/dev/tty``), and
refuse an open past the lab host's cap with ENOSPC, as devpts does. A PTY
lives only while a file of it is open, so a lab host never holds more PTYs
than its cap.

A lab host is known by its uids (each has its own range of 65536, and nothing
in it can take an id outside): ``(uid - uid_base) >> 16`` is its slot. Files
opened by anything else (the machine, other containers) are not counted. The
programs and maps live as long as the process that made the lab hosts; a
new server reaps the lab hosts of one that died (``reaper.py``).
"""
from __future__ import annotations

import errno
import logging
import os
import struct
import threading

from . import bpf
from .bpf import (R0, R1, R2, R3, R4, R5, R6, R7, R8, R10, assemble, atomic_add32, call, exit_, jump_imm,
                  jump_reg, load, map_fd, mov, mov32, mov_imm, rsh_imm, store, add_imm)

TTY, PTMX = (5 << 20) | 0, (5 << 20) | 2        # kernel dev_t: major << 20 | minor
PTS_MAJOR = 136                                  # every devpts slave: 20 minor bits hold any index
SLOTS = 4096                                     # slots the counts array holds (uids up to 2^28 past the base)
RANGE_SHIFT = 16                                 # a lab host's uid range is 65536 ids
_SLOT = struct.Struct("=I")
_COUNT = struct.Struct("=IIQ")                   # held, cap, generation
_FILE = struct.Struct("=Q")                      # the struct file's address


class GuardError(RuntimeError):
    pass


def _open_program(counts: int, files: int, f_inode: int, i_rdev: int, uid_base: int) -> bytes:
    """file_open: a PTY file opened by a known lab host is counted, or refused past the cap."""
    return assemble([
        mov(R6, R1),
        load(8, R2, R1, 0),                      # file
        load(8, R3, R2, f_inode),
        load(4, R4, R3, i_rdev),
        jump_imm("==", R4, PTMX, "pty"),
        jump_imm("==", R4, TTY, "pty"),
        mov(R5, R4),
        rsh_imm(R5, 20),
        jump_imm("!=", R5, PTS_MAJOR, "allow"),
        "pty",
        call(bpf.GET_CURRENT_UID_GID),
        mov32(R0, R0),                           # the uid, in the machine's namespace
        jump_imm("<", R0, uid_base, "allow"),
        add_imm(R0, -uid_base),
        rsh_imm(R0, RANGE_SHIFT),
        store(4, R10, -4, R0),                   # slot
        map_fd(R1, counts),
        mov(R2, R10), add_imm(R2, -4),
        call(bpf.MAP_LOOKUP),
        jump_imm("==", R0, 0, "allow"),          # past the array: not a lab host of ours
        mov(R7, R0),
        load(4, R2, R7, 4),                      # cap; 0: the slot holds no lab host
        jump_imm("==", R2, 0, "allow"),
        load(8, R8, R7, 8),                      # its generation, read before counting
        mov_imm(R1, 1),
        atomic_add32(R7, 0, R1, fetch=True),     # R1 = held before this one
        jump_reg(">=", R1, R2, "refuse"),
        load(8, R3, R6, 0),
        store(8, R10, -16, R3),                  # key: the file
        load(4, R4, R10, -4),
        store(4, R10, -32, R4),                  # value: slot, 0, generation
        mov_imm(R4, 0),
        store(4, R10, -28, R4),
        store(8, R10, -24, R8),
        map_fd(R1, files),
        mov(R2, R10), add_imm(R2, -16),
        mov(R3, R10), add_imm(R3, -32),
        mov_imm(R4, 0),
        call(bpf.MAP_UPDATE),
        jump_imm("!=", R0, 0, "refuse"),         # no room to remember it: refuse rather than lose count
        "allow",
        mov_imm(R0, 0),
        exit_(),
        "refuse",
        mov_imm(R1, -1),
        atomic_add32(R7, 0, R1),
        mov_imm(R0, -errno.ENOSPC),
        exit_(),
    ])


def _free_program(counts: int, files: int) -> bytes:
    """file_free_security: a counted file going away gives its place back, exactly once."""
    return assemble([
        load(8, R1, R1, 0),
        store(8, R10, -8, R1),
        map_fd(R1, files),
        mov(R2, R10), add_imm(R2, -8),
        call(bpf.MAP_LOOKUP),
        jump_imm("==", R0, 0, "out"),
        load(4, R6, R0, 0),
        load(8, R7, R0, 8),
        store(4, R10, -12, R6),
        map_fd(R1, files),
        mov(R2, R10), add_imm(R2, -8),
        call(bpf.MAP_DELETE),
        jump_imm("!=", R0, 0, "out"),            # not deleted: not ours to give back
        map_fd(R1, counts),
        mov(R2, R10), add_imm(R2, -12),
        call(bpf.MAP_LOOKUP),
        jump_imm("==", R0, 0, "out"),
        load(8, R2, R0, 8),
        jump_reg("!=", R2, R7, "out"),           # a file of an earlier lab host in this slot
        mov_imm(R1, -1),
        atomic_add32(R0, 0, R1),
        "out",
        mov_imm(R0, 0),
        exit_(),
    ])


class PtyGuard:
    """The loaded programs and their maps, for lab hosts of one ``uid_base``."""

    def __init__(self, uid_base: int, max_files: int):
        if not 0 <= uid_base < 1 << 31:
            raise GuardError(f"uid_base {uid_base} is out of range for the PTY guard")
        self._lock = threading.Lock()
        self._generation = 0
        self._links: list[int] = []
        self.counts = bpf.Map("labnb_pty_count", _SLOT.size, _COUNT.size, SLOTS, bpf.MAP_TYPE_ARRAY)
        self.files = bpf.Map("labnb_pty_files", _FILE.size, _COUNT.size, max(64, max_files))
        try:
            btf = bpf.KernelBTF()
            f_inode, i_rdev = btf.offset("file", "f_inode"), btf.offset("inode", "i_rdev")
            self._links.append(bpf.load_lsm("labnb_pty_open", "file_open", _open_program(
                self.counts.fd, self.files.fd, f_inode, i_rdev, uid_base), btf))
            self._links.append(bpf.load_lsm("labnb_pty_free", "file_free_security",
                                            _free_program(self.counts.fd, self.files.fd), btf))
        except BaseException:
            self.close()
            raise

    def admit(self, slot: int, cap: int) -> int:
        """Count the PTY files of the lab host in ``slot`` from now on, at most ``cap``; its generation."""
        if not 0 <= slot < SLOTS or cap < 1:
            raise GuardError(f"the PTY guard holds slots 0 to {SLOTS - 1} and caps from 1 (slot {slot}, cap {cap})")
        with self._lock:
            self._generation += 1
            self.counts.update(_SLOT.pack(slot), _COUNT.pack(0, cap, self._generation))
            return self._generation

    def release(self, slot: int, generation: int) -> None:
        """Stop counting ``slot``, if it still holds the lab host of ``generation``."""
        with self._lock:
            raw = self.counts.lookup(_SLOT.pack(slot))
            if raw and _COUNT.unpack(raw)[2] == generation:
                self.counts.update(_SLOT.pack(slot), _COUNT.pack(0, 0, 0))

    def close(self) -> None:
        for fd in self._links:
            os.close(fd)
        self._links = []
        self.counts.close()
        self.files.close()


_guards: dict[int, PtyGuard | GuardError] = {}   # a failure is kept too: it is not retried per lab host
_guards_lock = threading.Lock()
_warned = False
log = logging.getLogger(__name__)


def warn_once(why: str) -> None:
    """Say once per process that lab hosts run without the bound (LABNB_PTY_GUARD=auto)."""
    global _warned
    if not _warned:
        _warned = True
        log.warning("%s; lab hosts run without a bound on PTYs from devpts instances they mount "
                    "themselves (docs/security.md, \"PTYs\")", why)


def for_settings(uid_base: int, max_lab_hosts: int, ptys: int) -> PtyGuard:
    """This process's guard for lab hosts of ``uid_base``, loaded on first use; GuardError if it cannot be."""
    with _guards_lock:
        guard = _guards.get(uid_base)
        if guard is None:
            try:
                guard = PtyGuard(uid_base, max_lab_hosts * ptys + 1024)
            except (OSError, LookupError, ValueError) as e:
                active = bpf.lsm_active()
                if active is False:
                    why = "the kernel does not run the BPF LSM (`bpf` is not in /sys/kernel/security/lsm)"
                elif isinstance(e, OSError) and e.errno == errno.EPERM:
                    why = ("the kernel refused a BPF LSM program (EPERM): a policy of this machine's "
                           "forbids them, or labnb does not run as the machine's root")
                else:
                    why = str(e).splitlines()[0]
                guard = GuardError(f"cannot load the PTY guard: {why}")
            _guards[uid_base] = guard
        if isinstance(guard, GuardError):
            raise GuardError(str(guard))
        return guard
