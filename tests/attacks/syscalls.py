"""Runs inside a lab host: call system calls a lab does not need, by number (x86_64), and
print ``SYSCALLS {json}``: for each, the return value and errno name.

The arguments are chosen so that, where the kernel allows it, an unfiltered
call does something else than fail with EPERM/ENOSYS (succeeds, or EINVAL,
EFAULT, EBADF, ENOKEY), so that a refusal here is the filter's, not the
kernel's own; the calls the kernel refuses anyway to a user namespace's
root (modules, kexec, swap, acct) are listed in ``kernel_refuses_anyway``.
"""
import ctypes
import errno
import json
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L, S = ctypes.c_long, ctypes.c_char_p
params = ctypes.create_string_buffer(120)   # struct io_uring_params, zeroed
NULL = L(0)
CALLS = {
    "io_uring_setup": (425, L(1), params),
    "io_uring_enter": (426, L(-1), L(0), L(0), L(0), NULL, L(0)),
    "io_uring_register": (427, L(-1), L(0), NULL, L(0)),
    "bpf": (321, L(9999), NULL, L(0)),
    "userfaultfd": (323, L(1 | 0o2000000)),   # UFFD_USER_MODE_ONLY | O_CLOEXEC: allowed unprivileged
    "perf_event_open": (298, NULL, L(0), L(-1), L(-1), L(0)),
    "kexec_load": (246, L(0), L(0), NULL, L(0)),
    "kexec_file_load": (320, L(-1), L(-1), L(0), S(b""), L(0)),
    "init_module": (175, NULL, L(0), S(b"")),
    "finit_module": (313, L(-1), S(b""), L(0)),
    "delete_module": (176, S(b"labnb_no_such_module"), L(0)),
    "keyctl": (250, L(0), L(-3), L(0)),            # KEYCTL_GET_KEYRING_ID, session keyring
    "add_key": (248, S(b"user"), S(b"labnb-probe"), S(b"x"), L(1), L(-2)),
    "request_key": (249, S(b"user"), S(b"labnb-absent"), NULL, L(0)),
    "open_by_handle_at": (304, L(-1), NULL, L(0)),
    "swapon": (167, S(b"/labnb-no-such-swap"), L(0)),
    "swapoff": (168, S(b"/labnb-no-such-swap")),
    "reboot": (169, L(0), L(0), L(0), NULL),       # bad magic: EINVAL once past the capability check
    "acct": (163, NULL),
    "lookup_dcookie": (212, L(0), NULL, L(0)),
}
KERNEL_REFUSES_ANYWAY = ["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                         "swapon", "swapoff", "acct"]
result = {}
for name, (nr, *args) in CALLS.items():
    ctypes.set_errno(0)
    ret = libc.syscall(L(nr), *args)
    err = ctypes.get_errno()
    if ret >= 0 and name in ("io_uring_setup", "userfaultfd"):
        os.close(ret)
    result[name] = [ret, errno.errorcode.get(err, str(err)) if ret < 0 else None]
seccomp = [line.split(":", 1)[1].strip() for line in open("/proc/self/status")
           if line.startswith(("Seccomp:", "Seccomp_filters:"))]
print("SYSCALLS " + json.dumps({"calls": result, "seccomp": seccomp,
                                "kernel_refuses_anyway": KERNEL_REFUSES_ANYWAY}), flush=True)
