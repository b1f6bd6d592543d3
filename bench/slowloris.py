"""Slowloris benchmark: a learner's page and run while 4,000 connections trickle their request heads.

A real ``labnb serve`` (gunicorn, a sandbox lab host) on loopback; one learner with the test lab open.
Each round, as a learner's browser: the lab page on a new connection, a new Socket.IO connection that
opens the lab, and a run of the step ``echo x`` on it until its first output. ROUNDS rounds (PACE s apart)
without the attack, then ROUNDS with it, in the same run. The attack (tests/slowloris_support.py): 2,000 connections
from 127.0.0.1 (the learner's own address) and 200 from each of 127.0.0.2 to 127.0.0.11, each sending
``GET / HTTP/1.1`` and then a header a byte every 4 s; the server closes slow ones (webapp/heads.py) and
the attack opens them again at its next byte.

- page_p50_ms / page_p95_ms: GET of the lab page, from connecting until the whole page is read.
- socket_p50_ms / socket_p95_ms: a new Socket.IO connection until the lab's "open" is answered.
- first_output_p50_ms / first_output_p95_ms: Socket.IO "run" until the output "x" arrives.
- each with _attack: the same under the attack; *_ratio: p50 under the attack / p50 without.
- attack_open: the attack's connections open at the end (the rest were closed and not yet opened again);
  attack_closed_per_s: how many the server closed per second meanwhile; attack_answers: by status.
- worker_fds / worker_threads / worker_rss_mb: the server's worker, without and under the attack.

Usage, as root on an otherwise idle machine:
    .venv/bin/python bench/slowloris.py
The last line printed is one JSON object.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from slowloris_support import HEAD, Group, Slowloris  # noqa: E402
from web_support import TEST_LAB, Server, wait_for  # noqa: E402

ROUNDS = 30
PACE = 0.5     # seconds between two rounds: the attack's phase spans several of its ticks
EVERY = 4.0    # seconds between two bytes of an attacking connection
PATIENCE = 60  # seconds a page or an answer may take before the benchmark gives up
ATTACK = [Group("127.0.0.1", 2000, **HEAD)] + [Group(f"127.0.0.{i}", 200, **HEAD) for i in range(2, 12)]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def worker(server: Server) -> dict:
    pid = server.worker_pid()
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1)}


def rounds(server: Server, http: requests.Session) -> dict[str, list[float]]:
    """ROUNDS of a learner's page, Socket.IO connection and first output, in seconds."""
    times: dict[str, list[float]] = {"page": [], "socket": [], "first_output": []}
    for _ in range(ROUNDS):
        time.sleep(PACE)
        t0 = time.perf_counter()
        page = requests.get(f"{server.url}/labs/{TEST_LAB}", cookies=http.cookies, timeout=PATIENCE)
        times["page"].append(time.perf_counter() - t0)
        assert page.status_code == 200, page.text

        got, ended, output = threading.Event(), threading.Event(), bytearray()

        def on_output(m):
            output.extend(m["data"])   # "x" and its line end may come apart
            if b"x\r\n" in output.replace(b"$ echo x", b""):
                got.set()
        t0 = time.perf_counter()
        client = server.socket(http)
        try:
            client.on("output", on_output)
            client.on("end", lambda m: ended.set())
            client.call("open", {"lab": TEST_LAB}, timeout=PATIENCE)
            times["socket"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reply = client.call("run", {"lab": TEST_LAB, "step": "echo"}, timeout=PATIENCE)
            assert "run" in reply, reply
            assert got.wait(PATIENCE), f"no output x in {PATIENCE} s: {bytes(output)!r}"
            times["first_output"].append(time.perf_counter() - t0)
            assert ended.wait(PATIENCE), f"the run did not end in {PATIENCE} s"
        finally:
            client.disconnect()
    return times


def main() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # the attack's 4,000 sockets
    # uid slots 63 and 64, which no test uses: it may run while they do
    server = Server(f"/var/lib/labnb-bench-slowloris-{os.getpid()}", uid_slot=63, pool_size=1,
                    env={"LABNB_MAX_LAB_HOSTS": "2"})
    try:
        server.prepare().start()
        http = server.learner()
        server.open_lab(http)
        rounds(server, http)    # warm up
        quiet, quiet_worker = rounds(server, http), worker(server)
        print(f"without the attack: page p50 {statistics.median(quiet['page']) * 1000:.1f} ms, "
              f"first output p50 {statistics.median(quiet['first_output']) * 1000:.1f} ms; worker {quiet_worker}")
        with Slowloris(server.port, ATTACK, EVERY) as attack:
            total = sum(g.count for g in ATTACK)
            wait_for(lambda: attack.opened >= total and attack.ticks >= 3, 120, 0.5, "the attack's connections")
            t0, closed0 = time.perf_counter(), attack.closed
            attacked = rounds(server, http)
            attacked_worker = worker(server)
            closed_per_s = (attack.closed - closed0) / (time.perf_counter() - t0)
            answers = dict(attack.statuses)
            open_now, failed = attack.open_now(), attack.failed
        print(f"under the attack ({total} connections, {open_now} open at the end, {closed_per_s:.0f} closed "
              f"by the server a second, answers {answers}, {failed} not opened): page p50 "
              f"{statistics.median(attacked['page']) * 1000:.1f} ms, first output p50 "
              f"{statistics.median(attacked['first_output']) * 1000:.1f} ms; worker {attacked_worker}")
    finally:
        server.cleanup()
    out: dict = {}
    for name in quiet:
        for label, times in (("", quiet[name]), ("_attack", attacked[name])):
            out[f"{name}_p50_ms{label}"] = round(statistics.median(times) * 1000, 1)
            out[f"{name}_p95_ms{label}"] = round(pct(times, 95) * 1000, 1)
        out[f"{name}_ratio"] = round(statistics.median(attacked[name]) / statistics.median(quiet[name]), 2)
    print(json.dumps({
        **out,
        "attack_connections": total, "attack_open": open_now, "attack_closed_per_s": round(closed_per_s),
        "attack_answers": answers,
        **{f"worker_{k}": v for k, v in quiet_worker.items()},
        **{f"worker_{k}_attack": v for k, v in attacked_worker.items()},
    }))


if __name__ == "__main__":
    main()
