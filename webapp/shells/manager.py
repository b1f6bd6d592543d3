"""Shells: an interactive bash per learner on their lab host, typed into from
the lab page's terminal panel (xterm.js), like Killercoda's; and, in tabs
beside it, the lab's named terminals (``NamedTerminal``).

A lab of several hosts (``hosts: [node1, node2]``) has a shell per host, each
in a tab named for its host (``host``, the lab's name for it; none: the
primary, as a one-host lab's). A learner has at most SHELLS_PER_LEARNER
shells (the most hosts a lab may have): opening one more ends the one they
opened longest ago, so that labs of other host names, one after the other,
do not pile shells up; the machine's shells stay bounded by its learners.

A shell is not a run: what is typed and printed is not stored. The server
keeps only the last 64 KiB of its output in memory (``Fanout``), so that a
reload or a second tab shows the shell's recent past; the shell itself lives
on while no tab shows it, until the learner's lab host is reset or released,
the server stops, or no tab has shown it for the idle timeout (an abandoned
shell, and whatever runs in it, is not kept for ever; the next shell the
learner opens says why the old one is gone).

Flow control, as for runs (webapp/stream/flow.py, fanout.py): each
tab acknowledges the output position it has written to xterm. The PTY is
read only while the furthest-ahead tab is less than SHELL_WINDOW behind
(with no tab open the backlog is the consumer), so ``yes`` in the shell is
held by the kernel. A named terminal is the same between runs; during a run
its cell's acknowledgements hold it, and its tabs follow as they can.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..executor import PtyProcess, Terminal
from ..errors import LabnbError
from ..lab import Lab
from ..labhost import hostset
from ..labhost.base import LabHost, LabHostError
from ..learners.registry import Learners
from .fanout import Emit, Fanout

log = logging.getLogger(__name__)

SHELL_WINDOW = 512 << 10       # unacknowledged bytes (furthest tab) before the PTY is not read
ACTIVE_EVERY = 5.0             # seconds between two signs of a learner's activity in their terminals
SHELLS_PER_LEARNER = hostset.MOST   # free shells a learner has at once: one per host of the largest lab


class ShellError(LabnbError):
    """A request about a shell that cannot be met; the message is for the learner."""


class Shown:
    """What a tab of the terminal panel shows: a bash on a PTY of the lab host, and its ``Fanout``."""

    ended = ""   # what to tell a tab that types into it once it has ended

    def __init__(self, learner_id: str, process: PtyProcess, fanout: Fanout):
        self.learner, self.process, self.fanout = learner_id, process, fanout

    @property
    def running(self) -> bool:
        return self.process.running

    def write(self, data: bytes) -> None:
        """Into the PTY's input, whole or not at all, never waiting for the terminal to read it."""
        try:
            self.process.write(data)
        except ProcessLookupError:
            raise ShellError(self.ended) from None
        except BlockingIOError as e:
            raise ShellError(f"{e}: a program in it is not reading its input. Wait for it to end, "
                             "or reset the lab host") from None

    def resize(self, rows: int, cols: int) -> None:
        self.process.resize(rows, cols)

    def _watch(self) -> None:
        self.process.wait()
        self.fanout.ended()


class Shell(Shown):
    """A learner's interactive bash on one lab host, and the tabs showing it."""

    ended = "the shell has ended; open the terminal again for a new one"

    def __init__(self, learner_id: str, host: LabHost, emit: Emit, rows: int, cols: int, note: str = "",
                 on_feed: Callable[[], None] = lambda: None, name: str = ""):
        self.host, self.name = host, name   # name: the host's in the lab ("": the primary, unnamed)
        fanout = Fanout(emit, on_feed=on_feed, host=name)
        # A note to the learner comes first, as if output, but is not the PTY's to acknowledge.
        fanout.feed(note.encode(), own=False, activity=False)
        argv = ["bash", "--noprofile", "--rcfile", host.shell_rc(), "-i"]
        super().__init__(learner_id, PtyProcess(host, argv, on_output=fanout.feed, window=SHELL_WINDOW,
                                                rows=rows, cols=cols), fanout)
        fanout.credit.attach(self.process.ack)

    def start(self) -> "Shell":
        self.process.start()
        if self.process.outcome is not None:   # it could not even start
            raise ShellError(f"the shell could not start: {self.process.outcome.error}")
        threading.Thread(target=self._watch, name=f"shell-{self.learner[:8]}-{self.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        self.process.stop(grace=0.5)


class NamedTerminal(Shown):
    """A lab's named terminal (b1 and b2 in lab 1) in a tab of the terminal panel: what the steps typed
    into it and what came back, live, and what the learner types. It belongs to the learner's
    bench, which starts it on first use (a step's or a tab's) and closes it; this only shows it."""

    def __init__(self, learner_id: str, terminal: Terminal, emit: Emit, on_feed: Callable[[], None] = lambda: None):
        super().__init__(learner_id, terminal.process, Fanout(emit, terminal.name, on_feed))
        self.terminal = terminal
        self.ended = f"terminal {terminal.name} has ended; press Enter in its tab for a new one"
        terminal.mirror(self.fanout)
        threading.Thread(target=self._watch, name=f"term-{terminal.name}", daemon=True).start()


class ShellManager:
    """Each learner's shells, one per host name: started on first open, again if
    it ended; stopped when their lab host goes (reset, released) and when the
    server stops. And the tabs of their labs' named terminals (``term``), which
    their benches own. A tab's view is named by ``(term, host)``: one of them
    is "" (a named terminal's host is the lab's)."""

    def __init__(self, learners: Learners, labs: dict[str, Lab], emit: Emit, idle_timeout: float = 0):
        self.learners, self.labs, self.emit = learners, labs, emit
        self.idle_timeout = idle_timeout
        self.shells: dict[tuple[str, str], Shell] = {}   # (learner, host name): in the order opened
        self.named: dict[tuple[str, str, str], NamedTerminal] = {}   # (learner, lab, terminal)
        self.by_sid: dict[str, dict[tuple[str, str], Shown]] = {}   # sid: (term, host): shown
        self.watchers: set[str] = set()   # the sids of the instructor's tabs that watch a learner's
        self._active: dict[str, float] = {}
        self.ended_idle: set[str] = set()    # learners whose last shell the idle timeout ended
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        learners.on_release(self.release)

    def start(self) -> None:
        """End shells no tab has shown for ``idle_timeout`` seconds, in a thread (Services.start)."""
        if self.idle_timeout > 0:
            threading.Thread(target=self._end_idle, name="shells-idle", daemon=True).start()

    def open(self, sid: str, learner_id: str, lab_id: str, rows: int = 24, cols: int = 80, term: str = "",
             watching: bool = False, host_name: str = "") -> None:
        """Show the learner's shell on ``host_name`` (or, with ``term``, the lab's named terminal) in tab
        ``sid``, starting it if need be; for the instructor ``watching``, only one that runs, read-only
        (input, sizes and acknowledgements from ``sid`` are not the learner's: ``shown`` refuses the first
        two)."""
        lab = self.labs.get(lab_id)
        if lab is None:
            raise ShellError(f"there is no lab {lab_id!r}")
        if term and term not in lab.terminals:
            raise ShellError(f"lab {lab_id} has no terminal {term!r}")
        if term and host_name:
            raise ShellError(f"terminal {term} is on the host the lab names for it: give a terminal or a host")
        learner = self.learners.get(learner_id)   # NotReady if its lab host cannot take commands now
        with learner.lock:
            bench = self.learners.bench(learner, lab)   # the lab's setup has run
            try:
                host = bench.host(host_name or None)
            except LabHostError as e:
                raise ShellError(f"lab {lab_id}: {e.what}") from None
            if not host.alive():
                raise ShellError(f"lab host {host.id} is gone; reset the lab host to get a fresh one")
            with self._lock:
                if self._closed:
                    raise ShellError("the server is stopping")
            if watching:
                shown = self._running(learner_id, bench, term, host, host_name)
            else:
                shown = (self._named(learner_id, bench, term) if term
                         else self._shell(learner_id, host, rows, cols, host_name))
            with self._lock:
                closed = self._closed
                if not closed:
                    tabs = self.by_sid.setdefault(sid, {})
                    previous, tabs[term, host_name] = tabs.get((term, host_name)), shown
            if closed:
                if not term:
                    shown.stop()
                raise ShellError("the server is stopping")
        if previous is not None and previous is not shown:
            previous.fanout.leave(sid)
        if watching:
            self.watchers.add(sid)
        else:
            shown.resize(rows, cols)
        shown.fanout.join(sid, shown.running)

    def _running(self, learner_id: str, bench, term: str, host: LabHost, host_name: str) -> Shown:
        """What a watcher may see: the learner's shell on ``host`` or terminal ``term`` as it runs now, never
        a new one."""
        if not term:
            shell = self.shells.get((learner_id, host_name))
            if shell is None or not shell.running or shell.host is not host:
                raise ShellError(f"the learner has no shell open on {host_name} now" if host_name
                                 else "the learner has no shell open now")
            return shell
        terminal = bench.terminals.get(term)
        if terminal is None or not terminal.alive:
            raise ShellError(f"the learner's terminal {term} is not running now")
        return self._named(learner_id, bench, term)

    def _shell(self, learner_id: str, host: LabHost, rows: int, cols: int, name: str) -> Shell:
        """The learner's running shell on ``host`` (named ``name`` in the lab), or a new one (the learner's
        lock held)."""
        key = (learner_id, name)
        with self._lock:
            old = self.shells.get(key)
        if old is not None and old.running and old.host is host:
            return old
        note = ""
        with self._lock:
            if learner_id in self.ended_idle:
                self.ended_idle.discard(learner_id)
                t = self.idle_timeout
                after = f"{t / 60:g} min" if t >= 60 else f"{t:g} s"
                note = (f"\x1b[2m[labnb: your previous shell was ended after {after}"
                        " with no terminal showing it; this is a new one]\x1b[0m\r\n")
        shell = Shell(learner_id, host, self.emit, rows, cols, note, lambda: self._touch(learner_id), name)
        shell.start()
        with self._lock:
            self.shells.pop(key, None)
            self.shells[key] = shell
            theirs = [k for k in self.shells if k[0] == learner_id]
            ended = [self.shells.pop(k) for k in theirs[:max(0, len(theirs) - SHELLS_PER_LEARNER)]]
        for gone in ended + ([old] if old is not None else []):
            threading.Thread(target=gone.stop, daemon=True).start()
        return shell

    def _named(self, learner_id: str, bench, term: str) -> NamedTerminal:
        """The tab view of the bench's terminal ``term``, started if it is not running (the learner's lock
        held, so no step starts one meanwhile)."""
        try:
            terminal = bench.terminal(term)
        except (RuntimeError, LabHostError) as e:
            raise ShellError(f"terminal {term} could not start: {e}") from None
        key = (learner_id, bench.lab.id, term)
        with self._lock:
            shown = self.named.get(key)
            if shown is None or shown.terminal is not terminal:
                shown = self.named[key] = NamedTerminal(learner_id, terminal, self.emit,
                                                        lambda: self._touch(learner_id))
        return shown

    def _touch(self, learner_id: str) -> None:
        now = time.monotonic()
        if now - self._active.get(learner_id, -ACTIVE_EVERY) >= ACTIVE_EVERY:
            self._active[learner_id] = now
            self.learners.touch(learner_id)   # a learner who works in the terminal panel is not idle

    def shown(self, sid: str, learner_id: str, term: str = "", host_name: str = "") -> Shown:
        """What tab ``sid`` opened as ``term`` or ``host_name``: always the learner's own."""
        shown = self.by_sid.get(sid, {}).get((term, host_name))
        if shown is None or shown.learner != learner_id:
            raise ShellError("open the terminal first (shell_open)")
        return shown

    def _typed_into(self, sid: str, learner_id: str, term: str, host_name: str) -> Shown:
        if sid in self.watchers:
            raise ShellError("watching is reading: only the learner types into their terminals")
        return self.shown(sid, learner_id, term, host_name)

    def input(self, sid: str, learner_id: str, data: bytes, term: str = "", host_name: str = "") -> None:
        shown = self._typed_into(sid, learner_id, term, host_name)
        self._touch(learner_id)
        if not shown.running:
            raise ShellError(shown.ended)
        shown.write(data)

    def resize(self, sid: str, learner_id: str, rows: int, cols: int, term: str = "", host_name: str = "") -> None:
        self._typed_into(sid, learner_id, term, host_name).resize(rows, cols)

    def ack(self, sid: str, learner_id: str, position: int, term: str = "", host_name: str = "") -> None:
        self.shown(sid, learner_id, term, host_name).fanout.ack(sid, position)

    def detach(self, sid: str) -> None:
        """A tab went away; the shell and the terminals go on."""
        with self._lock:
            tabs = self.by_sid.pop(sid, {})
            self.watchers.discard(sid)
        for shown in tabs.values():
            shown.fanout.leave(sid)

    def release(self, learner_id: str, host: LabHost) -> None:
        """The learner's lab host is going (reset, released): end its shells; its benches close their
        terminals, whose tabs hear of it."""
        with self._lock:
            for key in [k for k, v in self.named.items() if k[0] == learner_id and v.process.host is host]:
                del self.named[key]
            gone = [self.shells.pop(k) for k, v in list(self.shells.items()) if k[0] == learner_id and v.host is host]
        for shell in gone:
            shell.stop()

    def _end_idle(self) -> None:
        """End shells that no tab has shown for the idle timeout."""
        while not self._closing.wait(min(self.idle_timeout / 4, 30)):
            now = time.monotonic()
            with self._lock:
                idle = [s for s in self.shells.values() if s.fanout.unwatched_since is not None
                        and now - s.fanout.unwatched_since >= self.idle_timeout]
                for shell in idle:
                    del self.shells[shell.learner, shell.name]
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
            self.named.clear()
        threads = [threading.Thread(target=s.stop, daemon=True) for s in shells]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
