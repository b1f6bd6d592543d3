"""One learner's flood of Socket.IO events against the real server (issue 27, item 2): a real
python-socketio client sends, over one WebSocket, 10,000 events as fast as the server takes them (60 KiB
and one-byte ``shell_input`` into a shell that has stopped reading, replays of a 5 MB run asked for again
and again, and the lab page's other events), then 2,000 of 60 KiB without waiting at all, while another
tab keeps the shell and a run open. The worker serving them (gunicorn, a real sandbox lab host) must grow
by a bounded number of threads and less than 50 MB, and be back to its threads once the client has left.

Each of a tab's events is handled in order in its WebSocket's own thread (``async_handlers=False``), its
WebSocket reads only a few messages ahead and stops taking events while much of what it was sent waits
(webapp/stream/websocket.py), and input a terminal does not read is refused, not waited for. Before, each event
had a thread of its own, and each ``shell_input`` into a terminal that does not read held its thread 5 s
under a lock: 1,020 events took the worker from 341 to 1,357 threads, for over an hour; and each replay
was queued for the tab whether it read or not (300 took the worker 181 MiB further)."""
from __future__ import annotations

import threading
import time

import pytest

from web_support import TEST_LAB, ShellTab, Tab, wait_for

from webapp.stream.protocol import MAX_INPUT

pytestmark = pytest.mark.slow

EVENTS = 10_000
BIG = "x" * (60 << 10)       # 60 KiB, within MAX_INPUT: the most a tab may send at once
PACE = 250                   # events between two round trips (on a server that makes a thread of each, the
                             # test stops before it takes the machine's PIDs)
BURST = 2_000                # 60 KiB events sent at once: 120 MB
# Threads a tab may add to the worker's, however many events it sends: its WebSocket's reader, writer and
# ping timer, and the gunicorn thread that serves it (if none of its pool is idle): 4; and 6 more for what
# the server's own jobs start and end meanwhile. A thread per event, as before, is thousands.
THREADS_BOUND = 4 + 6
RSS_BOUND = 50 << 20
SETTLED = 1                  # threads over the baseline once the tab has gone (gunicorn's, idle in its pool)

assert len(BIG.encode()) <= MAX_INPUT


def others(big_run: str) -> list[tuple[str, dict]]:
    """The page's other events, and some it never sends; ``attach`` asks for a run's replay, 2 MB each time."""
    return [
        ("shell_resize", {"rows": 24, "cols": 80}), ("shell_ack", {"end": 0}), ("open", {"lab": TEST_LAB}),
        ("run", {"lab": TEST_LAB, "step": "ping"}), ("attach", {"run": big_run, "after": -1, "end": 0}),
        ("ack", {"run": big_run, "end": 1 << 40}), ("stop", {"run": "0" * 32}), ("no-such-event", {"x": 1}),
    ]


def status(pid: int) -> dict[str, int]:
    """The worker's thread count and resident memory (bytes), from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {"threads": int(fields["Threads"]), "rss": int(fields["VmRSS"].split()[0]) * 1024}


class Sampler:
    """The worker's peak threads and memory, sampled in a thread while the flood goes on."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = status(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.01):
            now = status(self.pid)
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peak


def event(i: int, other: list[tuple[str, dict]]) -> tuple[str, dict]:
    """The flood's i-th event: a tenth 60 KiB of input, six tenths one byte, the rest ``other``s."""
    kind = i % 10
    if kind == 0:
        return "shell_input", {"data": BIG}
    if kind <= 6:
        return "shell_input", {"data": "x"}
    return other[(i // 10 + kind) % len(other)]


@pytest.fixture(scope="module")
def big_run(web_server, learner) -> str:
    """A run of the learner's whose output (5 MB) is more than a replay sends (its head and tail, 2 MB)."""
    tab = Tab(web_server, learner)
    try:
        run = tab.run("big")
        assert tab.wait_end(run)["status"] == "done"
        return run
    finally:
        tab.close()


@pytest.fixture(scope="module")
def stuck(web_server, learner):
    """A tab of the learner's whose shell has stopped reading what is typed, and which keeps a run going."""
    keeper = ShellTab(web_server, learner)
    try:
        assert keeper.open() == {"ok": True}
        keeper.type("stty -icanon -echo; echo stuck-$((6*7)); sleep 100000\n")
        keeper.wait_text("stuck-42")
        run = keeper.client.call("run", {"lab": TEST_LAB, "step": "ping"}, timeout=30)["run"]
        time.sleep(1)   # the run's threads have started
        yield keeper
        keeper.client.call("stop", {"run": run}, timeout=30)
    finally:
        keeper.close()


def flood(web_server, learner, send) -> None:
    """Open another tab of the learner's terminal, ``send(tab, grown)`` from it (``grown()``: the threads
    the worker has grown by so far), close it; the worker's threads and memory stay within their bounds
    meanwhile, its input was refused, and its threads come back once the tab has gone."""
    pid = web_server.worker_pid()
    before = status(pid)
    sampler = Sampler(pid)
    tab = ShellTab(web_server, learner)
    try:
        assert tab.open() == {"ok": True}
        send(tab, lambda: sampler.peak["threads"] - before["threads"])
        # a round trip: the server has handled all that came before, and the connection still answers
        assert tab.client.call("shell_resize", {"rows": 24, "cols": 80}, timeout=120) is None
    finally:
        tab.close()
        peak = sampler.stop()
    grown = peak["rss"] - before["rss"]
    assert peak["threads"] - before["threads"] <= THREADS_BOUND, (before, peak)
    assert grown < RSS_BOUND, f"the worker grew by {grown >> 20} MiB"
    refused = wait_for(lambda: [e for e in tab.errors if e["event"] == "shell_input"], 30, what="input refused")
    assert "is not reading its input" in refused[0]["message"], refused[0]
    # the tab's threads go with its WebSocket (its ping timer within Engine.IO's ping interval, 25 s)
    after = wait_for(lambda: (s := status(pid))["threads"] <= before["threads"] + SETTLED and s, 90, 0.5,
                     what=f"the worker's threads to come back to {before['threads']}")
    print(f"\nthreads before {before['threads']}, peak {peak['threads']}, after {after['threads']}; "
          f"RSS before {before['rss'] >> 20} MiB, peak {peak['rss'] >> 20} MiB (+{grown >> 20} MiB)")


def test_ten_thousand_events_of_a_tab_cost_a_bounded_number_of_threads(web_server, learner, big_run, stuck):
    other = others(big_run)

    def send(tab, grown):
        for start in range(0, EVENTS, PACE):
            for i in range(start, min(start + PACE, EVENTS)):
                tab.client.emit(*event(i, other))
            assert tab.client.call("shell_resize", {"rows": 24, "cols": 80}, timeout=60) is None
            assert grown() <= THREADS_BOUND, f"{grown()} more threads after {start + PACE} events"
    flood(web_server, learner, send)


def test_a_tab_sending_faster_than_its_events_are_handled_is_held_back(web_server, learner, stuck):
    """All at once, without waiting: what the server has not handled yet waits in the client and in TCP."""
    def send(tab, grown):
        for _ in range(BURST):
            tab.client.emit("shell_input", {"data": BIG})
    flood(web_server, learner, send)
