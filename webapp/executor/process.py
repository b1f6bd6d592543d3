"""A command under a pseudo-terminal, with its output streamed as it comes.

One reader thread per process. Backpressure: the consumer acknowledges the
bytes it has dealt with (``ack``); while more than ``window`` bytes are
unacknowledged the reader stops reading, so the kernel's buffers fill and
the producer blocks, as in xterm.js's flow-control guide and ttyd. Nothing
is buffered without bound.

The PTY master is read and written by two ``cat`` processes, not by this
process: a PTY read gives at most 4 KiB, and each read is a system call
that releases and retakes the GIL. In a busy server another thread holds the
GIL for up to the switch interval (5 ms) each time, so reading a flood 4 KiB
at a time crawled (0.7 MB/s beside one busy thread; docs/benchmarks.md). A
relay copies the PTY into a pipe of 1 MiB, and one read of that pipe takes
everything gathered since the last. Input goes the other way through a
pipe, so writing never blocks a caller on a program that does not read: the
pipe is the input's bounded buffer, and input past INPUT_PENDING unread bytes
is refused.
"""
from __future__ import annotations

import fcntl
import logging
import math
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from typing import Callable

from ..labhost.base import LabHost, LabHostError
from ..labhost.spawn import Child
from .outcome import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome

log = logging.getLogger(__name__)
OutputCallback = Callable[[bytes], None]
READ_SIZE = 256 << 10    # bytes per read of the relay's pipe at most
PIPE_SIZE = 1 << 20      # the output pipe's capacity, and the input pipe's
INPUT_PENDING = 256 << 10   # input bytes the terminal has not read before more is refused (a quarter of
                            # the pipe: a write that fits always goes whole, however pages are filled)
DEFAULT_WINDOW = 1 << 20
DRAIN_GRACE = 0.5        # after the command exits, how long its output may take to arrive
RELAY_RESTARTS = 2       # new output relays for one command whose relay ended before its terminal
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
        self.child: Child | None = None
        self.outcome: Outcome | None = None
        self._out = -1         # the output relay's pipe, read end
        self._in = -1          # the input relay's pipe, write end
        self._relays: list[subprocess.Popen] = []
        self._unacked = 0
        self._cond = threading.Condition()
        self._stopping: str | None = None   # INTERRUPTED, TIMED_OUT or ERROR once we ended it
        self._ending = False                # an ``end`` thread was started
        self._error: str | None = None      # why the output could not be taken in
        self._restarts = 0
        self._waited = threading.Event()    # the command's exit status is in
        self._done = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._started = 0.0

    # -- life cycle -------------------------------------------------------
    def start(self) -> "PtyProcess":
        self._started = time.monotonic()
        try:
            self.child = self.host.spawn(self.argv, rows=self.size[0], cols=self.size[1])
        except LabHostError as e:
            self._finish(Outcome(ERROR, None, None, 0.0, f"cannot start {self.argv[0]}: {e}"))
            return self
        master = self.child.master   # kept by the child, for resizing; closed with it
        try:
            self._start_relays(master)
        except OSError as e:
            self.child.abandon()   # the spawner kills it
            self.child.wait()
            self.child.close_fds()
            self._finish(Outcome(ERROR, None, None, 0.0, f"cannot relay the terminal with cat: {e.strerror}"))
            return self
        self._wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._wait_child, name=f"pty-wait-{self.pid}", daemon=True).start()
        threading.Thread(target=self._read_loop, name=f"pty-read-{self.pid}", daemon=True).start()
        return self

    def _start_relays(self, master: int) -> None:
        """Two ``cat`` on the PTY master: PTY -> out pipe, in pipe -> PTY."""
        self._start_output_relay(master)
        in_r, in_w = os.pipe()
        try:
            fcntl.fcntl(in_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            self._relays.append(_relay(in_r, master))
        except OSError:
            os.close(in_w)
            os.close(self._out)
            self._out = -1
            for relay in self._relays:
                relay.kill()
                relay.wait()
            raise
        finally:
            os.close(in_r)
        self._in = in_w
        os.set_blocking(in_w, False)

    def _start_output_relay(self, master: int) -> None:
        out_r, out_w = os.pipe()
        try:
            fcntl.fcntl(out_r, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            self._relays.append(_relay(master, out_w))
        except OSError:
            os.close(out_r)
            raise
        finally:
            os.close(out_w)
        self._out = out_r
        os.set_blocking(out_r, False)

    def _relay_ended_early(self) -> bool:
        """The output relay's pipe ended while the PTY may still give more (it
        should end only at the PTY's end: killed, or an error): a new relay
        takes over, at most RELAY_RESTARTS times. Never a read of the PTY in a
        server thread: the lab host may hold it too, and a read could block."""
        events = _poll(self.child.master, select.POLLIN | select.POLLHUP)
        if self._restarts >= RELAY_RESTARTS or events == select.POLLHUP:   # hung up and read to its end
            return False
        self._restarts += 1
        log.warning("pid %s of lab host %s: its output relay ended before its terminal; a new one takes over",
                    self.pid, self.host.id)
        os.close(self._out)
        self._out = -1
        try:
            self._start_output_relay(self.child.master)
        except OSError:
            return False
        return True

    @property
    def pid(self) -> int | None:
        """The command's pid in the lab host's own pid namespace."""
        return self.child.pid if self.child else None

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
        with self._cond:   # not into a descriptor _close has closed (its number may be another's now)
            if self._done.is_set() or self._in < 0:
                raise ProcessLookupError("the process has ended")
            unread = struct.unpack("i", fcntl.ioctl(self._in, termios.FIONREAD, b"\0" * 4))[0]
            if unread + len(data) > INPUT_PENDING:
                raise BlockingIOError(f"{unread >> 10} KiB typed into the terminal wait to be read, so this input "
                                      f"({len(data)} bytes) was not sent")
            try:
                written = os.write(self._in, data)
            except BlockingIOError:
                written = 0
            except OSError as e:
                raise ProcessLookupError(f"the terminal is closed: {e.strerror}") from e
        if written < len(data):   # not with INPUT_PENDING's margin; said, should it ever be
            raise BlockingIOError(f"the terminal's input is full: {len(data) - written} of {len(data)} bytes "
                                  "were not sent")

    def resize(self, rows: int, cols: int) -> None:
        self.size = (rows, cols)
        if self.child and self.child.master >= 0 and not self._done.is_set():
            _set_size(self.child.master, rows, cols)

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
            self.child.abandon()   # the read loop ends, and _close
        return self.wait(grace)

    def _mark(self, why: str) -> None:
        with self._cond:
            self._stopping = self._stopping or why

    def _signal(self, sig: int) -> None:
        if self.child:
            self.child.signal(sig)

    # -- threads ----------------------------------------------------------
    def _wait_child(self) -> None:
        self.child.wait()
        with self._cond:   # not into a descriptor _close has closed (its number may be another's now)
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")
        self._waited.set()

    def _read_loop(self) -> None:
        """Read until the command has exited and its output is all in.

        Once the PTY is closed (no process of the command holds it) the relay
        ends after the last byte. A background job may hold it open: then,
        DRAIN_GRACE after the exit, reading stops when nothing is waiting,
        neither in the relay's pipe nor in the PTY (a late relay's), and at
        once when the run was stopped. A consumer that fails ends the command:
        its output is never cut short in silence."""
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
                elif exited_at is not None and not self._pty_closed():
                    left = exited_at + DRAIN_GRACE - time.monotonic()
                    if self._stopping or (left <= 0 and not _ready([self._out, self.child.master], 0)):
                        break
                    left = max(left, 0.01)
                if not self._wait_for_credit(left):
                    continue
                watched = ([] if eof else [self._out]) + ([] if exited_at else [self._wake_r])
                readable = _ready(watched, left)
                if self._wake_r in readable:
                    exited_at = time.monotonic()
                if self._out in readable:
                    eof = not self._read_once() and not self._relay_ended_early()
        except Exception as e:   # the consumer (a store, a printer) failed
            log.exception("pid %s of lab host %s: its output could not be taken in", self.pid, self.host.id)
            self._error = f"labnb could not take in its output ({type(e).__name__}: {e})"
            self.end(ERROR)
            self._waited.wait(15)   # the escalation's SIGKILL, 6 s in
        finally:
            self._close()

    def _pty_closed(self) -> bool:
        """True once no process holds the PTY's terminal side (the master reports a hang-up)."""
        return bool(_poll(self.child.master, select.POLLHUP))

    def _wait_for_credit(self, timeout: float | None) -> bool:
        """Block while too much output is unacknowledged; False if timed out waiting."""
        if self.window is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: self._unacked < self.window, timeout)

    def _read_once(self) -> bool:
        """Read what the relay has gathered, as one chunk; False at its end."""
        budget = READ_SIZE
        if self.window is not None:
            with self._cond:
                budget = max(1, min(budget, self.window - self._unacked))
        try:
            data = os.read(self._out, budget)
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
            for fd in (self._in, self._out, self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._in = self._out = self._wake_r = self._wake_w = -1
        self.child.close_fds()
        for relay in self._relays:   # the input relay may wait on a PTY that a background job holds
            relay.kill()
            relay.wait()
        rc = self.child.returncode
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


def _ready(fds: list[int], timeout: float | None, events: int = select.POLLIN) -> list[int]:
    """Those of ``fds`` ready (or hung up) within ``timeout`` seconds, None: no limit.
    poll, not select: a busy server has descriptors above select's 1023."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, events)
    return [fd for fd, _ in poller.poll(None if timeout is None else math.ceil(timeout * 1000))]


def _poll(fd: int, events: int) -> int:
    """The events of ``events`` that ``fd`` has now (POLLHUP is always reported)."""
    poller = select.poll()
    poller.register(fd, events)
    return next((ev for _, ev in poller.poll(0)), 0)


def _relay(stdin: int, stdout: int) -> subprocess.Popen:
    """A ``cat`` copying ``stdin`` to ``stdout``, in a session of its own (a ^C
    to the server's terminal is not for it)."""
    return subprocess.Popen(["cat"], stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
                            close_fds=True, start_new_session=True)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
