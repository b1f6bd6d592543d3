"""Lab host benchmark: cold start, parallel start, warm claim, memory, idle CPU, exec overhead.

Idle CPU: the user and system CPU of all of a lab host's processes over
IDLE_S seconds, for lab hosts claimed and idle (dockerd and containerd
running) and for lab hosts waiting in the warm pool (frozen).

Run as root on an otherwise idle machine:  .venv/bin/python bench/labhost.py
Prints one line per measurement, and as its last line one JSON object.
Uses its own state dir (/var/lib/labnb-bench) and removes every lab host it made.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

from webapp import executor
from webapp.config import Settings
from webapp.labhost import image, reaper
from webapp.labhost.pool import Pool, create
from webapp.labhost.sandbox import build_seed
from webapp.labhost.statedir import image_archive, prepare_state_dir


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def cold_start(settings: Settings, runs: int = 10) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        host = create(settings)
        times.append(time.monotonic() - t0)
        host.destroy()
    return times


def parallel(settings: Settings, n: int = 16) -> float:
    hosts, errors = [], []

    def one():
        try:
            hosts.append(create(settings))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for h in hosts:
        h.destroy()
    if errors:
        raise SystemExit(f"{len(errors)} of {n} lab hosts failed: {errors[0]}")
    return elapsed


def warm_claims(settings: Settings, runs: int = 10) -> list[float]:
    pool = Pool(settings, size=2).start()
    times = []
    try:
        for _ in range(runs):
            pool.wait_full(120)
            t0 = time.monotonic()
            host = pool.claim()
            times.append((time.monotonic() - t0) * 1000)
            pool.release(host)
    finally:
        pool.close()
    return times


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def idle_memory(settings: Settings, n: int = 10) -> float:
    hosts = [create(settings) for _ in range(n)]
    try:
        time.sleep(3)   # let start-up garbage settle
        per_host = [sum(pss_kb(p) for p in h.subtree.pids()) / 1024 for h in hosts]
    finally:
        for h in hosts:
            h.destroy()
    return statistics.mean(per_host)


IDLE_S = 30


def idle_cpu(settings: Settings, n: int = 3) -> tuple[float, float]:
    """(% of a core per claimed idle lab host, per lab host waiting in the pool), over IDLE_S s."""
    pool = Pool(settings, size=n).start()
    try:
        assert pool.wait_full(60 * n), "the warm pool did not fill"
        claimed = [pool.claim() for _ in range(n)]   # thawed; the pool refills with n frozen ones
        assert pool.wait_full(60 * n), "the warm pool did not refill"
        waiting = list(pool._ready)
        time.sleep(3)   # let start-up settle
        hosts = claimed + waiting
        before, t0 = [h.subtree.cpu_seconds() for h in hosts], time.monotonic()
        time.sleep(IDLE_S)
        after, dt = [h.subtree.cpu_seconds() for h in hosts], time.monotonic() - t0
    finally:
        pool.close()
    pct = [100 * (a - b) / dt for a, b in zip(after, before)]
    return statistics.mean(pct[:n]), statistics.mean(pct[n:])


def exec_overhead(settings: Settings, runs: int = 30) -> tuple[float, float]:
    host = create(settings)
    try:
        plain_argv = ["nsenter", "-t", str(host.pid), "-U", "-n", "-m", "-u", "-i", "-p", "--", "true"]
        ours, plain = [], []
        for _ in range(runs):
            t0 = time.monotonic()
            executor.start(host, "true", window=None).wait()
            ours.append((time.monotonic() - t0) * 1000)
            t0 = time.monotonic()
            subprocess.run(plain_argv, check=True)
            plain.append((time.monotonic() - t0) * 1000)
        return statistics.median(ours), statistics.median(plain)
    finally:
        host.destroy()


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/labhost.py makes sandbox lab hosts: run it as root")
    settings = Settings(state_dir="/var/lib/labnb-bench", max_lab_hosts=32)
    prepare_state_dir(settings)
    image.build(image_archive(settings))
    build_seed(settings)   # as `labnb image build` does
    try:
        cold = cold_start(settings)
        print(f"cold start, 10 one at a time: p50 {pct(cold, 50):.3f} s, p95 {pct(cold, 95):.3f} s")
        par = parallel(settings)
        print(f"16 at once: all ready in {par:.2f} s")
        warm = warm_claims(settings)
        print(f"warm claim: p50 {pct(warm, 50):.1f} ms")
        mem = idle_memory(settings)
        print(f"idle lab host: {mem:.1f} MB PSS (mean of 10)")
        busy, frozen = idle_cpu(settings)
        print(f"idle CPU over {IDLE_S} s: {busy:.2f} % of a core per claimed lab host, "
              f"{frozen:.2f} % per lab host waiting in the pool (mean of 3 each)")
        ours, plain = exec_overhead(settings)
        print(f"exec `true`: executor {ours:.1f} ms, plain nsenter {plain:.1f} ms (p50)")
    finally:
        reaper.gc(settings, everything=True)
    print(json.dumps({
        "cold_start_p50_s": round(pct(cold, 50), 3), "cold_start_p95_s": round(pct(cold, 95), 3),
        "parallel_16_all_ready_s": round(par, 2), "warm_claim_p50_ms": round(pct(warm, 50), 1),
        "unique_mem_mb_per_idle_lab_host": round(mem, 1), "idle_cpu_pct_per_lab_host": round(busy, 2),
        "idle_cpu_pct_per_pool_lab_host": round(frozen, 2), "exec_overhead_p50_ms": round(ours - plain, 1),
    }))


if __name__ == "__main__":
    main()
