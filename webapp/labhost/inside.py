"""Opening a path inside a lab host from the server, so that it resolves inside.

The server is the machine's root; a path like ``/proc/PID/root/run/docker.sock``
is resolved by the kernel with the server's view, so a symlink the lab host's
root planted there (``/run/docker.sock -> /run/containerd/...``) would lead
to the machine's own files and sockets. ``openat2(RESOLVE_IN_ROOT)`` makes the
lab host's root the root of the lookup: absolute symlinks and ``..`` stay
inside. What is found is then checked for its type and owner before use.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat

from . import records

SYS_OPENAT2 = 437            # the same on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_in(pid: int, path: str, flags: int, started: int | None = None) -> int:
    """A descriptor for ``path`` as the lab host whose PID 1 is ``pid`` sees it. With ``started`` (PID 1's
    start time), through a descriptor of its /proc dir checked to be that very process: a pid reused by
    another process after the lab host died leads nowhere."""
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if started is not None and records.start_time_in(proc) != started:
            raise ProcessLookupError(errno.ESRCH, f"process {pid} is not the lab host's PID 1 any more")
        root = os.open("root", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)
    try:
        flags |= os.O_CLOEXEC if flags & O_PATH else os.O_CLOEXEC | os.O_NOCTTY   # O_PATH takes no others
        how = _OpenHow(flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(SYS_OPENAT2, root, os.fsencode(path.lstrip("/") or "."), ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd
    finally:
        os.close(root)


def socket_fd(pid: int, path: str, owner: int, started: int | None = None) -> int:
    """An O_PATH descriptor of a unix socket of the lab host, owned by its root
    (``owner``, as the machine sees it); ``/proc/self/fd/N`` then names that
    very inode, for a client that wants a path."""
    fd = open_in(pid, path, O_PATH | os.O_NOFOLLOW, started)
    st = os.fstat(fd)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != owner:
        os.close(fd)
        raise PermissionError(f"{path} in the lab host is not a socket of its root")
    return fd


def connect_unix(pid: int, path: str, owner: int, timeout: float = 2.0, started: int | None = None) -> socket.socket:
    """A connection to a unix socket of the lab host (see ``socket_fd``)."""
    fd = socket_fd(pid, path, owner, started)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(f"/proc/self/fd/{fd}")   # the inode found, not the path again
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)


def read_tail(pid: int, path: str, limit: int, started: int | None = None) -> bytes:
    """The last ``limit`` bytes of a regular file of the lab host (never a FIFO or device)."""
    fd = open_in(pid, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, started)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"{path} in the lab host is not a regular file")
        os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    finally:
        os.close(fd)
