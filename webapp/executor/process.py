"""A command under a pseudo-terminal, with its output streamed as it comes.

One reader thread per process. Backpressure: the consumer acknowledges the
bytes it has dealt with (``ack``); while more than ``window`` bytes are
unacknowledged the reader stops reading, so the kernel's buffers fill and
the producer blocks, as in xterm.js's flow-control guide and ttyd. Nothing
is buffered without bound.

The lab host hands back the command's terminal as a ``Handle`` (read,
write, resize, signal, wait); on this machine's kernel that is a PTY master
behind two ``cat`` relays (``labhost/relay.py``), whose output pipe one read
drains whole.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable

from ..labhost.base import Handle, LabHost, LabHostError
from ..labhost.handle import ready
from .outcome import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome

log = logging.getLogger(__name__)
OutputCallback = Callable[[bytes], None]
READ_SIZE = 256 << 10    # bytes per read of the terminal's output at most
DEFAULT_WINDOW = 1 << 20
DRAIN_GRACE = 0.5        # after the command exits, how long its output may take to arrive
KILL_ANSWER = 10.0       # seconds a lab host has to report a command dead after SIGKILL


class PtyProcess:
    """Run ``argv`` in the lab host, in its own session and process group, a PTY of
    the lab host's own as its terminal (the lab host's spawner starts it).

    ``on_output(data)`` is called from the reader thread with each chunk of
    raw bytes, as read: a UTF-8 character may be split between two chunks, so
    whoever wants text decodes a whole run's chunks with one incremental
    decoder. ``window=None`` turns acknowledgements off: then only a slow
    callback slows the reader.
    """

    def __init__(self, host: LabHost, argv: list[str], *, on_output: OutputCallback | None = None,
                 timeout: float | None = None, rows: int = 24, cols: int = 120,
                 window: int | None = DEFAULT_WINDOW):
        self.host, self.argv = host, argv
        self.on_output = on_output or (lambda data: None)
        self.timeout, self.window = timeout, window
        self.size = (rows, cols)
        self.handle: Handle | None = None
        self.outcome: Outcome | None = None
        self._unacked = 0
        self._cond = threading.Condition()
        self._stopping: str | None = None   # INTERRUPTED, TIMED_OUT or ERROR once we ended it
        self._ending = False                # an ``end`` thread was started
        self._error: str | None = None      # why the output could not be taken in
        self._waited = threading.Event()    # the command's exit status is in
        self._done = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._started = 0.0

    # -- life cycle -------------------------------------------------------
    def start(self) -> "PtyProcess":
        self._started = time.monotonic()
        try:
            self.handle = self.host.run(self.argv, rows=self.size[0], cols=self.size[1])
        except LabHostError as e:
            self._finish(Outcome(ERROR, None, None, 0.0, f"cannot start {self.argv[0]}: {e}"))
            return self
        self._wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._wait_child, name=f"pty-wait-{self.pid}", daemon=True).start()
        threading.Thread(target=self._read_loop, name=f"pty-read-{self.pid}", daemon=True).start()
        return self

    @property
    def pid(self) -> int | None:
        """The command's pid in the lab host's own pid namespace."""
        return self.handle.pid if self.handle else None

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> Outcome | None:
        self._done.wait(timeout)
        return self.outcome

    # -- input and control ------------------------------------------------
    def write(self, data: bytes | str) -> None:
        """Type into the terminal (a learner's keystrokes, a command line), never waiting for it:
        BlockingIOError refuses all of ``data`` while the terminal leaves too much unread."""
        if isinstance(data, str):
            data = data.encode()
        if self._done.is_set() or self.handle is None:
            raise ProcessLookupError("the process has ended")
        self.handle.write(data)

    def resize(self, rows: int, cols: int) -> None:
        self.size = (rows, cols)
        if self.handle and not self._done.is_set():
            self.handle.resize(rows, cols)

    def ack(self, nbytes: int) -> None:
        with self._cond:
            self._unacked = max(0, self._unacked - nbytes)
            self._cond.notify_all()

    def stop(self, grace: float = 2.0) -> Outcome | None:
        """End it: SIGINT, then SIGTERM, then SIGHUP, then SIGKILL, ``grace`` seconds apart. A lab host
        that does not report it dead KILL_ANSWER seconds after SIGKILL does not answer (its root froze
        it): the command ends as an error that says so, and nothing waits on it any more."""
        self._mark(INTERRUPTED)
        return self._escalate(grace)

    def end(self, why: str = INTERRUPTED) -> None:
        """``stop`` without waiting: in one thread, however often it is asked
        (a client repeating Stop costs no more threads)."""
        self._mark(why)
        with self._cond:
            if self._ending:
                return
            self._ending = True
        threading.Thread(target=self._escalate, args=(2.0,), name=f"pty-end-{self.pid}", daemon=True).start()

    def _escalate(self, grace: float) -> Outcome | None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._signal(sig)
            if self._done.wait(grace):
                return self.outcome
        self._signal(signal.SIGKILL)
        if not self._waited.wait(max(grace, KILL_ANSWER)):
            with self._cond:
                self._stopping = ERROR
                self._error = (f"lab host {self.host.id} does not answer: {self.argv[0]} did not end within "
                               f"{max(grace, KILL_ANSWER):g} s of SIGKILL (the lab host is frozen or overloaded). "
                               "Reset the lab host")
            self.handle.abandon()   # the read loop ends, and _close
        return self.wait(grace)

    def _mark(self, why: str) -> None:
        with self._cond:
            self._stopping = self._stopping or why

    def _signal(self, sig: int) -> None:
        if self.handle:
            self.handle.signal(sig)

    # -- threads ----------------------------------------------------------
    def _wait_child(self) -> None:
        self.handle.wait()
        with self._cond:   # not into a descriptor _close has closed (its number may be another's now)
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")
        self._waited.set()

    def _read_loop(self) -> None:
        """Read until the command has exited and its output is all in.

        Once no process of the command holds its terminal (``Handle.hung_up``)
        the output ends after the last byte. A background job may hold it:
        then, DRAIN_GRACE after the exit, reading stops when no output waits
        (``Handle.has_output``), and at once when the run was stopped. A
        consumer that fails ends the command: its output is never cut short
        in silence."""
        exited_at: float | None = None
        eof = False
        try:
            while not (eof and exited_at):
                left = None
                if exited_at is None and self.timeout is not None:
                    left = self._started + self.timeout - time.monotonic()
                    if left <= 0:
                        self.end(TIMED_OUT)
                        self.timeout = None
                        continue
                elif exited_at is not None and not self.handle.hung_up():
                    left = exited_at + DRAIN_GRACE - time.monotonic()
                    if self._stopping or (left <= 0 and not self.handle.has_output()):
                        break
                    left = max(left, 0.01)
                if not self._wait_for_credit(left):
                    continue
                out = self.handle.fileno()
                watched = ([] if eof else [out]) + ([] if exited_at else [self._wake_r])
                readable = ready(watched, left)
                if self._wake_r in readable:
                    exited_at = time.monotonic()
                if out in readable:
                    eof = not self._read_once()
        except Exception as e:   # the consumer (a store, a printer) failed
            log.exception("pid %s of lab host %s: its output could not be taken in", self.pid, self.host.id)
            self._error = f"labnb could not take in its output ({type(e).__name__}: {e})"
            self.end(ERROR)
            self._waited.wait(15)   # the escalation's SIGKILL, 6 s in
        finally:
            self._close()

    def _wait_for_credit(self, timeout: float | None) -> bool:
        """Block while too much output is unacknowledged; False if timed out waiting."""
        if self.window is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: self._unacked < self.window, timeout)

    def _read_once(self) -> bool:
        """Read what the terminal has gathered, as one chunk; False at its end."""
        budget = READ_SIZE
        if self.window is not None:
            with self._cond:
                budget = max(1, min(budget, self.window - self._unacked))
        try:
            data = self.handle.read(budget)
        except BlockingIOError:
            return True
        if not data:
            return False
        if self.window is not None:
            with self._cond:
                self._unacked += len(data)
        self.on_output(data)
        return True

    def _close(self) -> None:
        with self._cond:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1
        self.handle.close()
        rc = self.handle.returncode
        if rc is None:   # a spawner that does not tell even after SIGKILL: the command counts as killed
            rc = -signal.SIGKILL
        sig = -rc if rc < 0 else None
        code = rc if rc >= 0 else None
        if sig is None and code is not None and code > 128 and self._stopping:
            sig = code - 128   # the shell reports a signal death as 128+N
        status = self._stopping or (DONE if rc == 0 else FAILED)
        self._finish(Outcome(status, code, sig, time.monotonic() - self._started, self._error))

    def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._done.set()

