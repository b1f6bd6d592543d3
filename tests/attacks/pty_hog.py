"""Runs inside a lab host: open PTY masters until the kernel refuses one, and hold them.

    python3 - PTMX CEILING HOLD_SECONDS [master|peer]

Opens PTMX (``/dev/ptmx``, or the ptmx of a devpts of its own) over and
over, one descriptor per PTY, never more than CEILING. With ``peer`` it
keeps only each PTY's slave (TIOCGPTPEER), closing the master: a PTY lives
while either end is open. When it runs out of
descriptors (EMFILE) it forks: the child keeps the PTYs opened so far and
the parent closes its copies and carries on. Prints one line
``HOG {"held": N, "stopped_by": ERRNO or "ceiling", ...}`` and holds the PTYs
for HOLD_SECONDS (or until killed).
"""
import ctypes
import errno
import fcntl
import json
import os
import resource
import sys
import time

ptmx, ceiling, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
peer = sys.argv[4:] == ["peer"]
TIOCSPTLCK, TIOCGPTPEER = 0x40045431, 0x5441
libc = ctypes.CDLL(None, use_errno=True)


def open_pty() -> int:
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY)
    if not peer:
        return master
    try:
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
        slave = libc.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        if slave < 0:
            raise OSError(ctypes.get_errno(), "TIOCGPTPEER")
        return slave
    finally:
        os.close(master)


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except (ValueError, OSError):
    pass
held, mine, holders, stopped_by = 0, [], [], "ceiling"
deadline = time.monotonic() + 120
while held < ceiling:
    try:
        mine.append(open_pty())
        held += 1
    except OSError as e:
        if e.errno == errno.EMFILE and mine:
            pid = os.fork()
            if pid == 0:   # the holder of what is open so far
                end = time.monotonic() + hold + 120
                while time.monotonic() < end and os.getppid() != 1:
                    time.sleep(0.2)
                os._exit(0)
            holders.append(pid)
            for fd in mine:
                os.close(fd)
            mine = []
            continue
        stopped_by = errno.errorcode.get(e.errno, str(e.errno))
        break
print("HOG " + json.dumps({"held": held, "stopped_by": stopped_by, "holders": len(holders), "peer": peer,
                           "nofile": [soft, hard]}), flush=True)
time.sleep(hold)
for pid in holders:
    os.kill(pid, 9)
print("HOG-RELEASED", flush=True)
