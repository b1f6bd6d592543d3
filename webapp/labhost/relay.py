"""The terminal of a command on this machine's kernel: a PTY master, handed over by the lab host's
spawner, read and written by two ``cat`` relays. The sandbox and the plain backend both hand these out
(``LocalLabHost.run``).

The PTY master is read and written by the relays, not by the server: a PTY
read gives at most 4 KiB, and each read is a system call that releases and
retakes the GIL. In a busy server another thread holds the GIL for up to the
switch interval (5 ms) each time, so reading a flood 4 KiB at a time crawled
(0.7 MB/s beside one busy thread; docs/benchmarks.md). A relay copies the PTY
into a pipe of 1 MiB, and one read of that pipe takes everything gathered
since the last. Input goes the other way through a pipe, so writing never
blocks a caller on a program that does not read: the pipe is the input's
bounded buffer, whose unread bytes ``Handle.write`` keeps below INPUT_PENDING
(``handle.py``).
"""
from __future__ import annotations

import fcntl
import logging
import os
import select
import struct
import subprocess
import termios
import threading

from .handle import Handle, ready
from .spawn import Child, Spawned

log = logging.getLogger(__name__)
PIPE_SIZE = 1 << 20      # the output pipe's capacity, and the input pipe's: four times INPUT_PENDING, so a
                         # write within the bound always goes whole, however the pipe's pages are filled
RELAY_RESTARTS = 2       # new output relays for one command whose relay ended before its terminal


class PipedInput:
    """Typed input through a pipe (its write end ``_in``, non-blocking; -1 once closed, under ``_lock``) to
    what copies it into the terminal (a ``cat``): the input not yet read is what the pipe holds."""

    _in: int
    _lock: threading.Lock

    def unread_input(self) -> int:
        with self._lock:
            if self._in < 0:
                raise ProcessLookupError("the process has ended")
            return struct.unpack("i", fcntl.ioctl(self._in, termios.FIONREAD, b"\0" * 4))[0]

    def write_some(self, data: bytes) -> int:
        with self._lock:
            if self._in < 0:
                raise ProcessLookupError("the process has ended")
            try:
                return os.write(self._in, data)
            except BlockingIOError:
                return 0
            except OSError as e:
                raise ProcessLookupError(f"the terminal is closed: {e.strerror}") from e


class RelayedPty(Spawned, PipedInput, Handle):
    """A spawned ``Child``'s PTY master behind an output and an input relay."""

    def __init__(self, child: Child, where: str):
        super().__init__()
        self.child, self.where = child, where   # ``where``: the lab host, for the log
        self.pid = child.pid
        self.master = child.master   # kept by the child, for resizing; closed with it
        self.restarts = 0
        self._out = -1         # the output relay's pipe, read end
        self._in = -1          # the input relay's pipe, write end
        self._relays: list[subprocess.Popen] = []
        self._lock = threading.Lock()   # not into a descriptor ``close`` has closed (its number may be another's now)
        try:
            self._start_relays()
        except OSError:
            child.abandon()   # the spawner kills it
            child.wait()
            child.close_fds()
            raise

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    def _start_relays(self) -> None:
        """Two ``cat`` on the PTY master: PTY -> out pipe, in pipe -> PTY."""
        self._start_output_relay()
        in_r, in_w = os.pipe()
        try:
            fcntl.fcntl(in_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            self._relays.append(_relay(in_r, self.master))
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

    def _start_output_relay(self) -> None:
        out_r, out_w = os.pipe()
        try:
            fcntl.fcntl(out_r, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            self._relays.append(_relay(self.master, out_w))
        except OSError:
            os.close(out_r)
            raise
        finally:
            os.close(out_w)
        self._out = out_r
        os.set_blocking(out_r, False)

    def fileno(self) -> int:
        return self._out

    def read(self, size: int) -> bytes:
        data = os.read(self._out, size)   # BlockingIOError when the pipe is empty
        if not data and self._relay_ended_early():
            raise BlockingIOError("a new output relay took over")
        return data

    def _relay_ended_early(self) -> bool:
        """The output relay's pipe ended while the PTY may still give more (it
        should end only at the PTY's end: killed, or an error): a new relay
        takes over, at most RELAY_RESTARTS times. Never a read of the PTY in a
        server thread: the lab host may hold it too, and a read could block."""
        events = ready([self.master], 0, select.POLLIN | select.POLLHUP).get(self.master, 0)
        if self.restarts >= RELAY_RESTARTS or events == select.POLLHUP:   # hung up and read to its end
            return False
        self.restarts += 1
        log.warning("pid %s of lab host %s: its output relay ended before its terminal; a new one takes over",
                    self.pid, self.where)
        os.close(self._out)
        self._out = -1
        try:
            self._start_output_relay()
        except OSError:
            return False
        return True

    def has_output(self) -> bool:
        return bool(ready([self._out, self.master]))

    def hung_up(self) -> bool:
        return bool(ready([self.master], 0, select.POLLHUP))

    def resize(self, rows: int, cols: int) -> None:
        with self._lock:
            if self.master >= 0 and self._in >= 0:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        with self._lock:
            for fd in (self._in, self._out):
                if fd >= 0:
                    os.close(fd)
            self._in = self._out = -1
            self.child.close_fds()
            self.master = -1
        for relay in self._relays:   # the input relay may wait on a PTY that a background job holds
            relay.kill()
            relay.wait()
        self._relays = []


def _relay(stdin: int, stdout: int) -> subprocess.Popen:
    """A ``cat`` copying ``stdin`` to ``stdout``, in a session of its own (a ^C
    to the server's terminal is not for it)."""
    return subprocess.Popen(["cat"], stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
                            close_fds=True, start_new_session=True)
