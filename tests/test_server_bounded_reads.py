"""What the server reads from a lab host is bounded, and every wait on one has a deadline (issue 27,
items 3 and 8), attacked for real. The learner is root in their lab host: they put programs first on
its PATH (``/run/labnb/bin``) or bind them over the machine's (``/usr/bin/bash``), print without end
where the server's own jobs read (the ``requires`` probe, a check block), and freeze the lab host with
its own cgroup freezer while a step runs. Memory is the peak RSS of the process that runs the job
(VmHWM, reset first; ``ru_maxrss`` of ``labnb run``), never a time.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import LABNB, labnb, labnb_env, sh
from test_security import attack, frozen_cgroups, thaw_and_remove
from web_support import Server, _state_dir, wait_for
from webapp.labhost.offers import PROBES, probe

ROOT = Path(__file__).resolve().parent.parent
PROBE_FLOOD = 256 << 20       # what the learner's bash prints when the probe runs it
CHECK_FLOOD = 256 << 20      # what a step's command and its check each print
GROWTH_MAX = 64 << 20        # what the server's memory may grow by while it reads a probe's flood
RUN_PEAK_MAX = 256 << 20     # the peak RSS of `labnb run` (and of any process of its lab host: dockerd)
FREEZE_DEADLINE = 240        # seconds `labnb run` may take to give up on a frozen lab host
SERVER_SLOT = 63             # uid slot of this module's server, which makes no lab host (web_support.py lists the others)

# A `bash` that floods its stdout when the requires probe runs it, then is bash; it leaves a mark that it ran.
FAKE_BASH = f"""#!/bin/sh
case "$*" in *"docker info"*) touch /run/labnb/fake-bash-ran; yes labnb-flood | head -c {PROBE_FLOOD} ;; esac
exec /run/labnb/real-bash "$@"
"""


def _status(field: str) -> int:
    """A size from /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith(field + ":"))


def _growth(call):
    """What ``call`` returns, and how far it took this process's RSS above where it was (VmHWM, reset first)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status("VmRSS")
    result = call()
    return result, _status("VmHWM") - before


def _plant_bash(host, how: str) -> None:
    """The learner's bash: first on PATH (``path``), or bound over the machine's own (``mount``)."""
    put = {"path": "cp /run/labnb/fake-bash /run/labnb/bin/bash",
           "mount": 'mount --bind /run/labnb/fake-bash "$(readlink -f /bin/bash)"'}[how]
    outcome, out = sh(host, f"""cp "$(readlink -f /bin/bash)" /run/labnb/real-bash
cat > /run/labnb/fake-bash <<'LABNB_FAKE_EOF'
{FAKE_BASH}LABNB_FAKE_EOF
chmod 755 /run/labnb/fake-bash && {put} && echo PLANTED""")
    assert outcome.exit_code == 0 and "PLANTED" in out, f"the fake bash could not be put in place: {out}"


def _fake_ran(host) -> bool:
    _outcome, out = sh(host, "test -e /run/labnb/fake-bash-ran && echo RAN || echo NOT-RUN")
    return "RAN" in out.split()


@pytest.mark.slow
def test_probe_never_runs_the_learners_bash_from_path(fresh_lab_host):
    """A `bash` in /run/labnb/bin (first on PATH) that prints 256 MiB when the probe asks: the server's own
    job runs the machine's bash, by its path, and answers right with memory to spare."""
    host = fresh_lab_host
    _plant_bash(host, "path")
    offers, growth = _growth(lambda: probe(host))
    ran = _fake_ran(host)
    print(f"probe with a bash first on PATH: the server grew by {growth >> 20} MiB; the fake ran: {ran}")
    assert not ran, "the requires probe ran the learner's bash from /run/labnb/bin"
    assert offers == set(PROBES), offers
    assert growth < GROWTH_MAX, f"the server grew by {growth >> 20} MiB while it probed the lab host"


@pytest.mark.slow
def test_probe_reads_a_flood_from_a_bash_bound_over_the_machines_within_a_bound(fresh_lab_host):
    """The learner binds their `bash` over /usr/bin/bash itself, which no path avoids: the probe runs it,
    reads its 256 MiB within a bound, and still answers."""
    host = fresh_lab_host
    _plant_bash(host, "mount")
    offers, growth = _growth(lambda: probe(host))
    ran = _fake_ran(host)
    print(f"probe with a bash bound over the machine's: the server grew by {growth >> 20} MiB; the fake ran: {ran}")
    assert ran, "the attack did not run: the probe did not start the learner's bash"
    assert offers == set(PROBES), offers
    assert growth < GROWTH_MAX, f"the server grew by {growth >> 20} MiB while it read the probe's flood"


# `labnb run` in a process of its own, whose peak RSS (and its descendants') the wrapper prints last on stderr
PEAK = ("import resource, subprocess, sys\n"
        "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n")

FLOOD_LAB = f"""---
title: A step and a check that print without end
summary: For the server's bounded reads - each prints {CHECK_FLOOD >> 20} MiB.
---
# Floods

## Print a lot {{#flood}}

```sh {{"timeout": 600}}
yes labnb-step-output | head -c {CHECK_FLOOD}; echo; echo step-done
```

```check {{"hint": "the flood should end", "timeout": 600}}
yes labnb-check-output | head -c {CHECK_FLOOD}; echo check-done
```
"""


@pytest.mark.slow
def test_labnb_run_judges_a_flooding_check_with_bounded_memory(settings, tmp_path):
    """A step's command and its check each print 256 MiB: `labnb run` passes the step, its report keeps a
    head and a tail of each and says how much was cut, and its peak RSS stays bounded."""
    lab, report = tmp_path / "flood.md", tmp_path / "run.json"
    lab.write_text(FLOOD_LAB)
    out = subprocess.run([sys.executable, "-c", PEAK, *LABNB, "run", str(lab), "--json", str(report)],
                         env=labnb_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=1200)
    peak = int(out.stderr.strip().splitlines()[-1]) << 10
    print(f"labnb run with a flooding step and check: peak RSS {peak >> 20} MiB")
    assert out.returncode == 0, out.stderr[-3000:]
    [step] = json.loads(report.read_text())["steps"]
    assert step["status"] == "done" and [c["passed"] for c in step["checks"]] == [True], step
    [command] = step["commands"]
    assert command["output"].rstrip().endswith("step-done"), command["output"][-200:]
    assert "bytes of output cut here" in command["output"] and len(command["output"]) < 4 << 20
    assert peak < RUN_PEAK_MAX, f"labnb run took {peak >> 20} MiB to read {CHECK_FLOOD >> 20} MiB twice"


FREEZE_LAB = f"""---
title: A lab host that freezes itself
summary: For the deadlines on a lab host - its step freezes the lab host's own cgroup.
---
# Freeze

## Freeze {{#freeze}}

```sh {{"timeout": 10}}
{attack("freeze.py")}
```
"""


def _start_frozen_run(settings, lab: Path) -> tuple[subprocess.Popen, list[str], queue.Queue, str]:
    """`labnb run` on a lab that freezes its lab host, once the freeze froze: the process, the lines of
    its stdout so far and a queue of the next ones, and its lab host's id."""
    proc = subprocess.Popen([*LABNB, "run", str(lab)], env=labnb_env(settings), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    while not any("FREEZING" in line for line in seen):
        seen.append(lines.get(timeout=120))
        assert "REFUSED" not in seen[-1], f"the freeze attack could not freeze: {seen[-1]}"
    host_id = next(line.split()[-1] for line in seen if "lab host lh-" in line)
    wait_for(lambda: frozen_cgroups(host_id), 20, what=f"a cgroup of lab host {host_id} to be frozen")
    return proc, seen, lines, host_id


def _all(seen: list[str], lines: queue.Queue) -> str:
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen)


@pytest.mark.slow
def test_labnb_run_gives_up_on_a_frozen_lab_host_and_says_why(settings, tmp_path):
    """A step with a 10 s timeout freezes its lab host: `labnb run` ends by itself, the step an error
    that says the lab host does not answer, and the lab host is removed."""
    lab = tmp_path / "freeze.md"
    lab.write_text(FREEZE_LAB)
    proc, seen, lines, host_id = _start_frozen_run(settings, lab)
    try:
        try:
            code = proc.wait(timeout=FREEZE_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"labnb run still waits on frozen lab host {host_id} after {FREEZE_DEADLINE} s:\n"
                                 f"{_all(seen, lines)}") from None
        proc.stdout.close()
        out, err = _all(seen, lines), proc.stderr.read()
        print(out[-1500:])
        assert code == 1, out + err
        assert f"lab host {host_id} does not answer" in out and "FAILED (error)" in out, out
    finally:
        proc.kill()
        proc.wait()
        thaw_and_remove(settings, host_id)
    assert host_id not in [m["id"] for m in json.loads(labnb(settings, "lab-hosts", "ls", "--json").stdout)]


@pytest.mark.slow
def test_labnb_run_ends_on_sigterm_while_its_lab_host_is_frozen(settings, tmp_path):
    lab = tmp_path / "freeze.md"
    lab.write_text(FREEZE_LAB)
    proc, seen, lines, host_id = _start_frozen_run(settings, lab)
    try:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"labnb run ignored SIGTERM while lab host {host_id} was frozen") from None
        err = proc.stderr.read()
        assert code == 130, _all(seen, lines) + err
        assert "interrupted" in err, err
    finally:
        proc.kill()
        proc.wait()
        thaw_and_remove(settings, host_id)
    assert host_id not in [m["id"] for m in json.loads(labnb(settings, "lab-hosts", "ls", "--json").stdout)]


def _memory_cgroup(pid: int) -> Path:
    """The memory cgroup of ``pid``: in v1's memory hierarchy, or v2's tree."""
    with open(f"/proc/{pid}/cgroup") as f:
        entries = [line.rstrip("\n").split(":", 2) for line in f]
    v1 = [path for _id, controllers, path in entries if "memory" in controllers.split(",")]
    if v1:
        return Path("/sys/fs/cgroup/memory", v1[0].lstrip("/"))
    return Path("/sys/fs/cgroup", next(path for hid, _c, path in entries if hid == "0").lstrip("/"))


def _memory_limit(cgroup: Path) -> int | None:
    """Its memory limit in bytes, None for none."""
    name = "memory.limit_in_bytes" if (cgroup / "memory.limit_in_bytes").exists() else "memory.max"
    limit = (cgroup / name).read_text().strip()
    return None if limit == "max" or int(limit) >= 1 << 62 else int(limit)


def test_labnb_serve_runs_within_a_memory_limit_of_its_own():
    """`labnb serve`, its gunicorn master and its worker, run in a memory cgroup limited to
    LABNB_SERVER_MEMORY_MB, which is removed when it stops."""
    server = Server(_state_dir("memory"), uid_slot=SERVER_SLOT, pool_size=0,
                    env={"LABNB_MAX_LAB_HOSTS": "1", "LABNB_SERVER_MEMORY_MB": "768"})
    try:
        server.start()
        master, worker = server.proc.pid, server.worker_pid()
        cgroup = _memory_cgroup(master)
        print(f"labnb serve's memory cgroup: {cgroup}, limited to {_memory_limit(cgroup)}")
        assert _memory_cgroup(worker) == cgroup != _memory_cgroup(os.getpid())
        assert _memory_limit(cgroup) == 768 << 20
    finally:
        server.cleanup()
    assert not cgroup.exists(), f"the server's cgroup {cgroup} is left behind"
