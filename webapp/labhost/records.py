"""On-disk records of sandbox lab hosts, so that an operator, or a server
restarted after a crash, can find and remove what an earlier server made.

``<state_dir>/hosts/<id>/meta.json`` describes a lab host;
``<state_dir>/slots/<n>`` reserves uid range n (made with O_EXCL: atomic
across processes); ``<state_dir>/sets/<id>.json`` describes a learner's set
of lab hosts and its lab network (labnet.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets

from . import subids
from .errors import CannotMake, LabHostError
from .subids import RANGE, RANGES

HOSTS = "hosts"
SLOTS = "slots"
SETS = "sets"
ID_BYTES = 3       # of randomness at the end of a lab host's id


def id_prefix(state_dir: str, node: str = "") -> str:
    """``lh-<tag>-``, the tag naming the state dir: lab hosts of different state
    dirs (two servers, a test run beside a server) share the cgroup tree, and
    each reaper must only ever touch its own. A cluster's node (``node``, LABNB_NODE) puts its name first,
    ``lh-<node>-<tag>-``: HAProxy routes a web service's host name to the node by ``lh-<node>-``, and the tag
    still tells apart two state dirs of one machine even if their nodes had the same name."""
    tag = hashlib.sha256(os.path.realpath(state_dir).encode()).hexdigest()[:6]
    return f"lh-{node}-{tag}-" if node else f"lh-{tag}-"


def new_id(state_dir: str, node: str = "") -> str:
    return id_prefix(state_dir, node) + secrets.token_hex(ID_BYTES)


def own(prefix: str, lab_host_id: str) -> bool:
    """Whether ``lab_host_id`` was made under ``prefix`` (``id_prefix``), not merely starts with it: a node
    named as another state dir's tag (``lh-abc123-<tag>-...``) starts with that state dir's prefix too."""
    rest = lab_host_id[len(prefix):] if lab_host_id.startswith(prefix) else ""
    return len(rest) == 2 * ID_BYTES and all(c in "0123456789abcdef" for c in rest)


def host_dir(state_dir: str, lab_host_id: str) -> str:
    return os.path.join(state_dir, HOSTS, lab_host_id)


UIDS = "/run/labnb-uids"   # machine-wide: uid ranges in use, whatever the state dir
SUBUID = subids.FILES[0]   # root's entry there says how many ranges lab hosts may use (subids.py)


def machine_ranges(uid_base: int, subuid: str = SUBUID) -> tuple[int, str]:
    """How many uid ranges from ``uid_base`` the lab hosts of every server on this machine may use, and where
    that number comes from: root's entry in /etc/subuid that holds ``uid_base`` (scripts/setup.sh sizes it to
    the machine's memory), else RANGES; never over another entry, nor to uid 2^32 - 1 (``subids.room``).
    A server's LABNB_MAX_LAB_HOSTS past them gets no more: its lab host past them is refused, saying so."""
    try:
        entries = subids.read(subuid)[1]
    except OSError:
        entries = []
    own = subids.holder(entries, uid_base)
    if own:
        ranges, source = (own.end - uid_base) // RANGE, f"{subuid} {own}, from LABNB_UID_BASE={uid_base}"
    else:
        ranges, source = RANGES, f"{RANGES} from LABNB_UID_BASE={uid_base}: no entry of root's in {subuid} holds it"
    free, bound = subids.room(entries, uid_base)
    if free < ranges:
        ranges, source = free, f"{source}, up to {bound}"
    return ranges, source


def reserve_slot(state_dir: str, lab_host_id: str, most: int, uid_base: int, subuid: str = SUBUID) -> int:
    """A slot for a new lab host of this state dir: the lowest of the machine's uid ranges
    (``machine_ranges``) that no lab host uses, whatever its state dir. Raises LabHostError when this
    state dir's own ``most`` lab hosts (its server's LABNB_MAX_LAB_HOSTS) are all in use, CannotMake
    when the machine's ranges are all claimed (by whom, and what to do).

    Two lab hosts with the same uid range could read each other's files, so
    the range is claimed machine-wide, in /run (cleared at boot, as are lab
    hosts); the state dir's slot files are its own lab hosts, counted
    against its own cap only.
    """
    d = os.path.join(state_dir, SLOTS)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.makedirs(UIDS, mode=0o700, exist_ok=True)
    if len(os.listdir(d)) >= most:
        raise LabHostError(f"cannot make another lab host: this server's {most} lab hosts (LABNB_MAX_LAB_HOSTS, "
                           f"state dir {state_dir}) are all in use",
                           "Try again when a learner has left, or raise LABNB_MAX_LAB_HOSTS")
    ranges, source = machine_ranges(uid_base, subuid)
    for n in range(ranges):
        if not _claim(os.path.join(d, str(n)), lab_host_id):
            continue
        if _claim(os.path.join(UIDS, str(uid_base + n * RANGE)), f"{os.path.realpath(state_dir)} {n}"):
            return n
        os.unlink(os.path.join(d, str(n)))
    raise _no_range(state_dir, most, uid_base, ranges, source)


def refusal(state_dir: str, most: int, uid_base: int, subuid: str = SUBUID) -> CannotMake | None:
    """What ``reserve_slot`` would raise now for the machine's sake, or None while a range is free: cheap
    (a read of /etc/subuid and of /run/labnb-uids), for the warm pool, a join and the node's health."""
    ranges, source = machine_ranges(uid_base, subuid)
    try:
        claimed = set(os.listdir(UIDS))
    except FileNotFoundError:
        claimed = set()
    if any(str(uid_base + n * RANGE) not in claimed for n in range(ranges)):
        return None
    return _no_range(state_dir, most, uid_base, ranges, source)


def _no_range(state_dir: str, most: int, uid_base: int, ranges: int, source: str) -> CannotMake:
    """The machine has no uid range left for a lab host of ``state_dir``'s server: why, and what the operator
    does (the file, the setting, the numbers)."""
    grow = ("run `labnb lab-hosts ranges --write` (scripts/setup.sh runs it), which gives root as many ranges "
            "as this machine's memory holds in /etc/subuid and /etc/subgid")
    if not ranges:
        return CannotMake(f"cannot make a lab host: the machine has no uid range for lab hosts ({source})",
                          f"Set LABNB_UID_BASE to the start of root's entry in {SUBUID}, or {grow}")
    held = _claimants(uid_base, ranges)
    others = sum(count for owner, count in held.items() if owner != os.path.realpath(state_dir))
    stop = (f"stop another server on this machine (other state dirs hold {others} of them), or remove a stopped "
            "server's lab hosts (`labnb lab-hosts gc` with its LABNB_STATE_DIR)")
    todo = (f"This server may have {most} lab hosts (LABNB_MAX_LAB_HOSTS), more than the {ranges} uid ranges of "
            f"the machine: {grow}, or set LABNB_MAX_LAB_HOSTS to at most {ranges}" if most > ranges
            else grow[0].upper() + grow[1:]) + (f"; or {stop}" if others else "")
    who = ", ".join(f"{count} of {owner}" for owner, count in sorted(held.items(), key=lambda i: -i[1]))
    return CannotMake(f"cannot make another lab host: all {ranges} uid ranges of this machine ({source}) are "
                      f"claimed by labnb lab hosts: {who}", todo)


def _claimants(uid_base: int, ranges: int) -> dict[str, int]:
    """Whose lab hosts hold the machine's ranges: how many each state dir holds."""
    held: dict[str, int] = {}
    for n in range(ranges):
        try:
            with open(os.path.join(UIDS, str(uid_base + n * RANGE))) as f:
                owner = f.read().rpartition(" ")[0] or "unknown"
        except OSError:
            continue
        held[owner] = held.get(owner, 0) + 1
    return held


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


def new_set_id() -> str:
    """A set's id, short enough to name its links (``br-<id>``, ``<id>-<n>``: interface names are 15 bytes)."""
    return "ls" + secrets.token_hex(ID_BYTES)


def write_set(state_dir: str, meta: dict) -> None:
    d = os.path.join(state_dir, SETS)
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, meta["id"] + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f)
    os.replace(path + ".tmp", path)


def read_sets(state_dir: str) -> list[dict]:
    """Every recorded set; an unreadable record still shows, by id."""
    d = os.path.join(state_dir, SETS)
    found = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            found.append({"id": name[:-len(".json")]})
    return found


def remove_set(state_dir: str, set_id: str) -> None:
    try:
        os.unlink(os.path.join(state_dir, SETS, set_id + ".json"))
    except FileNotFoundError:
        pass


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
