"""A command running in a lab host under a terminal, as the server holds it: what ``LabHost.run`` hands
back, and all the executor knows of it (``executor/process.py``). The reader polls ``fileno`` and reads;
nothing here says where the command runs, so a lab host on another machine hands back its own kind."""
from __future__ import annotations

import abc


class Handle(abc.ABC):
    """The terminal of one command: its output, its input, its size, its signals and its end."""

    pid: int                          # the command's pid in the lab host's own pid namespace
    returncode: int | None = None     # as Popen gives it (-N: signal N), once ``wait`` saw the end

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

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Type ``data``, never waiting: BlockingIOError refuses all of it while too much typed input is
        unread; ProcessLookupError once the terminal is closed."""

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
