"""Workshop benchmark: N learners join a workshop at once and each runs lab 1
from its first step to its last, all at the same time, through real HTTP
sessions and Socket.IO clients against a real `labnb serve --workshop`
(gunicorn, sandbox lab hosts, the warm pool sized for the room), while an
instructor's dashboard client takes the state the server pushes.

- all_ready_s: from N joins sent at once until every learner holds a ready
  lab host with the lab set up.
- first_output_p50_ms / first_output_p95_ms: Socket.IO "run" of a step until
  its first output, over every learner and step.
- step_done_p50_s / step_done_p95_s: until the run's end, likewise.
- dashboard_lag_p50_ms / dashboard_lag_p95_ms: a run's end, as its learner's
  client hears it, until the instructor's dashboard is pushed a state that
  shows it (one sample per run).
- runs_passed / runs: runs that ended done with every check passed.
- errors: requests, events or runs that failed (with the first few listed).
- server_rss_mb: the server worker's RSS at the end.

Usage, as root on an otherwise idle machine:
    .venv/bin/python bench/workshop.py [N]      (N learners, 30 by default)
The last line printed is one JSON object.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_support import ROOT, Server, wait_for  # noqa: E402

from webapp.lab import plain_text  # noqa: E402

LAB = "01-network-modes"
CODE = "bench-00000"
MEMORY_MB = 512    # per lab host: 30 of them and the server fit a 24 GiB machine


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def lab_steps() -> list[str]:
    text = (ROOT / "labs" / f"{LAB}.md").read_text()
    return re.findall(r"^## .*\{#([\w-]+)\}\s*$", text, re.M)


class Learner:
    """One learner's browser: joins with the code and a name, then a Socket.IO client on the lab."""

    def __init__(self, server: Server, no: int):
        self.server, self.name = server, f"learner-{no:02d}"
        self.http = requests.Session()
        self.client = None
        self.first: dict[str, float] = {}
        self.ends: dict[str, dict] = {}
        self.ended_at: list[tuple[str, float]] = []   # (step, when its end was heard)
        self.failed: list[str] = []                   # the runs that did not pass, and why
        self.output: dict[str, bytearray] = {}         # each run's output, as sent
        self.failed_output: list[str] = []            # the output of each run that did not pass

    def join(self) -> None:
        page = self.http.get(f"{self.server.url}/join?code={CODE}", timeout=30)
        page.raise_for_status()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = self.http.post(f"{self.server.url}/join", data={"csrf": csrf, "code": CODE, "name": self.name},
                           timeout=30)
        r.raise_for_status()
        assert r.url.endswith(f"/labs/{LAB}"), f"{self.name} was not seated: {r.url}"
        self.server.open_lab(self.http, LAB)

    def connect(self) -> None:
        self.client = self.server.socket(self.http)
        self.client.on("output", self._output)
        self.client.on("end", lambda m: self.ends.setdefault(m["run"], {**m, "at": time.perf_counter()}))
        self.client.call("open", {"lab": LAB}, timeout=30)

    def _output(self, m: dict) -> None:
        self.first.setdefault(m["run"], time.perf_counter())
        self.output.setdefault(m["run"], bytearray()).extend(m["data"])

    def run_lab(self, steps: list[str]) -> list[tuple[float, float, bool]]:
        return [self.run(step) for step in steps]

    def run(self, step: str) -> tuple[float, float, bool]:
        """(seconds to first output, seconds to the end, passed) of one run of ``step``."""
        t0 = time.perf_counter()
        reply = self.client.call("run", {"lab": LAB, "step": step}, timeout=60)
        assert "run" in reply, f"{self.name} {step}: {reply}"
        run = reply["run"]
        end = wait_for(lambda: self.ends.get(run), 300, what=f"the end of {step}")
        self.ended_at.append((step, end["at"]))
        passed = end["status"] == "done" and all(c["passed"] for c in end["checks"])
        if not passed:
            self.failed.append(f"{step}: {end['status']}, " + ", ".join(
                c.get("hint") or c.get("kind", "check") for c in end["checks"] if not c["passed"]))
            self.failed_output.append(f"{self.name} {step}:\n" + plain_text(bytes(self.output.get(run, b"")).decode(
                errors="replace")).strip()[-3000:])
        return self.first.get(run, end["at"]) - t0, end["at"] - t0, passed


class Dashboard:
    """The instructor's dashboard: when each learner's step was first shown ended."""

    def __init__(self, server: Server):
        self.http = server.operator()
        self.shown: dict[tuple[str, str], list[float]] = {}   # (name, step): when each new end was first shown
        self._last: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.client = server.socket(self.http)
        self.client.on("workshop", self._pushed)

    def _pushed(self, state: dict) -> None:
        at = time.perf_counter()
        with self.lock:
            for learner in state["learners"]:
                for step, s in learner["steps"].get(LAB, {}).items():
                    key = (learner["name"], step)
                    if s.get("ended") and self._last.get(key) != s["ended"]:
                        self._last[key] = s["ended"]
                        self.shown.setdefault(key, []).append(at)

    def lags(self, learners: list[Learner]) -> list[float]:
        """For each run's end: how long until the dashboard showed it (the first showing after it)."""
        out = []
        with self.lock:
            for learner in learners:
                for step, heard in learner.ended_at:
                    later = [t for t in self.shown.get((learner.name, step), []) if t >= heard - 1.0]
                    if later:
                        out.append(max(0.0, min(later) - heard))
        return out


def at_once(learners: list[Learner], work, errors: list[str]) -> list:
    """Call ``work(learner)`` for every learner at the same moment; their results (None where it failed)."""
    results: list = [None] * len(learners)
    go = threading.Barrier(len(learners))

    def one(i: int) -> None:
        go.wait()
        try:
            results[i] = work(learners[i])
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors.append(f"{learners[i].name}: {type(e).__name__}: {e}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(learners))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    steps = lab_steps()
    server = Server(f"/var/lib/labnb-bench-workshop-{os.getpid()}", uid_slot=8, pool_size=n, env={
        "LABNB_WORKSHOP": "1", "LABNB_CAPACITY": str(n), "LABNB_ACCESS_CODE": CODE, "LABNB_WORKSHOP_LABS": LAB,
        "LABNB_LABS_DIR": str(ROOT / "labs"), "LABNB_MEMORY_MB": str(MEMORY_MB),
        "LABNB_MAX_LAB_HOSTS": str(n + 2),
    })
    learners: list[Learner] = []
    errors: list[str] = []
    dashboard = None
    try:
        server.prepare().start()
        t0 = time.perf_counter()
        operator = server.operator()

        def pool_full():   # the pool fills one lab host at a time
            page = operator.get(f"{server.url}/lab-hosts", timeout=30).text
            return int(re.search(r'data-waiting="(\d+)"', page).group(1)) >= n
        wait_for(pool_full, 30 * n, 1, "the warm pool to fill")
        print(f"the warm pool of {n} filled in {time.perf_counter() - t0:.0f} s")
        dashboard = Dashboard(server)
        learners = [Learner(server, i + 1) for i in range(n)]
        t0 = time.perf_counter()
        at_once(learners, Learner.join, errors)
        ready_s = time.perf_counter() - t0
        print(f"{n} learners joined and ready in {ready_s:.2f} s")
        at_once(learners, Learner.connect, errors)
        t0 = time.perf_counter()
        results = at_once(learners, lambda learner: learner.run_lab(steps), errors)
        print(f"{n} learners ran the {len(steps)} steps of {LAB} in {time.perf_counter() - t0:.1f} s")
        runs = [r for per_learner in results if per_learner for r in per_learner]
        firsts, dones = [r[0] for r in runs], [r[1] for r in runs]
        passed = sum(r[2] for r in runs)
        failed = [f"{learner.name} {why}" for learner in learners for why in learner.failed]
        errors += [f"a run failed its checks ({len(runs) - passed} of {len(runs)}): " + "; ".join(failed[:5])] * (
            len(runs) - passed > 0)
        time.sleep(1)   # the last pushes
        lags = dashboard.lags(learners)
        with open(f"/proc/{server.worker_pid()}/status") as f:
            rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        refused = [line for line in server.log.read_text().splitlines()
                   if re.search(r" ERROR |refused .* from |Traceback", line)]
    finally:
        for client in [learner.client for learner in learners] + [dashboard.client if dashboard else None]:
            if client is not None:
                client.disconnect()
        server.cleanup()
    for e in errors[:10]:
        print("error:", e)
    for text in [t for learner in learners for t in learner.failed_output][:3]:
        print("output of a failed run:", text, sep="\n")
    for line in refused[:10]:
        print("server:", line)
    print(json.dumps({
        "learners": n,
        "steps": len(steps),
        "all_ready_s": round(ready_s, 2),
        "first_output_p50_ms": round(pct(firsts, 50) * 1000, 1),
        "first_output_p95_ms": round(pct(firsts, 95) * 1000, 1),
        "step_done_p50_s": round(pct(dones, 50), 2),
        "step_done_p95_s": round(pct(dones, 95), 2),
        "dashboard_lag_p50_ms": round(pct(lags, 50) * 1000, 1),
        "dashboard_lag_p95_ms": round(pct(lags, 95) * 1000, 1),
        "dashboard_samples": len(lags),
        "runs_passed": passed,
        "runs": len(runs),
        "errors": len(errors),
        "server_rss_mb": round(rss_mb, 1),
    }))


if __name__ == "__main__":
    main()
