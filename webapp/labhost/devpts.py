"""A lab host's devpts instance, made by the server in the machine's mount namespace.

Why here and not in the lab host's own mount namespace: the kernel lets
only devpts instances made in the machine's initial mount namespace draw on
``kernel.pty.reserve``. Every other instance (one a learner mounts, and
every container's) shares ``kernel.pty.max - kernel.pty.reserve``: a lab
host that drains that pool then cannot starve the PTYs of other lab hosts'
runs and terminals. The instance is a detached mount (fsopen/fsmount, seen
nowhere) that ``labroot.py build`` moves onto the lab host's /dev/pts.
"""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432   # the same on every architecture
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 0, 1, 6
MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOEXEC = 0x2, 0x8


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"devpts: {what}: {os.strerror(err)}")
    return ret


def instance(gid: int, max_ptys: int) -> int:
    """A detached devpts mount (an fd) with ``max=max_ptys``, its PTYs in group ``gid``."""
    fs = _check(_libc.syscall(SYS_FSOPEN, b"devpts", FSOPEN_CLOEXEC), "fsopen")
    try:
        _check(_libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_FLAG, b"newinstance", None, 0), "newinstance")
        for key, value in (("ptmxmode", "0666"), ("mode", "0620"), ("gid", str(gid)), ("max", str(max_ptys))):
            _check(_libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key.encode(), value.encode(), 0), key)
        _check(_libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0), "create")
        return _check(_libc.syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC),
                      "fsmount")
    finally:
        os.close(fs)
