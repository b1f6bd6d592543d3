"""Confine a lab host: a seccomp filter, no_new_privs, rlimits, a bound on its network namespaces.

``labroot.py finish`` calls ``confine()`` as PID 1 of a new lab host, before
any other process of it exists, so every process of the lab host inherits
all three. ``confine.py PROGRAM ARG...`` confines and execs (``labnb doctor``
checks the filter loads this way). ``labroot.py build`` calls
``bound_namespaces()`` before the lab host's user namespace exists.

The filter is a deny list in the spirit of Docker's default profile, cut to
what the labs do not need: the lab host's root holds every capability in its
user namespace (``ip netns``, iptables and dockerd need CAP_NET_ADMIN and
CAP_SYS_ADMIN there), so the kernel interfaces below are the remaining
attack surface (docs/security.md lists them and why).
"""
import ctypes
import errno
import os
import resource
import socket
import sys

ALLOW = 0x7FFF0000
CMP_EQ, CMP_GT, CMP_MASKED_EQ = 4, 6, 7
CLONE_NEWUSER = 0x10000000
NOFILE = 65536
PR_SET_DUMPABLE = 4
# Network namespaces a lab host may hold at once, its own and its containers'
# included (as many as its network picture shows): each may hold conntrack
# entries (up to the machine's nf_conntrack_max), fragments and the like in
# kernel memory that no memory cgroup is charged for.
NET_NAMESPACES = 64
# The socket families a lab host may open: unix, IPv4 and IPv6, netlink (ip,
# iptables, ss, dockerd) and packet (tcpdump, arping, DHCP). Every other is
# refused as if the kernel lacked it: some are not namespaced and reach the
# machine itself (vsock's ports are the whole machine's: a lab host could take
# those of the guest's agents and talk to the hypervisor; alg is the kernel's
# crypto), the rest are rarely used kernel code that a socket() call has the
# machine load as a module, for everyone (rds, tipc, kcm, rxrpc, can, xdp...).
# Docker's default profile refuses vsock and alg. So are the IP protocols
# loaded that way: dccp, l2tp, sctp, udplite, smc (EPROTONOSUPPORT).
FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET)
PROTOCOLS = (33, 115, 132, 136, 256)

# refused with EPERM: kernel modules and kexec, bpf, io_uring, userfaultfd,
# perf, the kernel keyring's relatives, handles that bypass paths, clocks,
# accounting, swap, quotas, the kernel log, legacy and 32-bit-only calls
DENY = """
    bpf io_uring_setup io_uring_enter io_uring_register userfaultfd perf_event_open
    kexec_load kexec_file_load init_module finit_module delete_module create_module
    get_kernel_syms query_module open_by_handle_at lookup_dcookie acct swapon swapoff
    quotactl quotactl_fd reboot syslog clock_settime clock_adjtime settimeofday adjtimex
    stime nfsservctl uselib ustat sysfs _sysctl vm86 vm86old iopl ioperm fanotify_init
""".split()
# ENOSYS, so that callers fall back or carry on: runc ignores ENOSYS from
# keyctl (but fails on EPERM), glibc falls back from clone3 to clone, whose
# flags the filter can see
NOT_THERE = ["keyctl", "add_key", "request_key", "clone3"]


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def load_filter() -> None:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)   # Debian's libseccomp2 (find_library would fork)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")

    def rule(action, syscall, *cmps):
        nr = lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr < 0:   # not a system call of this architecture
            return
        array = (ArgCmp * len(cmps))(*cmps) if cmps else None
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
        if rc < 0:
            raise OSError(-rc, f"seccomp rule for {syscall}: {os.strerror(-rc)}")

    for syscall in DENY:
        rule(errno_action(errno.EPERM), syscall)
    for syscall in NOT_THERE:
        rule(errno_action(errno.ENOSYS), syscall)
    # A rule compares the whole 64-bit register, the kernel only its low 32
    # bits (an int): any value above the highest family allowed, with high
    # bits set or not, is refused, each lower one not allowed by itself.
    # (libseccomp takes one comparison per argument in a rule.)
    refused = errno_action(errno.EAFNOSUPPORT)
    for family in range(1, max(FAMILIES)):   # 0 is no family: the kernel refuses it
        if family not in FAMILIES:
            rule(refused, "socket", ArgCmp(0, CMP_EQ, family, 0))
    rule(refused, "socket", ArgCmp(0, CMP_GT, max(FAMILIES), 0))
    rule(refused, "socketpair", ArgCmp(0, CMP_GT, socket.AF_UNIX, 0))   # the only family with pairs here
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol in PROTOCOLS:
            rule(errno_action(errno.EPROTONOSUPPORT), "socket", ArgCmp(0, CMP_EQ, family, 0),
                 ArgCmp(2, CMP_MASKED_EQ, 0xFFFFFFFF, protocol))
    # no nested user namespaces: each one hands out a fresh set of capabilities
    # over new namespaces, the way most user-namespace kernel exploits begin
    newuser = ArgCmp(0, CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    rule(errno_action(errno.EPERM), "clone", newuser)
    rule(errno_action(errno.EPERM), "unshare", newuser)
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


def bound_namespaces() -> None:
    """Bound the network namespaces of a lab host, all its uids together, where it cannot raise the bound.

    Called as root of a user namespace made for the lab host, before the lab
    host's own is made inside it (``labroot.py build``). The kernel counts
    namespaces per uid of each user namespace and again, level by level, for
    the uid that made it in the one above, each up to that user namespace's
    own ``user.max_*_namespaces`` (kernel/ucount.c). The lab host's root may
    write those of its own user namespace, and has 65,536 uids there; those
    of this one it can neither see nor write.
    """
    with open("/proc/sys/user/max_net_namespaces", "w") as f:
        f.write(str(NET_NAMESPACES))
    # This process changed its ids to become this root, which made it not
    # dumpable: its /proc files are then the machine's root's, and the child
    # that maps the ids of the lab host's user namespace (this root) could not
    # write them. Nothing but the lab host's own ids can reach it.
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_DUMPABLE")


def confine() -> None:
    """no_new_privs, rlimits and the filter, for this process and all it will start."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:   # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cap = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (cap, cap))   # the server's is far higher
    load_filter()


def main() -> None:
    confine()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
