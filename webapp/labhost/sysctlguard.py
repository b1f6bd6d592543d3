"""The network settings a lab host may not raise: what bounds kernel memory its namespaces hold uncharged.

Each network namespace keeps fragments waiting for reassembly in kernel
memory that no memory cgroup is charged for, up to its own
``ipfrag_high_thresh`` (4 MiB by default), for ``ipfrag_time``. Its owner
may raise both: a lab host set 2 GB and an hour in a namespace of its own,
and 60,000 fragments held 150 MB of the machine's memory while its memory
cgroup grew by nothing. seccomp cannot see which file a ``write`` goes to,
and root in a user namespace may mount a /proc of its own; so the bound is
kept where sysctls are written: a cgroup BPF program
(``BPF_PROG_TYPE_CGROUP_SYSCTL``) on the lab host's root-owned top refuses
its processes' writes to these (EPERM). The learner can neither detach it
(``bpf`` is refused by ``confine.py``) nor leave the subtree. It lives as
long as the cgroup it is attached to: nothing to keep open.

Such programs attach to cgroup2 only: the unified tree on v2, or the
``unified`` hierarchy of a v1 machine that mounts one (hybrid).
"""
from __future__ import annotations

import ctypes
import os
import struct

from . import bpf
from .bpf import R0, R1, R2, R3, R4, R6, R7, R10, add_imm, assemble, call, exit_, jump_imm, load, mov, mov_imm, store

PROG_TYPE_CGROUP_SYSCTL, ATTACH_CGROUP_SYSCTL, PROG_ATTACH = 23, 18, 8
SYSCTL_GET_NAME = 101            # bpf_sysctl_get_name(ctx, buf, size, flags): "net/ipv4/ipfrag_time"
NAME = 64                        # bytes of the name read: past every prefix below
# writes refused, by prefix of the sysctl's path under /proc/sys: reassembly
# of IPv4 and IPv6, and conntrack's of IPv6 (each its thresholds and time)
REFUSED = ("net/ipv4/ipfrag_", "net/ipv6/ip6frag_", "net/netfilter/nf_conntrack_frag6_")


def program() -> bytes:
    """Allow reads; refuse a write whose name starts with one of REFUSED."""
    parts = [
        mov(R6, R1),
        load(4, R0, R6, 0),                      # ctx->write
        jump_imm("==", R0, 0, "allow"),
        mov_imm(R7, 0),
        *(store(8, R10, -NAME + off, R7) for off in range(0, NAME, 8)),   # the helper wants it written
        mov(R1, R6),
        mov(R2, R10), add_imm(R2, -NAME),
        mov_imm(R3, NAME),
        mov_imm(R4, 0),                          # the full name
        call(SYSCTL_GET_NAME),                   # a longer name comes back cut: its prefix is all we read
    ]
    for n, prefix in enumerate(REFUSED):
        data, off = prefix.encode(), 0
        while off < len(data):
            size = next(s for s in (4, 2, 1) if off + s <= len(data))
            parts += [load(size, R3, R10, -NAME + off),
                      jump_imm("!=", R3, int.from_bytes(data[off:off + size], "little"), f"next{n}")]
            off += size
        parts += [mov_imm(R0, 0), exit_(), f"next{n}"]   # refused
    parts += ["allow", mov_imm(R0, 1), exit_()]
    return assemble(parts)


def attach(cgroup_dir: str) -> None:
    """Refuse the writes in REFUSED to every process in the cgroup2 dir ``cgroup_dir`` and below it."""
    code = program()
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 14)
    attr = bytearray(128)
    struct.pack_into("=IIQQIIQII16sII", attr, 0, PROG_TYPE_CGROUP_SYSCTL, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license), 1, len(log), ctypes.addressof(log),
                     0, 0, b"labnb_sysctl", 0, ATTACH_CGROUP_SYSCTL)
    try:
        prog = bpf.sys_bpf(bpf.PROG_LOAD, bytes(attr), "loading the sysctl guard")
    except bpf.BPFError as e:
        raise bpf.BPFError(e.errno, "loading the sysctl guard", log.value.decode("utf-8", "replace")[-2000:]) \
            from None
    try:
        target = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            bpf.sys_bpf(PROG_ATTACH, struct.pack("=IIII", target, prog, ATTACH_CGROUP_SYSCTL, 0).ljust(20, b"\0"),
                        f"attaching the sysctl guard to {cgroup_dir}")
        finally:
            os.close(target)
    finally:
        os.close(prog)
