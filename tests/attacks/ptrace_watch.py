"""Runs inside a lab host, as its root: watch for every new process and try to ptrace it.

    python3 - OUT STOP

Scans /proc in a tight loop. For each pid seen for the first time it reads
the Uid:/Gid: lines of /proc/PID/status (a process whose ids are not mapped
into the lab host's user namespace shows the overflow id 65534) and tries
PTRACE_SEIZE on it; a seized process is interrupted and detached again at
once (re-injecting a signal it was stopped for), so the commands it watches
go on. Until the file STOP exists; then it writes its findings to OUT as JSON.
"""
import ctypes
import errno
import json
import os
import signal
import sys
import time

OVERFLOW = "65534"
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000

out, stop = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("Name", "Uid", "Gid", "NSpid"):
            fields[key] = value.split()
    return fields


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError as e:
        return f"({e.strerror})"


def outside(st):
    return st is not None and (OVERFLOW in st.get("Uid", []) or OVERFLOW in st.get("Gid", []))


def release(pid):
    """Interrupt the seized process, wait for its stop, detach."""
    libc.ptrace(PTRACE_INTERRUPT, pid, None, None)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            wpid, st = os.waitpid(pid, os.WNOHANG | WALL)
        except ChildProcessError:
            return
        if wpid == 0:
            time.sleep(0.0002)
            continue
        if os.WIFSTOPPED(st):
            sig, event = os.WSTOPSIG(st), st >> 16
            inject = sig if event == 0 and sig != signal.SIGTRAP else 0
            libc.ptrace(PTRACE_DETACH, pid, None, ctypes.c_void_p(inject))
        return


me = os.getpid()
seen = set()
seized = 0
refused = {}
violations = []
loops = 0
started = time.monotonic()
while not os.path.exists(stop):
    loops += 1
    try:
        names = os.listdir("/proc")
    except OSError:
        continue
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in seen or pid == me:
            continue
        seen.add(pid)
        first = status(pid)          # as soon as it is seen
        rc = libc.ptrace(PTRACE_SEIZE, pid, None, None)
        err = ctypes.get_errno()
        after = status(pid) if rc == 0 else None
        if rc == 0:
            seized += 1
            release(pid)
        else:
            ename = errno.errorcode.get(err, str(err))
            refused[ename] = refused.get(ename, 0) + 1
        if outside(first) or outside(after):   # one record per process
            violations.append({
                "pid": pid, "status": first, "status_seized": after, "cmdline": cmdline(pid),
                "seize": "ok" if rc == 0 else errno.errorcode.get(err, str(err)),
                "what": "seized a process owned by an id outside the lab host" if rc == 0
                        else "process owned by an id outside the lab host's range"})

report = {"new_processes": len(seen), "seized": seized, "seize_refused": refused, "loops": loops,
          "seconds": round(time.monotonic() - started, 1), "violations": violations}
with open(out + ".tmp", "w") as f:
    json.dump(report, f)
os.rename(out + ".tmp", out)
print("WATCHER-DONE", len(seen), len(violations))
