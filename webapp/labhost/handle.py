"""What ``LabHost`` hands back for a command, and all the executor knows of it: a ``Handle`` for a command
under a terminal (``executor/process.py`` reads it), a ``Job`` for one of the server's own without
(``LabHost.capture`` runs it to its end). Nothing here says where the command runs, so a lab host on
another machine hands back its own kinds.

The bound on typed input is kept here, once, not by each backend: a backend gives the raw primitives
(``unread_input``, ``write_some``) and ``Handle.write`` refuses what would pass INPUT_PENDING.
"""
from __future__ import annotations

import abc
import math
import select
import threading

INPUT_PENDING = 256 << 10   # typed bytes the terminal has not read before more is refused (a quarter of the
                            # local relay's input pipe: a write that fits always goes whole there)


class Handle(abc.ABC):
    """The terminal of one command: its output, its input, its size, its signals and its end."""

    pid: int                          # the command's pid in the lab host's own pid namespace
    returncode: int | None = None     # as Popen gives it (-N: signal N), once ``wait`` saw the end

    def __init__(self):
        self._typing = threading.Lock()   # the bound's check and the write are one step

    @abc.abstractmethod
    def fileno(self) -> int:
        """A descriptor that polls readable when output waits, or at its end. It may change after a
        ``read``: poll the one this gives each time."""

    @abc.abstractmethod
    def read(self, size: int) -> bytes:
        """At most ``size`` bytes of output, as one chunk; b"" at its end; BlockingIOError when none waits."""

    @abc.abstractmethod
    def has_output(self) -> bool:
        """Whether output waits to be read now (after the command ended, to know when to stop)."""

    @abc.abstractmethod
    def hung_up(self) -> bool:
        """Whether no process holds the terminal any more: then the output ends after what waits."""

    def write(self, data: bytes) -> None:
        """Type ``data``, never waiting: BlockingIOError refuses all of it while too much typed input is
        unread (INPUT_PENDING: a program that does not read its terminal holds no more of the server's
        memory or the lab host's); ProcessLookupError once the terminal is closed."""
        with self._typing:
            unread = self.unread_input()
            if unread + len(data) > INPUT_PENDING:
                raise BlockingIOError(f"{unread >> 10} KiB typed into the terminal wait to be read, so this input "
                                      f"({len(data)} bytes) was not sent")
            written = self.write_some(data)
        if written < len(data):   # not with INPUT_PENDING's margin; said, should it ever be
            raise BlockingIOError(f"the terminal's input is full: {len(data) - written} of {len(data)} bytes "
                                  "were not sent")

    @abc.abstractmethod
    def unread_input(self) -> int:
        """How many typed bytes the terminal has not read yet; ProcessLookupError once it is closed."""

    @abc.abstractmethod
    def write_some(self, data: bytes) -> int:
        """Type as much of ``data`` as goes without waiting (all of it, below INPUT_PENDING unread): how
        much went; ProcessLookupError once the terminal is closed. ``write`` calls it, within the bound."""

    @abc.abstractmethod
    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (the command gets SIGWINCH)."""

    @abc.abstractmethod
    def signal(self, sig: int) -> None:
        """Send ``sig`` to the command's process group, never waiting; nothing once it has ended."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """The return code once the command ended; None if not within ``timeout`` (None: until it ends,
        or until ``abandon``)."""

    @abc.abstractmethod
    def abandon(self) -> None:
        """Stop waiting for a command whose lab host does not answer: ``wait`` ends at once, the command
        counted as killed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of the terminal (the command, if it still runs, loses it); safe to call twice."""


class Job(abc.ABC):
    """A command of the server's own without a terminal, its output on two descriptors: what
    ``LabHost.start_job`` hands back. ``LabHost.capture`` reads it, within its bounds and deadline."""

    @abc.abstractmethod
    def outputs(self) -> tuple[int, int]:
        """Descriptors of its stdout and its stderr, read with ``os.read``: each polls readable when output
        waits, and reads b"" at its end."""

    @abc.abstractmethod
    def signal(self, sig: int) -> None:
        """Send ``sig`` to the command's process group, never waiting; nothing once it has ended."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """As ``Handle.wait``."""

    @abc.abstractmethod
    def abandon(self) -> None:
        """As ``Handle.abandon``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of its outputs; safe to call twice."""


def ready(fds: list[int], timeout: float | None = 0, events: int = select.POLLIN) -> dict[int, int]:
    """Those of ``fds`` that have ``events`` within ``timeout`` seconds (None: no limit), with the events
    they have (POLLHUP is always reported); a closed one (-1) is passed over. poll, not select: a busy
    server has descriptors above select's 1023."""
    poller = select.poll()
    for fd in fds:
        if fd >= 0:
            poller.register(fd, events)
    return dict(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
