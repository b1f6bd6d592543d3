"""On-disk records of sandbox lab hosts, so that an operator, or a server
restarted after a crash, can find and remove what an earlier server made.

``<state_dir>/hosts/<id>/meta.json`` describes a lab host;
``<state_dir>/slots/<n>`` reserves uid range n (made with O_EXCL: atomic
across processes).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets

RANGE = 65536          # ids per slot: a lab host maps root to the first of its range
HOSTS = "hosts"
SLOTS = "slots"


def id_prefix(state_dir: str) -> str:
    """``lh-<tag>-``, the tag naming the state dir: lab hosts of different state
    dirs (two servers, a test run beside a server) share the cgroup tree, and
    each reaper must only ever touch its own."""
    tag = hashlib.sha256(os.path.realpath(state_dir).encode()).hexdigest()[:6]
    return f"lh-{tag}-"


def new_id(state_dir: str) -> str:
    return id_prefix(state_dir) + secrets.token_hex(3)


def host_dir(state_dir: str, lab_host_id: str) -> str:
    return os.path.join(state_dir, HOSTS, lab_host_id)


UIDS = "/run/labnb-uids"   # machine-wide: uid ranges in use, whatever the state dir


def reserve_slot(state_dir: str, lab_host_id: str, max_slots: int, first_uid) -> int:
    """The lowest slot free in this state dir whose uid range (``first_uid(slot)``)
    no lab host of another state dir uses; raise RuntimeError when none is.

    Two lab hosts with the same uid range could read each other's files, so
    the range is also claimed machine-wide, in /run (cleared at boot, as are
    lab hosts).
    """
    d = os.path.join(state_dir, SLOTS)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.makedirs(UIDS, mode=0o700, exist_ok=True)
    for n in range(max_slots):
        if not _claim(os.path.join(d, str(n)), lab_host_id):
            continue
        if _claim(os.path.join(UIDS, str(first_uid(n))), f"{os.path.realpath(state_dir)} {n}"):
            return n
        os.unlink(os.path.join(d, str(n)))
    raise RuntimeError(f"all {max_slots} lab host slots are taken")


def _claim(path: str, content: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return True


def release_slot(state_dir: str, slot: int, first_uid: int) -> None:
    for path in (os.path.join(state_dir, SLOTS, str(slot)), os.path.join(UIDS, str(first_uid))):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def write(state_dir: str, meta: dict) -> None:
    path = os.path.join(host_dir(state_dir, meta["id"]), "meta.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, path)


def read_all(state_dir: str) -> list[dict]:
    """Every recorded lab host; a dir without a readable record still shows, by id."""
    root = os.path.join(state_dir, HOSTS)
    if not os.path.isdir(root):
        return []
    found = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        try:
            with open(os.path.join(entry.path, "meta.json")) as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            found.append({"id": entry.name})
    return found


def slots_of(state_dir: str) -> dict[str, int]:
    """Lab host id -> slot, read from the slot files."""
    d = os.path.join(state_dir, SLOTS)
    if not os.path.isdir(d):
        return {}
    found = {}
    for name in os.listdir(d):
        try:
            with open(os.path.join(d, name)) as f:
                found[f.read().strip()] = int(name)
        except (OSError, ValueError):
            pass
    return found


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """True if ``pid`` runs (a zombie has ended) and is the same process
    (same start time) as recorded."""
    if not pid:
        return False
    try:
        state, started = _stat(pid)
    except OSError:
        return False
    return state not in "ZX" and (start_time is None or started == start_time)


def process_start_time(pid: int) -> int:
    """Start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    return _stat(pid)[1]


def start_time_in(proc_dir: int) -> int:
    """The start time of the process whose /proc dir ``proc_dir`` is open."""
    fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    with open(fd) as f:
        return _fields(f.read())[1]


def _stat(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        return _fields(f.read())


def _fields(stat: str) -> tuple[str, int]:
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])
