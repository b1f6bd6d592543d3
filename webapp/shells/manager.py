"""Shells: one interactive bash per learner on their lab host, typed into from
the lab page's terminal panel (xterm.js), like Killercoda's.

A shell is not a run: what is typed and printed is not stored. The server
keeps only the last BACKLOG bytes of its output in memory, so that a reload
or a second tab shows the screen's recent past; the shell itself lives on
while no tab shows it, until the learner's lab host is reset or released,
the server stops, or no tab has shown it for the idle timeout (an abandoned
shell, and whatever runs in it, is not kept for ever; the next shell the
learner opens says why the old one is gone).

Flow control, as for runs (webapp/flow.py): each tab acknowledges the
output position it has written to xterm. The PTY is read only while the
furthest-ahead tab is less than SHELL_WINDOW behind (with no tab open the
backlog is the consumer): the shell's ``Credit``, so ``yes`` in the shell
is held by the kernel. A tab (a ``Reader``) more than TAB_WINDOW behind is
sent nothing more; once it acknowledges it gets what the backlog still
holds, with a note of what it missed.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..executor import PtyProcess
from ..flow import Credit, Reader
from ..lab import Lab
from ..labhost.base import LabHost
from ..learners import Learners, NotReady

log = logging.getLogger(__name__)

BACKLOG = 64 << 10             # bytes of output kept for a tab that opens the shell later
SHELL_WINDOW = 512 << 10       # unacknowledged bytes (furthest tab) before the PTY is not read
TAB_WINDOW = 1 << 20           # bytes in flight to one tab before it is sent nothing more
MAX_INPUT = 64 << 10           # bytes of input per event

Emit = Callable[[str, dict, str], None]   # (event, payload, to: a sid)


class ShellError(Exception):
    """A request about a shell that cannot be met; the message is for the learner."""


class Shell:
    """A learner's interactive bash on one lab host, and the tabs showing it."""

    def __init__(self, learner_id: str, host: LabHost, emit: Emit, rows: int, cols: int, note: str = ""):
        self.learner, self.host, self.emit = learner_id, host, emit
        self.lock = threading.Lock()          # output, tabs, positions; held while emitting, for order
        self.write_lock = threading.Lock()    # one tab's input is not interleaved with another's
        # A note to the learner comes first, as if output, but is not the PTY's to acknowledge.
        self.backlog = bytearray(note.encode())
        self.total = note_bytes = len(self.backlog)   # the position after the output so far
        self.credit = Credit(own=lambda position: position - note_bytes)   # the PTY's bytes: without the note
        self.tabs: dict[str, Reader] = {}
        self.unwatched_since: float | None = time.monotonic()   # when its last tab left
        argv = ["bash", "--noprofile", "--rcfile", host.shell_rc(), "-i"]
        self.process = PtyProcess(host, argv, on_output=self._on_output,
                                  window=SHELL_WINDOW, rows=rows, cols=cols)
        self.credit.attach(self.process.ack)

    def start(self) -> "Shell":
        self.process.start()
        if self.process.outcome is not None:   # it could not even start
            raise ShellError(f"the shell could not start: {self.process.outcome.error}")
        threading.Thread(target=self._watch, name=f"shell-{self.learner[:8]}", daemon=True).start()
        return self

    @property
    def running(self) -> bool:
        return self.process.running

    # -- tabs ------------------------------------------------------------------
    def join(self, sid: str) -> None:
        """Show the shell in a tab: the backlog first (marked ``replay``), then live output."""
        with self.lock:
            replay = bytes(self.backlog)
            if self.total > len(replay):   # cut: start on a line of its own
                nl = replay.find(b"\n", 0, 4096)
                replay = replay[nl + 1:] if nl >= 0 else replay
            start = self.total - len(replay)
            tab = self.tabs[sid] = Reader(sid, TAB_WINDOW, start, start)
            self.unwatched_since = None
            self._send(tab, replay, replay=True)
            ended = not self.running
        if ended:
            self.emit("shell_exit", {}, sid)

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

    # -- input -------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self.write_lock:
            try:
                self.process.write(data)
            except ProcessLookupError:
                raise ShellError("the shell has ended; open the terminal again for a new one") from None
            except TimeoutError as e:
                raise ShellError(str(e)) from None

    def resize(self, rows: int, cols: int) -> None:
        self.process.resize(rows, cols)

    def stop(self) -> None:
        self.process.stop(grace=0.5)

    # -- internals ---------------------------------------------------------------
    def _on_output(self, data: bytes) -> None:
        """From the PTY's reader thread: keep the tail, send to each tab within its window."""
        with self.lock:
            start = self.total
            self.total += len(data)
            self.backlog += data
            del self.backlog[:max(0, len(self.backlog) - BACKLOG)]
            for tab in self.tabs.values():
                if tab.sent == start and tab.has_room:
                    self._send(tab, data)
        if not self.tabs:
            self._credit()

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
        """One ``shell_output``: ``data`` is the shell's raw output it stands
        for, ``end`` the position after it (what the tab acknowledges once it
        has written it), ``shown`` what xterm writes (a note of ours, or the
        output itself: xterm decodes UTF-8, completing a character split
        between messages)."""
        shown = data if shown is None else shown
        tab.skip(skipped)
        tab.sent += len(data)
        if shown or replay:
            payload = {"data": shown, "end": tab.sent}
            if replay:
                payload["replay"] = True
            self.emit("shell_output", payload, tab.sid)

    def _credit(self) -> None:
        """Let the PTY be read on, as far as the furthest tab has written."""
        with self.lock:
            furthest = max((t.acked for t in self.tabs.values()), default=self.total)
        self.credit.reached(furthest)

    def _watch(self) -> None:
        self.process.wait()
        with self.lock:
            sids = list(self.tabs)
        for sid in sids:
            self.emit("shell_exit", {}, sid)


class ShellManager:
    """Each learner's shell: started on first open, again if it ended; stopped
    when their lab host goes (reset, released) and when the server stops."""

    def __init__(self, learners: Learners, labs: dict[str, Lab], emit: Emit, idle_timeout: float = 0):
        self.learners, self.labs, self.emit = learners, labs, emit
        self.idle_timeout = idle_timeout
        self.shells: dict[str, Shell] = {}
        self.by_sid: dict[str, Shell] = {}
        self.ended_idle: set[str] = set()    # learners whose last shell the idle timeout ended
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        learners.on_release(self.release)
        if idle_timeout > 0:
            threading.Thread(target=self._end_idle, name="shells-idle", daemon=True).start()

    def open(self, sid: str, learner_id: str, lab_id: str, rows: int = 24, cols: int = 80) -> None:
        """Show the learner's shell in tab ``sid``, starting it if need be."""
        lab = self.labs.get(lab_id)
        if lab is None:
            raise ShellError(f"there is no lab {lab_id!r}")
        try:
            learner = self.learners.get(learner_id)
        except NotReady as e:
            raise ShellError(str(e)) from None
        with learner.lock:
            try:
                session = self.learners.session(learner, lab)   # the lab's setup has run
            except NotReady as e:
                raise ShellError(str(e)) from None
            host = session.lab_host
            if not host.alive():
                raise ShellError(f"lab host {host.id} is gone; reset the lab host to get a fresh one")
            with self._lock:
                if self._closed:
                    raise ShellError("the server is stopping")
                old = self.shells.get(learner_id)
            if old is None or not old.running or old.host is not host:
                note = ""
                with self._lock:
                    if learner_id in self.ended_idle:
                        self.ended_idle.discard(learner_id)
                        t = self.idle_timeout
                        after = f"{t / 60:g} min" if t >= 60 else f"{t:g} s"
                        note = (f"\x1b[2m[labnb: your previous shell was ended after {after}"
                                " with no terminal showing it; this is a new one]\x1b[0m\r\n")
                shell = Shell(learner_id, host, self.emit, rows, cols, note).start()
                if old is not None:
                    threading.Thread(target=old.stop, daemon=True).start()
            else:
                shell = old
            with self._lock:
                closed = self._closed
                if not closed:
                    self.shells[learner_id] = shell
                    previous, self.by_sid[sid] = self.by_sid.get(sid), shell
            if closed:
                shell.stop()
                raise ShellError("the server is stopping")
        if previous is not None and previous is not shell:
            previous.leave(sid)
        shell.resize(rows, cols)
        shell.join(sid)

    def shell(self, sid: str, learner_id: str) -> Shell:
        """The shell tab ``sid`` opened: always the learner's own."""
        shell = self.by_sid.get(sid)
        if shell is None or shell.learner != learner_id:
            raise ShellError("open the terminal first (shell_open)")
        return shell

    def input(self, sid: str, learner_id: str, data: bytes) -> None:
        shell = self.shell(sid, learner_id)
        if not shell.running:
            raise ShellError("the shell has ended; open the terminal again for a new one")
        shell.write(data)

    def resize(self, sid: str, learner_id: str, rows: int, cols: int) -> None:
        self.shell(sid, learner_id).resize(rows, cols)

    def ack(self, sid: str, learner_id: str, position: int) -> None:
        self.shell(sid, learner_id).ack(sid, position)

    def detach(self, sid: str) -> None:
        """A tab went away; the shell goes on."""
        with self._lock:
            shell = self.by_sid.pop(sid, None)
        if shell is not None:
            shell.leave(sid)

    def release(self, learner_id: str, host: LabHost) -> None:
        """The learner's lab host is going (reset, released): end its shell."""
        with self._lock:
            shell = self.shells.get(learner_id)
            if shell is None or shell.host is not host:
                return
            del self.shells[learner_id]
        shell.stop()

    def _end_idle(self) -> None:
        """End shells that no tab has shown for the idle timeout."""
        while not self._closing.wait(min(self.idle_timeout / 4, 30)):
            now = time.monotonic()
            with self._lock:
                idle = [s for s in self.shells.values()
                        if s.unwatched_since is not None and now - s.unwatched_since >= self.idle_timeout]
                for shell in idle:
                    del self.shells[shell.learner]
                    self.ended_idle.add(shell.learner)
            for shell in idle:
                log.info("ending the shell of learner %s: no tab for %g s", shell.learner[:8], self.idle_timeout)
                shell.stop()

    def close(self, timeout: float = 5) -> None:
        """Stop every shell, together (an interactive bash ignores SIGINT and SIGTERM)."""
        self._closing.set()
        with self._lock:
            self._closed = True
            shells, self.shells = list(self.shells.values()), {}
        threads = [threading.Thread(target=s.stop, daemon=True) for s in shells]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
