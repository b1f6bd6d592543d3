"""A browser tab as the RunManager sees it, for tests that drive the
manager directly (no Socket.IO, no server process)."""
from __future__ import annotations

import threading

from webapp.runs.manager import RunManager


class Tab:
    """One browser tab as the RunManager sees it: events by sid, acknowledged
    from a thread of its own (emit is called with the manager's locks held).
    Keeps the first and the last MiB it was sent, not all of it."""

    def __init__(self, manager: RunManager, sid: str, learner: str):
        self.manager, self.sid, self.learner = manager, sid, learner
        self.run: str | None = None
        self.seqs: list[int] = []
        self.end = 0
        self.jumps: list[tuple[int, int]] = []    # (seq, bytes skipped before it)
        self.head, self.tail = bytearray(), bytearray()
        self.snapshot: dict | None = None
        self.ended: dict | None = None
        self.errors: list[dict] = []
        self._stop = threading.Event()
        self._acker = threading.Thread(target=self._ack, daemon=True)

    def event(self, name: str, payload: dict) -> None:
        if name == "output":
            assert not self.seqs or payload["seq"] > self.seqs[-1], "seq out of order"
            start = payload["end"] - len(payload["data"])
            assert start >= self.end, "output overlaps what was sent"
            if start > self.end:
                self.jumps.append((payload["seq"], start - self.end))
            self.seqs.append(payload["seq"])
            self.end = payload["end"]
            if len(self.head) < 1 << 20:
                self.head += payload["data"][: (1 << 20) - len(self.head)]
            self.tail = (self.tail + payload["data"])[-(1 << 20):]
        elif name == "snapshot":
            self.snapshot, self.end = payload, payload["end"]
            self.seqs.append(payload["seq"])
        elif name == "end":
            self.ended = payload
        elif name == "error":
            self.errors.append(payload)

    def _ack(self) -> None:
        while not self._stop.wait(0.005):
            if self.run is not None:
                self.manager.ack(self.sid, self.learner, self.run, self.end)

    def follow(self, run: str) -> None:
        """Acknowledge what this tab is sent of ``run`` from now on."""
        self.run = run
        self._acker.start()

    def attach(self, run: str, after: int = -1, position: int = 0) -> None:
        self.follow(run)
        self.manager.attach(self.sid, self.learner, run, after, position)

    def close(self) -> None:
        self._stop.set()
        if self._acker.is_alive():
            self._acker.join()
