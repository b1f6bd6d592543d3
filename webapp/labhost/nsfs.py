"""Namespace descriptors: what kind a namespace is, and which user namespace owns it.

The server reads a lab host's network namespaces through descriptors: its
PID 1's, the ones its dockerd bind-mounts for containers, the ones
``ip netns`` keeps in ``/run/netns``. All but the first come from paths the
lab host's root controls, so each is checked before use: it must be a
namespace of the kind wanted (not a file planted there), owned by the lab
host's user namespace or one nested below it (never the machine's own).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import threading
from typing import Callable, TypeVar

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NS_GET_USERNS = 0xB701   # _IO(0xb7, 0x1): the user namespace that owns a namespace
NS_GET_PARENT = 0xB702   # a user namespace's parent
NS_GET_NSTYPE = 0xB703   # the CLONE_NEW* kind of a namespace
MAX_DEPTH = 33           # user namespaces nest at most 32 deep

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def kind(fd: int) -> int | None:
    """The ``CLONE_NEW*`` kind of the namespace ``fd`` refers to; None if it is not a namespace."""
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None


def identity(fd: int) -> tuple[int, int]:
    """What tells two namespaces apart: the nsfs inode (and its device)."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def owned_by(fd: int, userns: tuple[int, int]) -> bool:
    """Whether the namespace ``fd`` is owned by the user namespace ``userns`` (an ``identity``) or by one
    nested inside it."""
    owner = _ioctl_fd(fd, NS_GET_USERNS)
    for _ in range(MAX_DEPTH):
        if owner is None:
            return False
        try:
            if identity(owner) == userns:
                return True
            parent = _ioctl_fd(owner, NS_GET_PARENT)   # EPERM past the machine's own: not inside
        finally:
            os.close(owner)
        owner = parent
    if owner is not None:
        os.close(owner)
    return False


def _ioctl_fd(fd: int, request: int) -> int | None:
    try:
        return fcntl.ioctl(fd, request)
    except OSError:
        return None


def made_in(nsfds: list[int], make: Callable[[], T]) -> list[T | OSError]:
    """``make()`` called in each network namespace of ``nsfds`` in turn (or why it could not be), in
    order: a socket belongs to the namespace it was made in.

    A throwaway thread joins the namespaces (``setns`` moves only the calling thread) and ends with the
    job: no thread that serves anything ever leaves the server's namespace, and nothing is forked."""
    made: list = []

    def join_each() -> None:
        for fd in nsfds:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                made.append(OSError(err, f"cannot join the namespace: {os.strerror(err)}"))
                continue
            try:
                made.append(make())
            except OSError as e:
                made.append(e)

    thread = threading.Thread(target=join_each, name="netns-sockets", daemon=True)
    thread.start()
    thread.join()
    return made


def new_net(make: Callable[[], T]) -> tuple[int, T]:
    """A new network namespace of the server's (its descriptor, close-on-exec) with ``make()`` called in it:
    a throwaway thread unshares into it (``unshare`` moves only the calling thread), makes what it must
    there, opens the descriptor, and ends. The server never enters it, nothing is forked, and no process
    lives in it: the descriptor (and what ``make`` made there) alone keep it."""
    made: list = []

    def unshare() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"cannot make a network namespace: {os.strerror(err)}")
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                made.append((fd, make()))
            except BaseException:
                os.close(fd)
                raise
        except Exception as e:   # said in the server's thread
            made.append(e)

    thread = threading.Thread(target=unshare, name="netns-new", daemon=True)
    thread.start()
    thread.join()
    if isinstance(made[0], Exception):
        raise made[0]
    return made[0]
