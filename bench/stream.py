"""Streaming benchmark: a real ``labnb serve`` (gunicorn, sandbox lab hosts)
and real Socket.IO clients on loopback.

- run_to_first_byte_p50_ms: Socket.IO "run" of a step ``echo x`` until the
  event carrying its output "x", minus the same command run through the
  executor alone (to its first output) on a lab host of the same kind: what
  the server adds (store, events, Socket.IO) to a learner's first byte.
- stream_mb_per_s: 200 MB of output to one client that acknowledges each chunk.
- server_rss_growth_mb_slow_client: the server worker's peak RSS growth while
  200 MB is produced with two tabs attached, one acknowledging and one that
  never does (so the output is produced, and the slow tab must not hold it).
- browser_stream_mb_per_s: 50 MB of 80-character lines into a lab page in
  Debian's chromium (headless, driven by Playwright), from the click on Run
  to the cell showing "done"; browser_longest_task_ms: the longest task on
  the page's main thread meanwhile (how long the page could not respond).
  The browser shares the server's cores here; a learner's browser has its own.

The last line printed is one JSON object with the numbers.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from web_support import CHROMIUM_ARGS, TEST_LAB, Server  # noqa: E402

from webapp import executor  # noqa: E402
from webapp.config import Settings  # noqa: E402
from webapp.labhost.pool import create  # noqa: E402

ROUNDS = 30
FLOOD = 200_000_000


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def first_bytes(one) -> list[float]:
    """Seconds until ``one()`` returns (it starts a command and waits for its
    first byte), ROUNDS times after 3 rounds to warm up; ``one`` returns what
    waits for the command's end, which is not timed."""
    times = []
    for _ in range(ROUNDS + 3):
        t0 = time.perf_counter()
        wait_end = one()
        times.append(time.perf_counter() - t0)
        wait_end()
    return times[3:]


def executor_first_byte(settings: Settings) -> list[float]:
    host = create(settings)

    def one():
        first = threading.Event()
        proc = executor.start(host, "echo x", on_output=lambda d: first.set(), window=None)
        first.wait(10)
        return lambda: proc.wait(10)
    try:
        return first_bytes(one)
    finally:
        host.destroy()


def socket_first_byte(server: Server, http) -> list[float]:
    client = server.socket(http)
    got, ended = threading.Event(), threading.Event()
    client.on("output", lambda m: got.set() if b"x\r\n" in m["data"].replace(b"$ echo x", b"") else None)
    client.on("run_ended", lambda m: ended.set())
    client.call("open", {"lab": TEST_LAB})

    def one():
        got.clear()
        ended.clear()
        client.emit("run", {"lab": TEST_LAB, "step": "echo"})
        got.wait(10)
        return lambda: ended.wait(10)
    try:
        return first_bytes(one)
    finally:
        client.disconnect()


def flood(server: Server, http, slow_tab: bool) -> tuple[float, int, int]:
    """(seconds, bytes received by the acknowledging tab, peak RSS growth of the worker in KiB)."""
    fast = server.socket(http)
    received, done = [0], threading.Event()

    def on_output(m):
        received[0] += len(m["data"])
        fast.emit("ack", {"run": m["run"], "end": m["end"]})
    fast.on("output", on_output)
    fast.on("end", lambda m: done.set())
    slow = None
    if slow_tab:
        slow = server.socket(http)
        slow.call("open", {"lab": TEST_LAB})
        slow.on("run_started", lambda m: slow.emit("attach", {"run": m["run"], "after": -1, "end": 0}))
    worker = server.worker_pid()
    base, peak = rss_kb(worker), [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], rss_kb(worker))
            time.sleep(0.05)
    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    reply = fast.call("run", {"lab": TEST_LAB, "step": "flood"}, timeout=30)
    assert "run" in reply, reply
    done.wait(600)
    seconds = time.perf_counter() - t0
    sampling.set()
    sampler.join()
    fast.disconnect()
    if slow is not None:
        slow.disconnect()
    return seconds, received[0], peak[0] - base


def browser(server: Server) -> tuple[float, float]:
    """(seconds for 50 MB of lines into a lab page, the page's longest task in ms)."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = chromium.new_page()
            page.goto(f"{server.url}/labs/{TEST_LAB}?token={server.token}")
            expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=120_000)
            page.evaluate("""() => { window.longest = 0; new PerformanceObserver(list => list.getEntries()
                .forEach(e => { window.longest = Math.max(window.longest, e.duration); }))
                .observe({ type: "longtask" }); }""")
            t0 = time.perf_counter()
            page.locator(".cell[data-step='lines'] button.run").click()
            # polled once a second: Playwright's own polling would take the cores measured
            # (and the page's CSP forbids the eval its wait_for_function needs)
            cell = page.locator(".cell[data-step='lines']")
            deadline = time.monotonic() + 600
            while cell.get_attribute("data-status") != "done" and time.monotonic() < deadline:
                time.sleep(1)
            seconds = time.perf_counter() - t0
            return seconds, page.evaluate("window.longest")
        finally:
            chromium.close()


def main() -> None:
    server = Server(f"/var/lib/labnb-bench-stream-{os.getpid()}", uid_slot=8, pool_size=1)
    try:
        server.prepare().start()
        http = server.learner()
        server.open_lab(http)
        settings = Settings.from_env(state_dir=server.state_dir,
                                     uid_base=int(server.env["LABNB_UID_BASE"]),
                                     max_lab_hosts=int(server.env["LABNB_MAX_LAB_HOSTS"]))
        alone = executor_first_byte(settings)
        served = socket_first_byte(server, http)
        seconds, received, _ = flood(server, http, slow_tab=False)
        slow_seconds, slow_received, growth_kb = flood(server, http, slow_tab=True)
        browser_seconds, longest_ms = browser(server)
    finally:
        server.cleanup()
    alone_ms, served_ms = statistics.median(alone) * 1000, statistics.median(served) * 1000
    print(f"echo x, first byte: executor alone p50 {alone_ms:.1f} ms, through Socket.IO p50 {served_ms:.1f} ms")
    print(f"200 MB to one acknowledging tab: {received} bytes in {seconds:.2f} s")
    print(f"with a tab that never acknowledges beside it: {slow_received} bytes in {slow_seconds:.2f} s, "
          f"worker RSS grew {growth_kb / 1024:.1f} MB at most")
    print(f"50 MB of lines into a lab page in chromium: {browser_seconds:.2f} s, longest task {longest_ms:.0f} ms")
    assert received >= FLOOD and slow_received >= FLOOD, "a flood did not arrive whole"
    print(json.dumps({
        "run_to_first_byte_p50_ms": round(served_ms - alone_ms, 2),
        "run_to_first_byte_socketio_p50_ms": round(served_ms, 2),
        "executor_first_byte_p50_ms": round(alone_ms, 2),
        "stream_mb_per_s": round(received / seconds / 1e6, 1),
        "server_rss_growth_mb_slow_client": round(growth_kb / 1024, 1),
        "browser_stream_mb_per_s": round(50 / browser_seconds, 1),
        "browser_longest_task_ms": round(longest_ms),
    }))


if __name__ == "__main__":
    main()
