"""The cgroup subtree of a lab host: where its limits live and what its dockerd may manage.

Layout, the same on cgroup v1 (one tree per hierarchy) and v2 (one tree),
below the tree's root or, on v2, the cgroup systemd delegated to labnb
(``Delegate=yes``: its service, ``parent()``), whose own processes then move
to a leaf ``server`` (v2 allows no processes beside child cgroups that have
controllers):

    labnb/<id>            owned by root; memory, pids, cpu (and v2 io) limits: the learner cannot lift them
    labnb/<id>/keeper     owned by root: the starter (``unshare``, the machine's root) waiting on PID 1
    labnb/<id>/lab        delegated: owned by the lab host's mapped root; its cgroup namespace's root
    labnb/<id>/lab/init   the lab host's own processes (dockerd, learner's commands)
    labnb/<id>/lab/docker made by its dockerd (``--cgroup-parent /docker``) for containers

On v2 the lab host's processes and its containers share ``lab`` as their
common ancestor because a delegated process may only move tasks below a
cgroup it owns (kernel ``cgroup-v2.rst``, "Delegation Containment").

How many cgroups a lab host may make is bounded at its top
(``cgroup.max.descendants`` and ``cgroup.max.depth``, in every cgroup2
hierarchy): the memory controller numbers its cgroups from one pool of
65,535 for the whole machine, and each cgroup costs kernel memory. v1 has no
such bound, so there ``lab`` is not delegated in the memory hierarchy, nor
mounted inside (``delegates``). The cgroup2 top also carries the sysctl
guard (``sysctlguard.py``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import time

from . import sysctlguard

ROOT = "/sys/fs/cgroup"
TOP = "labnb"
SERVER = "server"
V2_CONTROLLERS = ("cpu", "memory", "pids")
DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")   # systemd >= 251 marks delegated cgroups so
# Below a lab host's top: keeper, lab, lab/init, lab/docker and a cgroup for
# each container, and whatever the learner makes; 64 lab hosts hold at most a
# quarter of the machine's memory cgroup ids.
DESCENDANTS = 256
DEPTH = 8   # lab/docker/<container> is 3


class CgroupError(RuntimeError):
    """The host cannot give a lab host a cgroup subtree of its own."""


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpu_weight: int  # 1..10000, v2 semantics; 100 is a normal share
    io_bps: int = 0          # v2 io.max rbps and wbps on each of io_devices; 0: none
    io_iops: int = 0         # v2 io.max riops and wiops; 0: none
    io_devices: tuple[str, ...] = ()   # "major:minor" of whole disks

    def io_max(self, device: str) -> str:
        """The io.max line for one device."""
        bps, iops = self.io_bps or "max", self.io_iops or "max"
        return f"{device} rbps={bps} wbps={bps} riops={iops} wiops={iops}"

    @property
    def cpu_shares(self) -> int:
        """v1 cpu.shares equivalent of the v2 weight (1024 is a normal share)."""
        return max(2, self.cpu_weight * 1024 // 100)


def disks(state_dir: str) -> tuple[str, ...]:
    """The whole disks ("major:minor") a lab host reads from, which io.max takes.

    A lab host writes only to tmpfs (its memory limit bounds that); what it
    reads of the machine, its programs (/usr, /etc) and the state dir, comes
    from these. A partition stands for its disk (io.max refuses partitions);
    a file system with no block device of its own (tmpfs, overlay, btrfs's
    anonymous devices) has none to limit.
    """
    found = []
    for path in ("/usr", "/etc", state_dir):
        try:
            dev = os.stat(path).st_dev
        except OSError:
            continue
        node = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
        if not os.path.exists(node):
            continue
        if os.path.exists(os.path.join(node, "partition")):
            node = os.path.join(os.path.realpath(node), "..")
        number = _read(os.path.join(node, "dev")).strip()
        if number not in found:
            found.append(number)
    return tuple(found)


def hierarchies() -> dict[str, str]:
    """Mount point of every cgroup hierarchy under /sys/fs/cgroup, keyed by a name.

    v1 controllers and named hierarchies (``name=systemd``) count: runc joins
    every hierarchy it finds, so every one needs the delegated subtree. On a
    v2-only host the single tree is keyed ``""``.
    """
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            fstype, _src, options = right.split()[:3]
            if not point.startswith(ROOT):
                continue
            if fstype == "cgroup2":
                found["" if point == ROOT else "unified"] = point
            elif fstype == "cgroup":
                opts = options.split(",")
                names = [o for o in opts if o in _V1_CONTROLLERS or o.startswith("name=")]
                if names:
                    found[",".join(names)] = point
    return found


_V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
    "net_prio", "blkio", "pids", "perf_event", "hugetlb", "rdma", "misc",
}


def version() -> int:
    """2 on a host with only the unified hierarchy, else 1 (also hybrid hosts)."""
    h = hierarchies()
    if not h:
        raise CgroupError(
            "no cgroup file system is mounted under /sys/fs/cgroup; mount cgroup2 there "
            "(mount -t cgroup2 none /sys/fs/cgroup) or boot with cgroups enabled")
    return 2 if set(h) == {""} else 1


def own_cgroup() -> str:
    """This process's v2 cgroup, relative to the root ("" for the root itself)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip().strip("/")
    return ""


def delegated(rel: str) -> bool:
    """Whether systemd delegated the v2 cgroup ``rel`` (a unit with Delegate=yes)."""
    for name in DELEGATE_XATTRS:
        try:
            if os.getxattr(os.path.join(ROOT, rel), name) == b"1":
                return True
        except OSError:
            pass
    return False


def parent() -> str:
    """Where lab host subtrees go, relative to the root: below the cgroup systemd
    delegated to this process if there is one, else the root. v1: the root."""
    if version() != 2:
        return ""
    own = own_cgroup()
    if own.endswith("/" + SERVER) and delegated(os.path.dirname(own)):
        return os.path.dirname(own)   # moved to its leaf already
    return own if own and delegated(own) else ""


class Subtree:
    """The cgroup subtree of one lab host, in every hierarchy."""

    def __init__(self, lab_host_id: str, parent_rel: str | None = None):
        self.id = lab_host_id
        self.parent = parent() if parent_rel is None else parent_rel
        self.rel = os.path.join(self.parent, TOP, lab_host_id)
        self.points = hierarchies()

    def paths(self, sub: str = "") -> list[str]:
        return [os.path.join(p, self.rel, sub) if sub else os.path.join(p, self.rel)
                for p in self.points.values()]

    def procs_files(self, sub: str) -> list[str]:
        """Where a process is written to join ``labnb/<id>/<sub>`` in every hierarchy."""
        return [os.path.join(p, "cgroup.procs") for p in self.paths(sub)]

    def mount_spec(self) -> str:
        """The hierarchies as ``labroot.py finish`` mounts them inside: ``DIR:TYPE:OPTIONS`` each, DIR relative."""
        specs = []
        for key, point in self.points.items():
            if not delegates(key):
                continue
            if key == "":
                specs.append("::")
                continue
            rel = os.path.relpath(point, ROOT)
            if key == "unified":
                specs.append(f"{rel}:cgroup2:")
            elif any(name in _V1_CONTROLLERS for name in key.split(",")):
                specs.append(f"{rel}:cgroup:{key}")
            else:   # a named hierarchy only, name=systemd
                specs.append(f"{rel}:cgroup:none,{key}")
        return " ".join(specs)

    def create(self, uid: int, gid: int, limits: Limits) -> None:
        """Make the subtree, set limits on its root-owned top, delegate ``lab``."""
        if "" in self.points:
            self._create_v2(uid, gid, limits)
        else:
            self._create_v1(uid, gid, limits)

    def _create_v1(self, uid: int, gid: int, limits: Limits) -> None:
        for key, point in self.points.items():
            top = os.path.join(point, TOP)
            for d in (top, os.path.join(top, self.id), os.path.join(top, self.id, "keeper"),
                      os.path.join(top, self.id, "lab"), os.path.join(top, self.id, "lab", "init")):
                _mkdir(d)
                if "cpuset" in key.split(","):
                    _inherit_cpuset(d)
            base = os.path.join(top, self.id)
            controllers = key.split(",")
            if "memory" in controllers:
                _write(os.path.join(base, "memory.limit_in_bytes"), limits.memory_bytes)
            if "pids" in controllers:
                _write(os.path.join(base, "pids.max"), limits.pids)
            if "cpu" in controllers:
                _write(os.path.join(base, "cpu.shares"), limits.cpu_shares)
            if key == "unified":
                _bound_cgroup2(base)
            if delegates(key):
                _chown_tree(os.path.join(base, "lab"), uid, gid)

    def _create_v2(self, uid: int, gid: int, limits: Limits) -> None:
        point = self.points[""]
        above = os.path.join(point, self.parent)
        if self.parent:
            _leave(above)
        top = os.path.join(above, TOP)
        base = os.path.join(top, self.id)
        lab = os.path.join(base, "lab")
        for d in (top, base, os.path.join(base, "keeper"), lab, os.path.join(lab, "init")):
            _mkdir(d)
        available = set(_read(os.path.join(above, "cgroup.controllers")).split())
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            raise CgroupError(
                f"the cgroup v2 controllers {', '.join(missing)} are not available at {above}; "
                "enable them in the parent's cgroup.subtree_control (with systemd: "
                "Delegate=yes on the labnb service)")
        io = "io" in available and (limits.io_bps or limits.io_iops) and limits.io_devices
        wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS + (("io",) if io else ()))
        # `lab` gets them from inside, once its processes are in lab/init (labroot.py)
        for d in (above, top, base):
            _write(os.path.join(d, "cgroup.subtree_control"), wanted)
        _write(os.path.join(base, "memory.max"), limits.memory_bytes)
        _write(os.path.join(base, "memory.swap.max"), 0, optional=True)
        _write(os.path.join(base, "pids.max"), limits.pids)
        _write(os.path.join(base, "cpu.weight"), limits.cpu_weight)
        _bound_cgroup2(base)
        for device in limits.io_devices if io else ():
            _write(os.path.join(base, "io.max"), limits.io_max(device))
        # Delegation per cgroup-v2.rst: the directory and these three files.
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(lab, name), uid, gid)
        _chown_tree(os.path.join(lab, "init"), uid, gid)

    def pids(self) -> set[int]:
        """Every process still in the subtree, in any hierarchy."""
        found: set[int] = set()
        for path in self.paths():
            for dirpath, _dirs, files in os.walk(path):
                if "cgroup.procs" in files:
                    try:
                        found.update(int(x) for x in _read(os.path.join(dirpath, "cgroup.procs")).split())
                    except OSError:
                        pass
        return found

    def freeze(self, frozen: bool, timeout: float = 2.0) -> None:
        """Freeze or thaw the whole subtree at its root-owned top (v2 ``cgroup.freeze``, v1 the freezer),
        and wait until the kernel has done it: a frozen lab host uses no CPU at all. Thawing thaws the top
        only, not what the learner froze."""
        if "" in self.points:
            top = os.path.join(self.points[""], self.rel)
            _write(os.path.join(top, "cgroup.freeze"), 1 if frozen else 0)
            done = lambda: f"frozen {int(frozen)}" in _read(os.path.join(top, "cgroup.events")).splitlines()
        else:
            top = next((os.path.join(p, self.rel) for k, p in self.points.items() if "freezer" in k.split(",")), "")
            if not top:
                raise CgroupError("this machine's cgroup v1 has no freezer hierarchy")
            want = "FROZEN" if frozen else "THAWED"
            _write(os.path.join(top, "freezer.state"), want)
            done = lambda: _read(os.path.join(top, "freezer.state")).strip() == want
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise CgroupError(f"lab host {self.id} is not {'frozen' if frozen else 'thawed'} "
                                  f"after {timeout:.0f} s")
            time.sleep(0.005)

    def cpu_seconds(self) -> float:
        """CPU time the whole subtree has used so far (v2 ``cpu.stat``, v1 ``cpuacct.usage``)."""
        if "" in self.points:
            stat = _read(os.path.join(self.points[""], self.rel, "cpu.stat"))
            return int(next(line.split()[1] for line in stat.splitlines() if line.startswith("usage_usec"))) / 1e6
        for key, point in self.points.items():
            if "cpuacct" in key.split(","):
                return int(_read(os.path.join(point, self.rel, "cpuacct.usage"))) / 1e9
        raise CgroupError("this machine's cgroup v1 has no cpuacct hierarchy")

    def kill_all(self, first: int | None = None, timeout: float = 5.0) -> None:
        """SIGKILL every process in the subtree until none remain, ``first`` (PID 1) before the rest.

        The learner may have frozen its own cgroups. On v2 a fatal signal
        reaches frozen tasks and ``cgroup.kill`` at the root-owned top takes
        the whole subtree at once. On v1 frozen tasks cannot die: the top is
        frozen by root (so nothing of the learner's runs to freeze anything
        again), the signal sent, then every level thawed.
        """
        deadline = time.monotonic() + timeout
        v2 = "" in self.points
        freezer = None if v2 else next((os.path.join(p, self.rel) for k, p in self.points.items()
                                        if "freezer" in k.split(",")), None)
        if v2:   # a lab host the pool froze (``freeze``): its keeper must reap PID 1, so thaw the top first
            _write(os.path.join(self.points[""], self.rel, "cgroup.freeze"), 0, optional=True)
        while True:
            left = self.pids()
            if first and os.path.exists(f"/proc/{first}"):
                targets = {first}
            else:
                first = None
                targets = left
            if not left and not first:
                return
            if freezer and os.path.isdir(freezer):
                _write(os.path.join(freezer, "freezer.state"), "FROZEN", optional=True)
            for pid in targets:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if v2 and not first:
                _write(os.path.join(self.points[""], self.rel, "cgroup.kill"), 1, optional=True)
            if freezer and os.path.isdir(freezer):
                _thaw(freezer)
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(left)} of lab host {self.id} survive SIGKILL")
            time.sleep(0.005 if first else 0.02)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the subtree depth first; a dying task can hold a cgroup busy briefly."""
        deadline = time.monotonic() + timeout
        for path in self.paths():
            if not os.path.isdir(path):
                continue
            dirs = [d for d, _s, _f in os.walk(path)]
            for d in sorted(dirs, key=len, reverse=True):
                while True:
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as e:
                        if e.errno != errno.EBUSY or time.monotonic() > deadline:
                            raise CgroupError(f"cannot remove cgroup {d}: {e.strerror}") from e
                        time.sleep(0.02)

def existing_ids(prefix: str = "") -> dict[str, str]:
    """Lab hosts whose id starts with ``prefix`` and that have a subtree in some
    hierarchy, under the root or this process's delegated cgroup: id to parent."""
    ids: dict[str, str] = {}
    for above in {"", parent()}:
        for point in hierarchies().values():
            top = os.path.join(point, above, TOP)
            if os.path.isdir(top):
                ids.update((e.name, above) for e in os.scandir(top) if e.is_dir() and e.name.startswith(prefix))
    return ids


@contextlib.contextmanager
def server_memory(name: str, memory_bytes: int):
    """Run the server (this process, before it starts its worker and threads: they inherit it) in a memory
    cgroup of its own limited to ``memory_bytes``: a server that takes in more than it should meets its own
    limit, never the machine's. Under systemd (v2, Delegate=yes) that is the delegated cgroup's leaf
    ``server``; else ``labnb/<name>`` beside the lab hosts' subtrees (v2), or in the memory hierarchy
    (v1), left again and removed when the server ends."""
    came_from = None
    if version() == 2:
        point, above = hierarchies()[""], parent()
        if above:
            _leave(os.path.join(point, above))
            leaf = os.path.join(point, above, SERVER)
        else:
            came_from = os.path.join(point, own_cgroup())
            leaf = os.path.join(point, TOP, name)
        for d in {os.path.join(point, above), os.path.dirname(leaf)}:
            _mkdir(d)
            _write(os.path.join(d, "cgroup.subtree_control"), "+memory")
        _mkdir(leaf)
        _write(os.path.join(leaf, "memory.max"), memory_bytes)
        _write(os.path.join(leaf, "memory.swap.max"), 0, optional=True)
    else:
        point = next((p for k, p in hierarchies().items() if "memory" in k.split(",")), None)
        if point is None:
            raise CgroupError("this machine's cgroup v1 has no memory hierarchy")
        with open("/proc/self/cgroup") as f:
            own = next(line.split(":", 2)[2].strip() for line in f if "memory" in line.split(":")[1].split(","))
        came_from = os.path.join(point, own.lstrip("/"))
        leaf = os.path.join(point, TOP, name)
        _mkdir(os.path.dirname(leaf))
        _mkdir(leaf)
        _write(os.path.join(leaf, "memory.limit_in_bytes"), memory_bytes)
    _write(os.path.join(leaf, "cgroup.procs"), os.getpid())
    if came_from is not None:
        _remove_left_leaves(os.path.dirname(leaf))
    try:
        yield leaf
    finally:
        if came_from is not None:
            try:
                _write(os.path.join(came_from, "cgroup.procs"), os.getpid())
                os.rmdir(leaf)
            except (CgroupError, OSError):
                pass   # a process of the server's is still in it: the next server of this name takes it again


def _remove_left_leaves(top: str) -> None:
    """Servers killed before they could leave their leaf (SIGKILL, a crash) left it behind, empty; each
    state dir names one, so a test run's would stay for ever. rmdir refuses a leaf that holds a process:
    a running server's stays (and one made in the last minute, whose server may not be in it yet)."""
    recent = time.time() - 60
    for entry in os.scandir(top):
        if (entry.name.startswith(SERVER + "-") and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < recent):
            try:
                os.rmdir(entry.path)
            except OSError:
                pass


def delegates(key: str) -> bool:
    """Whether a lab host gets its ``lab`` cgroup to manage in the hierarchy ``key`` (``hierarchies()``).

    Not v1's memory hierarchy: v1 cannot bound how many cgroups a lab host
    makes there, and they take the machine's memory cgroup ids. Its dockerd
    does without it: no memory limit of a container's own (``docker run -m``
    warns and goes on) nor memory in ``docker stats``; the lab host's limit
    holds them all.
    """
    return "memory" not in key.split(",")


def _bound_cgroup2(top: str) -> None:
    """What only cgroup2 can bound, at a lab host's root-owned ``top``: at most DESCENDANTS cgroups,
    DEPTH deep, below it, and no writes to the settings that bound its network namespaces' uncharged
    kernel memory (``sysctlguard.py``)."""
    _write(os.path.join(top, "cgroup.max.descendants"), DESCENDANTS)
    _write(os.path.join(top, "cgroup.max.depth"), DEPTH)
    try:
        sysctlguard.attach(top)
    except OSError as e:
        raise CgroupError(f"cannot attach the sysctl guard to {top}: {e}") from None


def _leave(delegated_dir: str) -> None:
    """Move this service's processes into its leaf ``server``, so that its
    delegated cgroup may enable controllers for the lab hosts beside it."""
    leaf = os.path.join(delegated_dir, SERVER)
    _mkdir(leaf)
    for _ in range(100):   # again until none is left: gunicorn may fork a worker meanwhile
        pids = _read(os.path.join(delegated_dir, "cgroup.procs")).split()
        if not pids:
            return
        for pid in pids:
            try:
                _write(os.path.join(leaf, "cgroup.procs"), pid)
            except CgroupError:
                if os.path.exists(f"/proc/{pid}"):
                    raise
    raise CgroupError(f"processes keep appearing in {delegated_dir}; cannot move them into {leaf}")


def _thaw(top: str) -> None:
    """THAWED at every level of a v1 freezer subtree, the deepest first, the top last."""
    dirs = [d for d, _s, _f in os.walk(top)]
    for d in sorted(dirs, key=len, reverse=True):
        _write(os.path.join(d, "freezer.state"), "THAWED", optional=True)


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass


def _inherit_cpuset(path: str) -> None:
    parent = os.path.dirname(path)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not _read(os.path.join(path, name)).strip():
            _write(os.path.join(path, name), _read(os.path.join(parent, name)).strip())


def _chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(dirpath, name), uid, gid)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value, optional: bool = False) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except FileNotFoundError:
        if not optional:
            raise CgroupError(f"the cgroup file {path} is missing; is the controller enabled?") from None
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}") from e
