"""What the tabs of one terminal see: its recent output, each tab's window, and how far they have taken it.

Shared by the free shell (``Shell``) and a lab's named terminals
(``NamedTerminal``). A tab joins and gets the last BACKLOG bytes (marked
``replay``), then live output while it is less than TAB_WINDOW behind; once
it acknowledges it gets what the backlog still holds, with a note of what it
missed. The ``credit`` tells the terminal's PTY how far the furthest tab has
taken the output (all of it while no tab shows it), so the PTY is read no
faster than the tabs draw: ``yes`` is held by the kernel (webapp/stream/flow.py).

Some of what a fanout sends is not its own to credit: a note of the
server's, and the output of a step's run in a named terminal, which the
run's cell acknowledges. ``feed(data, own=False)`` shows such bytes without
crediting them.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from ..stream.flow import Credit, Reader

BACKLOG = 64 << 10             # bytes of output kept for a tab that opens the terminal later
TAB_WINDOW = 1 << 20           # bytes in flight to one tab before it is sent nothing more

Emit = Callable[[str, dict, str], None]   # (event, payload, to: a sid)


class Fanout:
    """One terminal's output, sent to every tab that shows it."""

    def __init__(self, emit: Emit, term: str = "", on_feed: Callable[[], None] = lambda: None, host: str = ""):
        self.emit = emit
        # what each event says it is about: term, the named terminal's name ("" for the free shell), and the
        # free shell's host if the tab named one
        self.about = {"term": term, **({"host": host} if host else {})}
        self.lock = threading.Lock()        # output, tabs, positions; held while emitting, for order
        self.backlog = bytearray()
        self.total = 0                      # the position after the output so far
        self.tabs: dict[str, Reader] = {}
        self.unwatched_since: float | None = time.monotonic()   # when its last tab left
        self.credit = Credit(own=self._own)
        self.on_feed = on_feed              # told of output: a sign the learner's terminal works
        self._foreign: list[list[int]] = []   # [start, end) ranges of bytes that are not the fanout's to credit
        self._foreign_before = 0              # foreign bytes in ranges already passed

    # -- output ------------------------------------------------------------------
    def feed(self, data: bytes, own: bool = True, activity: bool = True) -> None:
        """From the PTY's reader thread: keep the tail, send to each tab within its window. ``activity``:
        tell ``on_feed``, which a server's note or an earlier backlog, fed while the fanout is being made
        (under the shell manager's and the learner's locks), must not."""
        if not data:
            return
        with self.lock:
            start = self.total
            self.total += len(data)
            if not own:
                if self._foreign and self._foreign[-1][1] == start:
                    self._foreign[-1][1] = self.total
                else:
                    self._foreign.append([start, self.total])
            self.backlog += data
            del self.backlog[:max(0, len(self.backlog) - BACKLOG)]
            for tab in self.tabs.values():
                if tab.sent == start and tab.has_room:
                    self._send(tab, data)
            unwatched = not self.tabs
        if unwatched:
            self._credit()
        if activity:
            self.on_feed()

    def ended(self) -> None:
        """The terminal's process ended: every tab hears of it."""
        with self.lock:
            sids = list(self.tabs)
        for sid in sids:
            self.emit("shell_exit", dict(self.about), sid)

    # -- tabs ------------------------------------------------------------------
    def join(self, sid: str, running: bool) -> None:
        """Show the terminal in a tab: the backlog first (marked ``replay``), then live output."""
        with self.lock:
            replay = bytes(self.backlog)
            if self.total > len(replay):   # cut: start on a line of its own
                nl = replay.find(b"\n", 0, 4096)
                replay = replay[nl + 1:] if nl >= 0 else replay
            start = self.total - len(replay)
            tab = self.tabs[sid] = Reader(sid, TAB_WINDOW, start, start)
            self.unwatched_since = None
            self._send(tab, replay, replay=True)
        if not running:
            self.emit("shell_exit", dict(self.about), sid)

    def leave(self, sid: str) -> None:
        with self.lock:
            self.tabs.pop(sid, None)
            if not self.tabs:
                self.unwatched_since = time.monotonic()
        self._credit()

    def ack(self, sid: str, position: int) -> None:
        with self.lock:
            tab = self.tabs.get(sid)
            if tab is None:
                return
            tab.ack(position)
            if tab.sent < self.total and tab.in_flight < TAB_WINDOW // 2:
                self._catch_up(tab)
        self._credit()

    # -- internals ---------------------------------------------------------------
    def _catch_up(self, tab: Reader) -> None:
        """Send a tab (the lock held) what it lacks, from the backlog; what the
        backlog no longer holds is skipped, and the tab told so."""
        kept_from = self.total - len(self.backlog)
        if tab.sent < kept_from:
            note = f"\r\n\x1b[2m[labnb: {kept_from - tab.sent} bytes of output skipped: this tab fell behind]\x1b[0m\r\n"
            self._send(tab, b"", shown=note.encode(), skipped=kept_from - tab.sent)
        self._send(tab, bytes(self.backlog[max(0, tab.sent - kept_from):]))

    def _send(self, tab: Reader, data: bytes, shown: bytes | None = None, replay: bool = False,
              skipped: int = 0) -> None:
        """One ``shell_output``: ``data`` is the terminal's raw output it stands
        for, ``end`` the position after it (what the tab acknowledges once it
        has written it), ``shown`` what xterm writes (a note of ours, or the
        output itself: xterm decodes UTF-8, completing a character split
        between messages)."""
        shown = data if shown is None else shown
        tab.skip(skipped)
        tab.sent += len(data)
        if shown or replay:
            payload = {**self.about, "data": shown, "end": tab.sent}
            if replay:
                payload["replay"] = True
            self.emit("shell_output", payload, tab.sid)

    def _credit(self) -> None:
        """Let the PTY be read on, as far as the furthest tab has written."""
        with self.lock:
            furthest = max((t.acked for t in self.tabs.values()), default=self.total)
        self.credit.reached(furthest)

    def _own(self, position: int) -> int:
        """How many of the stream's first ``position`` bytes are the fanout's to credit (positions only grow)."""
        with self.lock:
            while self._foreign and self._foreign[0][1] <= position:
                start, end = self._foreign.pop(0)
                self._foreign_before += end - start
            inside = max(0, position - self._foreign[0][0]) if self._foreign else 0
            return position - self._foreign_before - inside
