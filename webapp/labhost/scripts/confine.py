"""Confine a lab host: a seccomp filter, no_new_privs, rlimits.

``labroot.py finish`` calls ``confine()`` as PID 1 of a new lab host, before
any other process of it exists, so every process of the lab host inherits
all three. ``confine.py PROGRAM ARG...`` confines and execs (``labnb doctor``
checks the filter loads this way).

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
import sys

ALLOW = 0x7FFF0000
CMP_MASKED_EQ = 7
CLONE_NEWUSER = 0x10000000
NOFILE = 65536

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
    # no nested user namespaces: each one hands out a fresh set of capabilities
    # over new namespaces, the way most user-namespace kernel exploits begin
    newuser = ArgCmp(0, CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    rule(errno_action(errno.EPERM), "clone", newuser)
    rule(errno_action(errno.EPERM), "unshare", newuser)
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


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
