"""Runs inside a lab host (and, to probe, on the machine): take a kernel count that is kept per user.

    python3 - KIND hold CEILING HOLD_SECONDS
    python3 - KIND probe

KIND is one of:

- ``inotify``: inotify instances (``fs.inotify.max_user_instances``);
- ``mqueue``: POSIX message queues of 10 messages of 8 KiB (RLIMIT_MSGQUEUE);
- ``sigpending``: real-time signals queued to itself and blocked (RLIMIT_SIGPENDING);
- ``memlock``: SysV shared memory segments locked with SHM_LOCK (RLIMIT_MEMLOCK), each by
  another uid of the lab host's own, as much as one uid may lock: what the uids of a user namespace
  lock is charged again to its creator, up to the creator's RLIMIT_MEMLOCK read as pages (the
  kernel stores bytes there). The segments are never touched: they cost no memory.

``hold`` takes one after another until the kernel refuses one (or CEILING), prints one line
``HOG {"kind": ..., "held": N, "stopped_by": ERRNO or "ceiling"}`` and holds them for HOLD_SECONDS
(or until killed). Nothing outlives the process: queues and segments are unlinked or marked for
removal as soon as they are made. ``probe`` takes one and prints ``PROBE ok`` or ``PROBE ERRNO``.
"""
import ctypes
import errno
import json
import os
import resource
import signal
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IN_CLOEXEC = 0o2000000
IPC_PRIVATE, IPC_CREAT, SHM_NORESERVE, IPC_RMID, SHM_LOCK = 0, 0o1000, 0o10000, 0, 11
PAGE = os.sysconf("SC_PAGE_SIZE")
MEMLOCK = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
SEGMENT = MEMLOCK if 0 < MEMLOCK <= 64 << 20 else 8 << 20   # what one uid may lock


class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long),
                ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]


def check(rc: int) -> int:
    if rc == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return rc


def inotify(n: int) -> None:
    check(libc.inotify_init1(IN_CLOEXEC))


def mqueue(n: int) -> None:
    name = f"/labnb-hog-{os.getpid()}-{n}".encode()
    attr = MqAttr(0, 10, 8192, 0)
    check(libc.mq_open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, ctypes.c_uint(0o600), ctypes.byref(attr)))
    check(libc.mq_unlink(name))   # the queue (and its charge) lives while its descriptor is open


def sigpending(n: int) -> None:
    check(libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_long(n)))


def locked_segment(size: int) -> int:
    shm = check(libc.shmget(IPC_PRIVATE, size, IPC_CREAT | SHM_NORESERVE | 0o600))
    try:
        check(libc.shmctl(shm, SHM_LOCK, None))
    except OSError:
        libc.shmctl(shm, IPC_RMID, None)
        raise
    return shm


def memlock(n: int) -> None:
    """Uid n + 1 locks a segment (in a child); this process, root here, attaches it and marks it for
    removal, so that it lives, locked, while this process does."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setresuid(n + 1, n + 1, n + 1)
            os.write(w, str(locked_segment(SEGMENT)).encode())
        except OSError as e:
            os.write(w, str(-e.errno).encode())
        os._exit(0)
    os.close(w)
    got = int(os.read(r, 64) or -errno.EIO)
    os.close(r)
    os.waitpid(child, 0)
    if got < 0:
        raise OSError(-got, os.strerror(-got))
    attached = libc.shmat(got, None, 0)
    libc.shmctl(got, IPC_RMID, None)
    if attached in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "shmat")


KINDS = {"inotify": inotify, "mqueue": mqueue, "sigpending": sigpending, "memlock": memlock}
PROBES = {**KINDS, "memlock": lambda n: libc.shmctl(locked_segment(PAGE), IPC_RMID, None)}


def main() -> None:
    kind, mode = sys.argv[1], sys.argv[2]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})   # queued signals stay pending
    if mode == "probe":
        try:
            PROBES[kind](0)
            print("PROBE ok", flush=True)
        except OSError as e:
            print(f"PROBE {errno.errorcode.get(e.errno, e.errno)}", flush=True)
        return
    ceiling, hold = int(sys.argv[3]), float(sys.argv[4])
    if kind == "memlock":
        ceiling = min(ceiling, 65535)   # a uid each
        with open("/proc/sys/kernel/shmmni", "w") as f:
            f.write("32768")   # this ipc namespace's own: past the 4096 segments the kernel's bound needs
    held, stopped_by = 0, "ceiling"
    while held < ceiling:
        try:
            KINDS[kind](held)
        except OSError as e:
            stopped_by = errno.errorcode.get(e.errno, str(e.errno))
            break
        held += 1
    print("HOG " + json.dumps({"kind": kind, "held": held, "stopped_by": stopped_by}), flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main()
