"""Workshop benchmark: N learners open lab 1 at once, then all run its first
steps together, each step at once for everyone, through real Socket.IO
clients against a real `labnb serve` (gunicorn, sandbox lab hosts).

- all_hosts_ready_s: from N lab pages opened at once until every learner's
  lab host is ready (the warm pool holds POOL of them; the rest start then).
- first_output_p50_ms / first_output_p95_ms: Socket.IO "run" of a step until
  its first output event, over every learner and step.
- step_done_p50_s / step_done_max_s: until the run's end, likewise.
- runs_passed / runs: runs that ended done with every check passed.
- worker_rss_mb: the server worker's RSS at the end.

Usage, as root on an otherwise idle machine:
    .venv/bin/python bench/workshop.py [N]      (N learners, 16 by default)
The last line printed is one JSON object.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_support import LABNB, ROOT, Server, wait_for  # noqa: E402

LAB = "01-network-modes"
STEPS = ["networks", "docker0", "bridge-default"]
POOL = 2


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Learner:
    """One learner's browser: a session, and a Socket.IO client on the lab."""

    def __init__(self, server: Server):
        self.server, self.http = server, server.learner()
        self.client = None
        self.first: dict[str, float] = {}
        self.ends: dict[str, dict] = {}

    def open(self) -> None:
        self.server.open_lab(self.http, LAB)
        self.client = self.server.socket(self.http)
        self.client.on("output", lambda m: self.first.setdefault(m["run"], time.perf_counter()))
        self.client.on("end", lambda m: self.ends.setdefault(m["run"], {**m, "at": time.perf_counter()}))
        self.client.call("open", {"lab": LAB}, timeout=30)

    def run(self, step: str) -> tuple[float, float, bool]:
        """(seconds to first output, seconds to the end, passed) of one run of ``step``."""
        t0 = time.perf_counter()
        reply = self.client.call("run", {"lab": LAB, "step": step}, timeout=60)
        assert "run" in reply, reply
        run = reply["run"]
        end = wait_for(lambda: self.ends.get(run), 300, what=f"the end of {step}")
        passed = end["status"] == "done" and all(c["passed"] for c in end["checks"])
        return self.first.get(run, end["at"]) - t0, end["at"] - t0, passed


def pool_started(server: Server) -> bool:
    out = subprocess.run([LABNB, "lab-hosts", "ls"], env=server.env, capture_output=True, text=True).stdout
    return sum(line.startswith("lh-") and " running " in line for line in out.splitlines()) >= POOL


def at_once(learners: list[Learner], work) -> list:
    """Call ``work(learner)`` for every learner at the same moment; their results."""
    results: list = [None] * len(learners)
    errors: list[BaseException] = []
    go = threading.Barrier(len(learners))

    def one(i: int) -> None:
        go.wait()
        try:
            results[i] = work(learners[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(learners))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    server = Server(f"/var/lib/labnb-bench-workshop-{os.getpid()}", uid_slot=8, pool_size=POOL)
    server.env.update(LABNB_LABS_DIR=str(ROOT / "labs"), LABNB_MAX_LAB_HOSTS=str(n + POOL))
    learners: list[Learner] = []
    try:
        server.prepare().start()
        wait_for(lambda: pool_started(server), 60, what="the warm pool")
        learners = [Learner(server) for _ in range(n)]
        t0 = time.perf_counter()
        at_once(learners, Learner.open)
        ready_s = time.perf_counter() - t0
        firsts, dones, passed = [], [], 0
        for step in STEPS:
            for first, done, ok in at_once(learners, lambda learner: learner.run(step)):
                firsts.append(first)
                dones.append(done)
                passed += ok
            print(f"{step}: {n} runs at once, first output p50 {pct(firsts[-n:], 50) * 1000:.0f} ms, "
                  f"all done in {max(dones[-n:]):.2f} s")
        with open(f"/proc/{server.worker_pid()}/status") as f:
            rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    finally:
        for learner in learners:
            if learner.client is not None:
                learner.client.disconnect()
        server.cleanup()
    print(f"{n} learners: lab hosts ready in {ready_s:.2f} s; {passed} of {len(dones)} runs passed")
    print(json.dumps({
        "learners": n,
        "all_hosts_ready_s": round(ready_s, 2),
        "first_output_p50_ms": round(pct(firsts, 50) * 1000, 1),
        "first_output_p95_ms": round(pct(firsts, 95) * 1000, 1),
        "step_done_p50_s": round(pct(dones, 50), 2),
        "step_done_max_s": round(max(dones), 2),
        "runs_passed": passed,
        "runs": len(dones),
        "worker_rss_mb": round(rss_mb, 1),
    }))


if __name__ == "__main__":
    main()
