"""A command under a pseudo-terminal, with its output streamed as it comes.

One reader thread per process selects on the PTY master. Backpressure: the
consumer acknowledges the bytes it has dealt with (``ack``); while more than
``window`` bytes are unacknowledged the reader stops reading, so the kernel's
PTY buffer fills and the producer blocks, as in xterm.js's flow-control guide
and ttyd. Nothing is buffered without bound.
"""
from __future__ import annotations

import codecs
import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from typing import Callable

from .outcome import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome

OutputCallback = Callable[[bytes, str], None]
READ_SIZE = 65536
DEFAULT_WINDOW = 1 << 20


class PtyProcess:
    """Run ``argv`` in its own session and process group, the PTY as its terminal.

    ``on_output(data, text)`` is called from the reader thread with each chunk
    of raw bytes and the same chunk decoded incrementally (a UTF-8 character
    split across reads is completed by the next chunk). ``window=None`` turns
    acknowledgements off: then only a slow callback slows the reader.
    """

    def __init__(self, argv: list[str], env: dict[str, str], *, on_output: OutputCallback | None = None,
                 timeout: float | None = None, rows: int = 24, cols: int = 120,
                 window: int | None = DEFAULT_WINDOW, cwd: str | None = None):
        self.argv, self.env, self.cwd = argv, env, cwd
        self.on_output = on_output or (lambda data, text: None)
        self.timeout, self.window = timeout, window
        self.size = (rows, cols)
        self.popen: subprocess.Popen | None = None
        self.outcome: Outcome | None = None
        self._fd = -1
        self._unacked = 0
        self._cond = threading.Condition()
        self._stopping: str | None = None   # INTERRUPTED or TIMED_OUT once we ended it
        self._done = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._started = 0.0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    # -- life cycle -------------------------------------------------------
    def start(self) -> "PtyProcess":
        self._started = time.monotonic()
        master, slave = os.openpty()
        _set_size(slave, *self.size)
        try:
            # setsid -c: a new session whose controlling terminal is the PTY, so
            # ^C typed into it and SIGINT to the group reach the foreground job.
            self.popen = subprocess.Popen(
                ["setsid", "-c", *self.argv], stdin=slave, stdout=slave, stderr=slave,
                env=self.env, cwd=self.cwd, close_fds=True)
        except OSError as e:
            os.close(master)
            os.close(slave)
            self._finish(Outcome(ERROR, None, None, 0.0, f"cannot start {self.argv[0]}: {e.strerror}"))
            return self
        os.close(slave)
        self._fd = master
        os.set_blocking(master, False)
        self._wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._wait_child, name=f"pty-wait-{self.pid}", daemon=True).start()
        threading.Thread(target=self._read_loop, name=f"pty-read-{self.pid}", daemon=True).start()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> Outcome | None:
        self._done.wait(timeout)
        return self.outcome

    # -- input and control ------------------------------------------------
    def write(self, data: bytes | str) -> None:
        """Type into the terminal (a learner's keystrokes, a command line)."""
        if isinstance(data, str):
            data = data.encode()
        if self._done.is_set() or self._fd < 0:
            raise ProcessLookupError("the process has ended")
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = os.write(self._fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the terminal does not take input (its input buffer is full)")
                select.select([], [self._fd], [], 0.1)
            except OSError as e:
                raise ProcessLookupError(f"the terminal is closed: {e.strerror}") from e

    def resize(self, rows: int, cols: int) -> None:
        self.size = (rows, cols)
        if self._fd >= 0 and not self._done.is_set():
            _set_size(self._fd, rows, cols)

    def ack(self, nbytes: int) -> None:
        with self._cond:
            self._unacked = max(0, self._unacked - nbytes)
            self._cond.notify_all()

    def interrupt(self) -> None:
        """SIGINT to the process group, as ^C would."""
        self._mark(INTERRUPTED)
        self._signal(signal.SIGINT)

    def stop(self, grace: float = 2.0) -> Outcome | None:
        """End it: SIGINT, then SIGTERM, then SIGKILL, ``grace`` seconds apart."""
        self._mark(INTERRUPTED)
        return self._escalate(grace)

    def _escalate(self, grace: float) -> Outcome | None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL):
            self._signal(sig)
            if self._done.wait(grace):
                break
        return self.wait(grace)

    def _mark(self, why: str) -> None:
        with self._cond:
            self._stopping = self._stopping or why

    def _signal(self, sig: int) -> None:
        if self.popen and self.popen.returncode is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    # -- threads ----------------------------------------------------------
    def _wait_child(self) -> None:
        self.popen.wait()
        os.write(self._wake_w, b"x")

    def _read_loop(self) -> None:
        exited = False
        try:
            while True:
                if self.timeout is not None and not exited:
                    left = self._started + self.timeout - time.monotonic()
                    if left <= 0:
                        self._mark(TIMED_OUT)
                        threading.Thread(target=self._escalate, args=(2.0,), daemon=True).start()
                        self.timeout = None
                        continue
                else:
                    left = None
                if not self._wait_for_credit(left):
                    continue
                readable, _, _ = select.select([self._fd, self._wake_r], [], [], left)
                if self._wake_r in readable:
                    exited = True
                if self._fd in readable or exited:
                    if not self._read_once() and exited:
                        break
        finally:
            self._close()

    def _wait_for_credit(self, timeout: float | None) -> bool:
        """Block while too much output is unacknowledged; False if timed out waiting."""
        if self.window is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: self._unacked < self.window, timeout)

    def _read_once(self) -> bool:
        """Read what is there, as one chunk; False when nothing more will come now.

        A PTY gives at most a few KiB per read: gathering what is already
        waiting into one chunk of up to READ_SIZE (within the window) spares
        the consumer a callback, a store commit and a message per 4 KiB.
        """
        budget = READ_SIZE
        if self.window is not None:
            with self._cond:
                budget = max(1, min(budget, self.window - self._unacked))
        parts: list[bytes] = []
        while budget > 0:
            try:
                part = os.read(self._fd, budget)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EIO:   # Linux: every slave fd is closed
                    break
                raise
            if not part:
                break
            parts.append(part)
            budget -= len(part)
        data = b"".join(parts)
        if not data:
            return False
        if self.window is not None:
            with self._cond:
                self._unacked += len(data)
        self.on_output(data, self._decoder.decode(data))
        return True

    def _close(self) -> None:
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.on_output(b"", tail)
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = -1
        rc = self.popen.returncode
        sig = -rc if rc < 0 else None
        code = rc if rc >= 0 else None
        if sig is None and code is not None and code > 128 and self._stopping:
            sig = code - 128   # the shell or nsenter reports a signal death as 128+N
        status = self._stopping or (DONE if rc == 0 else FAILED)
        self._finish(Outcome(status, code, sig, time.monotonic() - self._started))

    def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._done.set()


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
