"""Opening a path inside a lab host from the server, so that it resolves inside.

The server is the machine's root; a path like ``/proc/PID/root/run/docker.sock``
is resolved by the kernel with the server's view, so a symlink the lab host's
root planted there (``/run/docker.sock -> /run/containerd/...``) would lead
to the machine's own files and sockets. ``openat2(RESOLVE_IN_ROOT)`` makes the
lab host's root the root of the lookup: absolute symlinks and ``..`` stay
inside. It does not stop at mount points, and the lab host's root may mount:
``mount --bind /etc/shadow /run/labnb/dockerd.log`` (the machine's /etc is
bound into it read-only, and a bind needs no right to read) would have the
server read the machine's file. So what is opened must be the lab host's own:
the path's top directory a filesystem of its own (``/run``, whose root its
root owns; never a bind of the machine's), the rest found beneath it (no
absolute symlink, no ``..`` above it), and what is found on that very
filesystem (its device) and owned by one of the lab host's ids. Not
RESOLVE_NO_XDEV: ``ip netns`` binds /run/netns onto itself, a mount point on
the same filesystem. A namespace file is the one exception, a bind mount by
design (``ip netns``, dockerd): opened O_PATH, and only if it is one; whose
it is, is the caller's check (``nsfs.owned_by``).
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
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000
NSFS = os.stat("/proc/self/ns/net").st_dev   # the one device of every namespace file

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    fd = _libc.syscall(SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def open_in(pid: int, path: str, flags: int, started: int | None = None, *, owner: int) -> int:
    """A descriptor for ``path`` as the lab host whose PID 1 is ``pid`` sees it, and the lab host's own (see
    above: ``owner`` is its root's uid as the machine sees it); with O_PATH, also a namespace file. With
    ``started`` (PID 1's start time), through a descriptor of its /proc dir checked to be that very process: a
    pid reused by another process after the lab host died leads nowhere."""
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if started is not None and records.start_time_in(proc) != started:
            raise ProcessLookupError(errno.ESRCH, f"process {pid} is not the lab host's PID 1 any more")
        root = os.open("root", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)
    flags |= os.O_CLOEXEC if flags & O_PATH else os.O_CLOEXEC | os.O_NOCTTY   # O_PATH takes no others
    try:
        try:
            return _own(root, path, flags, owner)
        except OSError as refused:
            if not flags & O_PATH:
                raise
            try:
                fd = _openat2(root, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
            except OSError:
                raise refused from None
            if os.fstat(fd).st_dev != NSFS:
                os.close(fd)
                raise refused from None
            return fd
    finally:
        os.close(root)


def _own(root: int, path: str, flags: int, owner: int) -> int:
    """``path`` found on the filesystem of its top directory, which is the lab host's, and the lab host's."""
    top, _, rest = path.strip("/").partition("/")
    mount = _openat2(root, top or ".", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                     RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    try:
        if not _theirs(mount, owner):
            raise PermissionError(errno.EPERM, f"/{top} in the lab host is not a filesystem of its own", path)
        try:
            fd = _openat2(mount, rest or ".", flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            raise PermissionError(errno.EPERM, f"it leads out of /{top} in the lab host (an absolute symlink or "
                                               "a .. on the way)", path) from None
        if os.fstat(fd).st_dev != os.fstat(mount).st_dev or not _theirs(fd, owner):
            os.close(fd)
            raise PermissionError(errno.EPERM, f"it is not the lab host's: another filesystem than its /{top} "
                                               "(mounted there), or none of its ids owns it", path)
        return fd
    finally:
        os.close(mount)


def _theirs(fd: int, owner: int) -> bool:
    return owner <= os.fstat(fd).st_uid < owner + records.RANGE


def socket_fd(pid: int, path: str, owner: int, started: int | None = None) -> int:
    """An O_PATH descriptor of a unix socket of the lab host, owned by its root
    (``owner``, as the machine sees it); ``/proc/self/fd/N`` then names that
    very inode, for a client that wants a path."""
    fd = open_in(pid, path, O_PATH | os.O_NOFOLLOW, started, owner=owner)
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


def read_tail(pid: int, path: str, limit: int, started: int | None = None, *, owner: int) -> bytes:
    """The last ``limit`` bytes of a regular file of the lab host (never a FIFO or device)."""
    fd = open_in(pid, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, started, owner=owner)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"{path} in the lab host is not a regular file")
        os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    finally:
        os.close(fd)
