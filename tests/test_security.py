"""Attacks on the lab host, for real: a learner is root inside their lab host
and may be hostile. Each test attacks one invariant of /work/shared/design.md
("The lab host: the promise and its invariants") through the stable entry
points only (the fixtures, ``webapp.executor``, ``webapp.learners.runner``, the
terminal panel's shell, ``host.health()``, ``host.docker()``,
``host.destroy()``, ``webapp.labhost.reaper.gc``).

The programs that run inside a lab host are in ``tests/attacks/``; a lab host
cannot see this repo, so their text goes in the command itself (a heredoc).

Every test checks that its attack really ran (the freeze froze, the symlink
is in place, the watcher watched...): an attack that could not run fails the
test, it never passes it.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import Output, sh
from web_support import wait_for
from webapp import executor
from webapp.labhost import ptyguard, reaper
from webapp.labhost.pool import create

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = Path(__file__).resolve().parent / "attacks"
FIXTURE_LAB = Path(__file__).resolve().parent / "fixtures" / "runner" / "failing.md"

# What the lab host is expected to bound (the tests come before the fixes).
PTY_CAP = 256                 # PTYs one lab host may hold: its own devpts instance, max=PTY_CAP
PTY_SLACK = 32                # the machine's pty count is shared: other test runs may open a few meanwhile
PTY_CEILING = 4 * PTY_CAP     # the hog stops here: well past the cap, far from the machine's 4096
TMPFS_MAX_MB = 256            # each of /tmp, /var/tmp, /dev/shm, /run, HOME: well below the 1024 MB memory limit
MIN_STARTS = 200              # command starts the ptrace watcher must see through
OVERFLOW_ID = 65534
PSEUDO_FS = {"proc", "sysfs", "cgroup", "cgroup2", "mqueue", "nsfs", "bpf", "tracefs", "debugfs", "securityfs",
             "pstore", "configfs", "fusectl", "binfmt_misc", "hugetlbfs", "autofs", "efivarfs", "devpts",
             "rpc_pipefs", "selinuxfs"}


# -- helpers ------------------------------------------------------------------------

def attack(name: str, *args) -> str:
    """A shell command that runs tests/attacks/NAME with python3 inside the lab host."""
    code = (ATTACKS / name).read_text()
    assert "LABNB_ATTACK_EOF" not in code
    return f"python3 - {' '.join(shlex.quote(str(a)) for a in args)} <<'LABNB_ATTACK_EOF'\n{code}\nLABNB_ATTACK_EOF"


def ok(host, command: str, timeout: float = 60) -> str:
    outcome, out = sh(host, command, timeout)
    assert outcome.exit_code == 0, f"{command[:200]!r} in lab host {host.id}: {outcome}\n{out[-2000:]}"
    return out


def pidns_of(host) -> str:
    """The lab host's pid namespace, ``pid:[inode]``: the same inode inside and outside."""
    out = ok(host, "readlink /proc/1/ns/pid").strip()
    assert re.fullmatch(r"pid:\[\d+\]", out), out
    return out


def cgroup_dirs(lab_host_id: str) -> list[str]:
    """The lab host's cgroup subtree in every hierarchy (v1 and v2)."""
    return sorted(set(glob.glob(f"/sys/fs/cgroup/*/labnb/{lab_host_id}") +
                      glob.glob(f"/sys/fs/cgroup/labnb/{lab_host_id}")))


def subtree_pids(lab_host_id: str) -> set[int]:
    pids = set()
    for top in cgroup_dirs(lab_host_id):
        for d, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids.update(int(p) for p in f.read().split())
                except OSError:
                    pass
    return pids


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def lab_host_processes(lab_host_id: str, pidns: str) -> set[int]:
    """Every process in the lab host, as the machine sees it: in its pid namespace
    (or one below it: containers), or in its cgroup subtree and not in the machine's."""
    mine = _readlink("/proc/self/ns/pid")
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and _readlink(f"/proc/{name}/ns/pid") == pidns:
            found.add(int(name))
    for pid in subtree_pids(lab_host_id):
        ns = _readlink(f"/proc/{pid}/ns/pid")
        if ns is not None and ns != mine:
            found.add(pid)
    return found


def host_devices() -> dict[int, str]:
    """st_dev of every file system mounted on the machine that holds files (not proc, sysfs...)."""
    devs = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype = right.split()[0]
            if fstype in PSEUDO_FS:
                continue
            major, minor = (int(x) for x in fields[2].split(":"))
            devs[os.makedev(major, minor)] = f"{fstype} on {fields[4]}"
    return devs


def leftovers(settings, lab_host_id: str, pidns: str, slot: int | None, uid: int | None) -> list[str]:
    """What is left of a lab host that should be gone."""
    left = []
    procs = lab_host_processes(lab_host_id, pidns)
    if procs:
        left.append("processes: " + ", ".join(f"{p} ({_comm(p)})" for p in sorted(procs)))
    dirs = cgroup_dirs(lab_host_id)
    if dirs:
        left.append("cgroup dirs: " + ", ".join(dirs))
    hostdir = os.path.join(settings.state_dir, "hosts", lab_host_id)
    if os.path.exists(hostdir):
        left.append(f"state dir: {hostdir}")
    slots = os.path.join(settings.state_dir, "slots")
    for name in os.listdir(slots) if os.path.isdir(slots) else []:
        try:
            if open(os.path.join(slots, name)).read().strip() == lab_host_id:
                left.append(f"slot: {slots}/{name}")
        except OSError:
            pass
    if uid is not None:
        claim = f"/run/labnb-uids/{uid}"
        try:
            content = open(claim).read()
        except OSError:
            content = ""
        if content.startswith(os.path.realpath(settings.state_dir) + f" {slot}"):
            left.append(f"uid range claim: {claim}")
    return left


def thaw_and_remove(settings, lab_host_id: str) -> None:
    """After a freeze test: thaw what is left, so that the session's reaper can remove it."""
    for top in cgroup_dirs(lab_host_id):
        for d, _dirs, files in os.walk(top):
            for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if name in files:
                    try:
                        with open(os.path.join(d, name), "w") as f:
                            f.write(value)
                    except OSError:
                        pass
    if cgroup_dirs(lab_host_id) or os.path.exists(os.path.join(settings.state_dir, "hosts", lab_host_id)):
        subprocess.run([sys.executable, "-m", "webapp.commands.cli", "lab-hosts", "rm", lab_host_id], cwd=ROOT,
                       env=_cli_env(settings), capture_output=True, timeout=120)


def _cli_env(settings) -> dict[str, str]:
    return {**os.environ, "LABNB_STATE_DIR": settings.state_dir, "LABNB_UID_BASE": str(settings.uid_base),
            "LABNB_MAX_LAB_HOSTS": str(settings.max_lab_hosts), "LABNB_MEMORY_MB": str(settings.memory_mb),
            "LABNB_PIDS": str(settings.pids)}


def frozen_cgroups(lab_host_id: str) -> list[str]:
    """The lab host's cgroups that are frozen now (seen from the machine)."""
    frozen = []
    for top in cgroup_dirs(lab_host_id):
        for d, _dirs, files in os.walk(top):
            try:
                if "freezer.state" in files and open(os.path.join(d, "freezer.state")).read().strip() == "FROZEN":
                    frozen.append(d)
                elif "cgroup.events" in files and "frozen 1" in open(os.path.join(d, "cgroup.events")).read():
                    frozen.append(d)
            except OSError:
                pass
    return frozen


def returns_within(call, seconds: float, what: str) -> list[BaseException]:
    """Run ``call`` on a thread of its own; fail unless it returns within ``seconds``.
    What it raised, to be reported with the rest of the test's findings."""
    error: list[BaseException] = []

    def run():
        try:
            call()
        except BaseException as e:   # noqa: BLE001 - reported by the caller
            error.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{what} did not return within {seconds} s"
    return error


# -- 1. no process of the machine's in the lab host, not even while a command starts ----

@pytest.mark.slow
def test_ptrace_watcher_sees_no_process_of_the_machines_through_any_entry_path(settings, lab_host):
    """A watcher inside scans /proc and PTRACE_SEIZEs every new process while
    commands enter the lab host by every path; any process owned by an id
    outside the lab host's range (it shows as 65534 inside), or any seize of
    one, is a violation. build_seed cannot be pointed at an existing lab host
    (it makes one of its own), so that path is not watched here."""
    from webapp.lab import load_lab
    from webapp.learners.runner import run_lab
    from webapp.shells.manager import Shell

    host = lab_host
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    out_file, stop_file = f"/root/.labnb-watch-{stamp}.json", f"/root/.labnb-watch-{stamp}.stop"
    watcher_out = Output()
    watcher = executor.start(host, attack("ptrace_watch.py", out_file, stop_file), on_output=watcher_out,
                           timeout=900, window=None)
    starts: dict[str, int] = {}

    def count(path: str, n: int = 1) -> None:
        starts[path] = starts.get(path, 0) + n

    try:
        time.sleep(1.0)   # the watcher's first scans: what exists already
        assert watcher.running, f"the watcher did not start: {watcher.outcome} {watcher_out.text[-2000:]}"
        lab = load_lab(FIXTURE_LAB)
        for round_ in range(10):
            for i in range(8):
                outcome, _ = sh(host, f"true {round_}-{i}")
                assert outcome.exit_code == 0
                count("executor.run")
            for i in range(2):
                term = executor.open_terminal(host, f"watched-{round_}-{i}")
                count("open_terminal")
                try:
                    for j in range(2):
                        got = Output()
                        run = term.type(f"/bin/echo typed-{round_}-{i}-{j}", on_output=got, timeout=20)
                        assert run.wait(25) is not None and run.outcome.ok, run.outcome
                        count("typed into a terminal")
                finally:
                    term.close()
            if round_ % 2 == 0:
                result = run_lab(lab, host)
                assert result.setup is not None and result.setup.ok and result.cleanup is not None
                count("runner (setup, 2 steps + a check, cleanup)", 5)
            for i in range(2):
                shell = Shell(f"attacker-{round_}-{i}", host, lambda event, payload, to: None, 24, 80).start()
                count("terminal panel shell")
                try:
                    shell.write(f"echo panel-$((40+{i}))-{round_}\n".encode())
                    wait_for(lambda: f"panel-{40 + i}-{round_}".encode() in bytes(shell.fanout.backlog), 20,
                             what="the terminal panel's shell to answer")
                finally:
                    shell.stop()
            for _ in range(4):
                health = host.health()
                assert health.ok, health.detail
                count("health()")
                client = host.docker()
                try:
                    assert client.ping()
                finally:
                    client.close()
                count("docker()")
        time.sleep(0.5)
        assert watcher.running, f"the watcher ended early: {watcher.outcome} {watcher_out.text[-2000:]}"
    finally:
        sh(host, f"touch {stop_file}")
        outcome = watcher.wait(60)
        if outcome is None:
            watcher.stop()
    assert outcome is not None and outcome.ok, f"the watcher failed: {outcome}\n{watcher_out.text[-3000:]}"
    report = json.loads(ok(host, f"cat {out_file}; rm -f {out_file} {stop_file}"))
    total = sum(starts.values())
    summary = (f"{total} command starts ({starts}); the watcher saw {report['new_processes']} new processes "
               f"in {report['seconds']} s ({report['loops']} scans), seized {report['seized']}, "
               f"refused {report['seize_refused']}; {len(report['violations'])} violations")
    bad = report["violations"]
    kinds: dict[str, int] = {}
    for v in bad:
        key = f"{v['what']} ({(v.get('status') or {}).get('Name', ['?'])[0]}, seize {v.get('seize', 'ok')})"
        kinds[key] = kinds.get(key, 0) + 1
    print(summary, kinds)
    assert not bad, summary + f": {kinds}\n" + "\n".join(json.dumps(v) for v in bad[:20])
    # the attack really watched: enough starts, and it saw the processes they made (health() and
    # docker() start none inside; a very short-lived one may come and go between two scans)
    assert total >= MIN_STARTS, summary
    spawning = total - starts["health()"] - starts["docker()"]
    assert report["new_processes"] >= 0.75 * spawning, "the watcher did not see the commands start: " + summary


# -- 2. no descriptor onto a host file --------------------------------------------------

def test_no_lab_host_process_holds_a_descriptor_onto_a_host_file(settings, lab_host):
    """Every process of the lab host (its own, the commands the entry paths
    started, a container), audited from the machine: no open descriptor, cwd
    or root may be a regular file or dir on one of the machine's file systems."""
    from webapp.shells.manager import Shell

    host = lab_host
    ok(host, "docker rm -f labnb-audit >/dev/null 2>&1; docker run -d --name labnb-audit busybox sleep 600")
    sleeper = executor.start(host, "exec sleep 601", window=None)
    term = executor.open_terminal(host, "audit")
    shell = Shell("auditor", host, lambda event, payload, to: None, 24, 80).start()
    try:
        wait_for(lambda: sleeper.running, 10, what="the sleep to run")
        pidns = pidns_of(host)
        time.sleep(0.5)
        devs = host_devices()
        procs = wait_for(lambda: {p: _comm(p) for p in lab_host_processes(host.id, pidns)}
                         if {"sleep", "dockerd"} <= {_comm(p) for p in lab_host_processes(host.id, pidns)} else None,
                         10, what="the lab host's processes")
        found = []
        for pid in sorted(procs):
            links = [(f"fd/{fd}", f"/proc/{pid}/fd/{fd}") for fd in _listdir(f"/proc/{pid}/fd")]
            links += [("cwd", f"/proc/{pid}/cwd"), ("root", f"/proc/{pid}/root")]
            for what, path in links:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) and st.st_dev in devs:
                    found.append(f"pid {pid} ({procs[pid]}) {what} -> {_readlink(path)} "
                                 f"[{devs[st.st_dev]}]")
        print(f"audited {len(procs)} processes: {sorted(set(procs.values()))}")
        assert len(procs) >= 5, procs
        assert not found, f"{len(found)} descriptors onto host files:\n" + "\n".join(found[:40])
    finally:
        shell.stop()
        term.close()
        sleeper.stop(grace=1)
        sh(host, "docker rm -f labnb-audit")


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


# -- 3. PTYs are bounded per lab host -----------------------------------------------------

def _pty_nr() -> int:
    with open("/proc/sys/kernel/pty/nr") as f:
        return int(f.read())


def _hog_ptys(host, ptmx: str, other, ceiling: int = PTY_CEILING, mode: str = "master") -> tuple[dict, int]:
    """Run the PTY hog in ``host``; while it holds its PTYs, ``other`` must open a
    terminal and run a command. The hog's report, and how far the machine's count moved."""
    before = _pty_nr()
    out = Output()
    hog = executor.start(host, attack("pty_hog.py", ptmx, ceiling, 20, mode), on_output=out, timeout=120,
                       window=None)
    try:
        line = wait_for(lambda: re.search(r"HOG (\{.*\})", out.text) or (not hog.running and "ended"), 90,
                        what="the hog's report")
        assert line != "ended", f"the PTY hog ended without a report: {hog.outcome}\n{out.text[-2000:]}"
        report = json.loads(line.group(1))
        moved = _pty_nr() - before
        term = executor.open_terminal(other, "after-the-hog")
        try:
            got = Output()
            run = term.type("echo other-$((6*7))", on_output=got, timeout=20)
            assert run.wait(25) is not None and run.outcome.ok and "other-42" in got.text, \
                f"another lab host could not run a command while the hog held {report}: {run.outcome} {got.text}"
        finally:
            term.close()
    finally:
        hog.stop(grace=1)
    return report, moved


def test_pty_exhaustion_is_bounded_per_lab_host(settings, fresh_lab_host, lab_host):
    report, moved = _hog_ptys(fresh_lab_host, "/dev/ptmx", lab_host)
    print(f"/dev/ptmx: {report}; the machine's pty count moved by {moved}")
    assert report["held"] >= 1, f"the hog could not open a single PTY: {report}"
    assert report["stopped_by"] not in ("ceiling", "EMFILE"), \
        f"the lab host opened {report['held']} PTYs (cap {PTY_CAP}), stopped by {report['stopped_by']}"
    assert report["held"] <= PTY_CAP, f"the lab host held {report['held']} PTYs, more than its cap {PTY_CAP}"
    assert moved <= PTY_CAP + PTY_SLACK, f"the machine's pty count moved by {moved} (cap {PTY_CAP})"


def _pty_max() -> int:
    with open("/proc/sys/kernel/pty/max") as f:
        return int(f.read())


@pytest.mark.parametrize("mode", ["master", "peer"])
def test_pty_cap_holds_for_a_devpts_of_its_own(settings, fresh_lab_host, lab_host, mode):
    """The learner mounts a devpts instance of their own (root in a user
    namespace may: runc does it for every container) and drains its ptmx,
    keeping masters or only slaves. Another lab host must still open a
    terminal (its devpts draws on kernel.pty.reserve, which this one cannot
    reach); where the PTY guard runs, the machine's count moves by at most the cap."""
    ok(fresh_lab_host, "mkdir -p /tmp/labnb-pts")   # the attack's own step: a dir to mount on
    ok(fresh_lab_host, "mount -t devpts -o newinstance,ptmxmode=0666 devpts /tmp/labnb-pts")
    report, moved = _hog_ptys(fresh_lab_host, "/tmp/labnb-pts/ptmx", lab_host, ceiling=_pty_max(), mode=mode)
    print(f"own devpts, {mode}: {report}; the machine's pty count moved by {moved}")
    assert report["held"] >= 1, f"the hog could not open a single PTY: {report}"
    assert report["stopped_by"] != "ceiling", f"the hog never met a limit: {report}"
    if fresh_lab_host._guard is None:
        pytest.xfail(f"no PTY guard on this kernel ({ptyguard_missing(settings)}): the lab host held {report['held']} "
                     f"PTYs, the machine's count moved by {moved}; other lab hosts kept their terminals")
    assert report["held"] <= PTY_CAP and moved <= PTY_CAP + PTY_SLACK, \
        f"with a devpts of its own the lab host held {report['held']} PTYs (stopped by {report['stopped_by']}), " \
        f"the machine's count moved by {moved}; cap {PTY_CAP}"


def ptyguard_missing(settings) -> str:
    try:
        ptyguard.for_settings(settings.uid_base, settings.max_lab_hosts, settings.ptys)
    except ptyguard.GuardError as e:
        return str(e)
    return "it loads here, but the lab host did not use it"


# -- 4. teardown wins against a frozen lab host -------------------------------------------

def _freeze(host) -> tuple[executor.PtyProcess, Collect]:
    out = Output()
    proc = executor.start(host, attack("freeze.py"), on_output=out, timeout=600, window=None)
    wait_for(lambda: frozen_cgroups(host.id) or "REFUSED" in out.text or not proc.running, 20,
             what="the lab host to freeze itself")
    assert frozen_cgroups(host.id), f"the freeze attack did not freeze anything: {out.text[-2000:]}"
    return proc, out


@pytest.mark.slow
def test_destroy_removes_a_frozen_lab_host(settings):
    host = create(settings)
    slot, uid = getattr(host, "slot", None), getattr(host, "uid", None)
    try:
        pidns = pidns_of(host)
        proc, out = _freeze(host)
        frozen = frozen_cgroups(host.id)
        print(f"frozen: {frozen}; {out.text.strip()}")
        error = returns_within(host.destroy, 90, "destroy() from a frozen lab host")
        left = leftovers(settings, host.id, pidns, slot, uid)
        assert not error and not left, f"destroy of a frozen lab host: {error!r}; left: {left}"
    finally:
        thaw_and_remove(settings, host.id)
        try:
            host.destroy()
        except Exception:   # noqa: BLE001 - the session's reaper tries again
            pass


OWNER = r"""
import dataclasses, json, sys, time
sys.path.insert(0, "tests")
from conftest import sh
from web_support import wait_for
from webapp import executor
from webapp.config import Settings
from webapp.labhost.pool import create
settings = Settings(**json.loads(sys.argv[1]))
host = create(settings)
_, pidns = sh(host, "readlink /proc/1/ns/pid")
proc = executor.start(host, sys.stdin.read(), timeout=600, window=None)
print(json.dumps({"id": host.id, "slot": getattr(host, "slot", None), "uid": getattr(host, "uid", None),
                  "pidns": pidns.strip()}), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_gc_removes_a_frozen_lab_host_whose_server_is_gone(settings):
    """A server made a lab host whose learner froze it; the server is killed;
    ``gc`` must remove it completely."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER, json.dumps(dataclasses.asdict(settings))], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meta = None
    try:
        owner.stdin.write(attack("freeze.py"))
        owner.stdin.close()
        line = owner.stdout.readline()
        assert line, f"the owner did not make a lab host: {owner.stderr.read()[-3000:]}"
        meta = json.loads(line)
        frozen = wait_for(lambda: frozen_cgroups(meta["id"]), 20, what="the lab host to freeze itself")
        print(f"frozen: {frozen}")
    finally:
        owner.kill()
        owner.wait()
    try:
        removed: list[str] = []
        error = returns_within(lambda: removed.extend(reaper.gc(settings)), 120, "gc from a frozen lab host")
        left = leftovers(settings, meta["id"], meta["pidns"], meta["slot"], meta["uid"])
        assert not error and not left, f"gc of a frozen orphan: removed {removed}, {error!r}; left: {left}"
        assert meta["id"] in removed
    finally:
        thaw_and_remove(settings, meta["id"])


# -- 5. nothing the server opens inside a lab host resolves outside it -------------------------

def test_symlinked_docker_socket_never_reaches_the_machine(settings, fresh_lab_host):
    host = fresh_lab_host
    path = f"/var/lib/labnb-attack-{os.getpid()}.sock"
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(16)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept():
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue
    threading.Thread(target=accept, daemon=True).start()
    try:
        out = ok(host, f"""
            pid=$(cat /run/docker.pid); kill "$pid"
            for i in $(seq 200); do [ -e /proc/$pid ] || break; sleep 0.05; done
            [ ! -e /proc/$pid ] || {{ echo "dockerd did not stop"; exit 9; }}
            rm -f /run/docker.sock && ln -s {path} /run/docker.sock
            [ "$(readlink /run/docker.sock)" = {path} ] && [ ! -e {path} ] && echo SYMLINKED""")
        assert "SYMLINKED" in out, f"the attack could not put its symlink in place: {out}"
        results = []
        for _ in range(3):
            results.append(f"health: {host.health()}")
            try:
                client = host.docker()
            except Exception as e:   # noqa: BLE001 - refusing is fine
                results.append(f"docker(): {type(e).__name__}: {e}")
                continue
            try:
                results.append(f"ping: {client.ping()}")
            except Exception as e:   # noqa: BLE001 - failing is fine
                results.append(f"ping: {type(e).__name__}")
            finally:
                client.close()
        time.sleep(0.5)
        reached = len(accepted)
        # the listener works: the machine itself can reach it
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(path)
            wait_for(lambda: len(accepted) > reached, 5, what="the listener to accept the machine's own connection")
        print("; ".join(results))
        assert reached == 0, f"the server connected {reached} times to {path} on the machine through the " \
                             f"lab host's /run/docker.sock symlink ({'; '.join(results)})"
    finally:
        done.set()
        listener.close()
        for conn in accepted:
            conn.close()
        os.unlink(path)


# -- 6. tmpfs mounts are bounded, the machine's binds locked ------------------------------------

FILL = """
f={dir}/labnb-fill-$$
dd if=/dev/zero of=$f bs=1M count={count} 2>&1; echo "rc=$?"
echo "size=$(stat -c %s $f)"; rm -f $f
"""


def _fill(host, d: str) -> tuple[int, int, str]:
    _, out = sh(host, FILL.format(dir=d, count=TMPFS_MAX_MB + 64), timeout=120)
    rc = re.search(r"rc=(\d+)", out)
    size = re.search(r"size=(\d+)", out)
    assert rc and size, f"the fill of {d} did not run: {out}"
    return int(rc.group(1)), int(size.group(1)), out


@pytest.mark.slow
def test_tmpfs_mounts_are_bounded_and_the_machines_binds_locked(settings, fresh_lab_host):
    host = fresh_lab_host
    problems = []
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/run", "/root"):
        rc, size, out = _fill(host, d)
        print(f"{d}: dd rc={rc}, wrote {size >> 20} MiB")
        if rc == 0 or "No space left on device" not in out or size > TMPFS_MAX_MB << 20:
            problems.append(f"{d}: dd wrote {size >> 20} MiB (rc={rc}), no ENOSPC within {TMPFS_MAX_MB} MiB")
    # as asked (util-linux's mount), then with mount(2) itself, keeping the flags a locked mount
    # must keep (MS_REMOUNT|MS_NOSUID|MS_NODEV): util-linux fails with EINVAL either way
    remounts = {
        "mount -o remount,size=2g /tmp": "mount -o remount,size=2g /tmp 2>&1; echo remount-rc=$?",
        "mount(2) MS_REMOUNT|MS_NOSUID|MS_NODEV size=2g": (
            "python3 -c \"import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
            "rc = libc.mount(None, b'/tmp', None, 32 | 2 | 4, b'size=2g'); "
            "print('remount-rc=%d' % rc, os.strerror(ctypes.get_errno()) if rc else '')\""),
    }
    for what, command in remounts.items():
        _, out = sh(host, command)
        assert "remount-rc=" in out, f"{what} did not run: {out}"
        rc, size, fill = _fill(host, "/tmp")
        print(f"after `{what}` ({' '.join(out.split())}): wrote {size >> 20} MiB")
        if rc == 0 or "No space left on device" not in fill or size > TMPFS_MAX_MB << 20:
            problems.append(f"{what} took effect ({' '.join(out.split())}): dd then wrote {size >> 20} MiB")
    probe = f".labnb-probe-{os.getpid()}"
    binds = 0
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        _, out = sh(host, f"[ -d {d} ] && [ ! -L {d} ] && mountpoint -q {d} || {{ echo SKIP; exit 0; }}; "
                          f"mount -o remount,rw,bind {d} 2>&1; echo remount-rc=$?; "
                          f"findmnt -n -o OPTIONS {d} | cut -d, -f1 | sed 's/^/mode=/'; "
                          f"touch {d}/{probe} 2>&1; echo touch-rc=$?; rm -f {d}/{probe}")
        if "SKIP" in out:
            continue
        binds += 1
        remount = re.search(r"remount-rc=(\d+)", out)
        touch = re.search(r"touch-rc=(\d+)", out)
        assert remount and touch, out
        if remount.group(1) == "0" or "mode=rw" in out or touch.group(1) == "0" or os.path.exists(f"{d}/{probe}"):
            mode = re.search(r"mode=(\w+)", out)
            problems.append(f"{d}: `mount -o remount,rw,bind` rc={remount.group(1)}, now "
                            f"{mode.group(1) if mode else '?'}, touch rc={touch.group(1)}")
        if os.path.exists(f"{d}/{probe}"):
            os.unlink(f"{d}/{probe}")
    assert binds >= 2, "the lab host shows neither /usr nor /etc as a bind mount"
    assert not problems, "\n".join(problems)


# -- 7. nothing about other lab hosts -------------------------------------------------------

def test_cgroup_fs_shows_nothing_of_another_lab_host(settings, lab_host, fresh_lab_host):
    a, b = lab_host, fresh_lab_host
    ok(b, "docker run -d --name labnb-busy-b busybox sleep 600 >/dev/null")
    prefix = b.id.rsplit("-", 1)[0]   # lh-<tag>: the ids of this state dir's lab hosts
    out = ok(a, f"""
        ls /sys/fs/cgroup >/dev/null && [ -n "$(find /sys/fs/cgroup -name cgroup.procs 2>/dev/null | head -1)" ] \\
            && echo SAW-CGROUPFS
        find /sys/fs/cgroup -name '*{b.id}*' 2>/dev/null | head -20 | sed 's/^/NAME /'
        find /sys/fs/cgroup -name 'lh-*' 2>/dev/null | grep -v -e '{a.id}' | head -20 | sed 's/^/OTHER /'
        grep -l -s -e '{b.id}' /proc/[0-9]*/cgroup /proc/[0-9]*/mountinfo /proc/self/mountinfo | head | sed 's/^/PROC /'
        for f in $(find /sys/fs/cgroup -path '*{b.id}*' \\( -name memory.usage_in_bytes -o -name memory.current \\) 2>/dev/null | head -3); do
            echo "MEMORY $f $(cat $f)"
        done
        echo AUDIT-END""", timeout=120)
    assert "SAW-CGROUPFS" in out and "AUDIT-END" in out, f"the search did not run: {out[-2000:]}"
    seen = [line for line in out.splitlines() if line.startswith(("NAME ", "OTHER ", "PROC ", "MEMORY "))]
    assert not seen, f"lab host {a.id} sees other lab hosts ({b.id}, {prefix}-*):\n" + "\n".join(seen[:30])


# -- 8. seccomp ---------------------------------------------------------------------------------

def test_kernel_interfaces_a_lab_does_not_need_are_refused(settings, lab_host):
    out = ok(lab_host, attack("syscalls.py"))
    report = json.loads(re.search(r"SYSCALLS (\{.*\})", out).group(1))
    calls = report["calls"]
    print(f"Seccomp (mode, filters): {report['seccomp']}")
    for name, (ret, err) in calls.items():
        print(f"  {name:18} ret={ret} errno={err}")
    allowed = {name: (ret, err) for name, (ret, err) in calls.items() if not (ret == -1 and err in ("EPERM", "ENOSYS"))}
    # what the labs need still works
    needs = {}
    for what, command in (("ip netns", "ip netns add labnb-sec && ip netns exec labnb-sec ip link set lo up "
                                        "&& ip netns delete labnb-sec"),
                          ("docker run --network none", "docker run --rm --network none busybox true"),
                          ("unshare -n", "unshare -n true")):
        outcome, text = sh(lab_host, command)
        if outcome.exit_code != 0:
            needs[what] = text.strip()[-300:]
    assert not allowed, f"not refused (ret, errno): {allowed}"
    assert not needs, f"what labs need no longer works: {needs}"
