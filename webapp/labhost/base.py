"""What every lab host offers, whatever it is made of.

Shaped like JupyterHub's spawner: one small base class and interchangeable
backends. A lab host is where one learner's commands run; the executor asks
it to ``spawn`` each one, and it hands back the command's PTY.
"""
from __future__ import annotations

import abc
import dataclasses
import math
import os
import select
import socket
import time
from typing import TYPE_CHECKING, Callable

from ..errors import LabnbError

if TYPE_CHECKING:
    import docker

    from .spawn import Child, Spawner

DOCKER_API = "1.41"  # docker.io 20.10; a fixed version avoids a round trip at construction
KEEP = 64 << 10      # bytes of the server's own jobs' output kept at each end (a check's verdict, a probe's answer)
READ_SIZE = 256 << 10
BASH = "/bin/bash"   # the shell of the server's own jobs, by its path: never a `bash` the learner put first on PATH


class LabHostError(LabnbError, RuntimeError):
    """A lab host that cannot be made or used: what happened, and what to do."""


class HeadTail:
    """A bounded head and tail of a stream of bytes, and how much was cut between them: what the server
    keeps of the output of its own jobs in a lab host (a check, a lab's setup, a probe), whose programs
    the learner may have replaced with ones that print without end."""

    def __init__(self, head: int = KEEP, tail: int = KEEP):
        self.head, self.tail = bytearray(), bytearray()
        self.cut = 0
        self._head, self._tail = head, tail

    def feed(self, data: bytes) -> None:
        room = self._head - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        over = len(self.tail) - self._tail
        if over > 0:
            del self.tail[:over]
            self.cut += over

    def value(self) -> bytes:
        """Head and tail; between them, if anything was cut, a line that says how much."""
        if not self.cut:
            return bytes(self.head + self.tail)
        return b"%s\n[labnb: %d bytes of output cut here; the first %d and the last %d are kept]\n%s" % (
            self.head, self.cut, len(self.head), len(self.tail), self.tail)


@dataclasses.dataclass
class Health:
    ok: bool
    detail: str


class LabHost(abc.ABC):
    """One learner's lab host: create, wait until ready, run commands in it, destroy."""

    kind: str = ""
    home: str = "/"   # where commands start

    def __init__(self, lab_host_id: str):
        self.id = lab_host_id
        self.created = time.time()
        self.spawner: Spawner | None = None   # made by ``start``
        self.offers: set[str] | None = None   # what labs may require of it, if probed (lab/requires.py)

    @abc.abstractmethod
    def start(self) -> None:
        """Begin making the lab host; returns before it is ready."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Block until commands and the docker daemon work, or raise LabHostError."""

    def spawn(self, argv: list[str], *, tty: bool = True, rows: int = 24, cols: int = 80) -> "Child":
        """Start ``argv`` inside the lab host, by its spawner: under a PTY of the
        lab host's own (``tty``) or with its output on two pipes."""
        if self.spawner is None:
            raise LabHostError(f"lab host {self.id} is not started")
        return self.spawner.spawn(argv, self.command_env(), self.home, tty=tty, rows=rows, cols=cols)

    def capture(self, argv: list[str], timeout: float = 60, *,
                stdout: Callable[[bytes], None] | None = None) -> tuple[int, bytes, bytes]:
        """Run ``argv`` without a terminal, for the server's own jobs: its return code, and a bounded head
        and tail (``HeadTail``) of its stdout, unless ``stdout`` takes each chunk of it, and of its stderr.
        Whatever it prints, and however long it takes: past ``timeout`` seconds it is killed and
        LabHostError says so, also when its lab host does not answer at all (frozen by its root)."""
        child = self.spawn(argv, tty=False)
        out, err = HeadTail(), HeadTail()
        sinks = {child.stdout: stdout or out.feed, child.stderr: err.feed}
        deadline = time.monotonic() + timeout
        rc = None
        try:
            poller = select.poll()
            for fd in sinks:
                poller.register(fd, select.POLLIN)
            while sinks and time.monotonic() < deadline:
                for fd, _ in poller.poll(max(1, math.ceil((deadline - time.monotonic()) * 1000))):
                    chunk = os.read(fd, READ_SIZE)
                    if chunk:
                        sinks[fd](chunk)
                    else:
                        poller.unregister(fd)
                        del sinks[fd]
            if not sinks:
                rc = child.wait(max(0.0, deadline - time.monotonic()))
        finally:
            child.close_fds()
            if rc is None:
                child.signal(9)
                child.abandon()
                child.wait()
        if rc is None:
            raise LabHostError(f"{argv[0]} in lab host {self.id} did not end within {timeout:g} s",
                               "The lab host is frozen, overloaded or broken: reset it")
        return rc, out.value(), err.value()

    @abc.abstractmethod
    def command_env(self) -> dict[str, str]:
        """The environment a command starts with inside the lab host."""

    @abc.abstractmethod
    def shell_rc(self) -> str:
        """Path, inside the lab host, of the rc file for terminal shells (scripts/bashrc)."""

    @abc.abstractmethod
    def health(self) -> Health:
        """Whether the lab host still works, and if not, why."""

    def alive(self) -> bool:
        """Cheap check, made before each command: does the lab host still exist?"""
        return True

    def pause(self, paused: bool) -> None:
        """Stop (or let go on) every process of the lab host while it waits in the warm pool: then it
        costs no CPU at all (an idle dockerd and containerd cost little, but not nothing). Nothing to do by default."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the lab host and everything it made; safe to call twice."""

    @abc.abstractmethod
    def docker(self, timeout: int = 30) -> docker.DockerClient:
        """A docker SDK client for the lab host's daemon (close it after use)."""

    def docker_socket(self, timeout: float) -> socket.socket:
        """A connection to the lab host's dockerd (for ``engine.get``); by default this machine's."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect("/run/docker.sock")
        except OSError as e:
            sock.close()
            raise LabHostError(f"the docker daemon of this machine does not answer: {e}",
                               "Start docker (systemctl start docker)") from None
        return sock

    def namespace_fd(self, kind: str) -> int:
        """A descriptor of the lab host's own namespace of ``kind`` ("net", "user"); the caller closes it.
        By default the server's own: a lab host that is this machine."""
        return os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)

    def open_inside(self, path: str, flags: int) -> int:
        """A descriptor for ``path`` as the lab host sees it (by default this machine's path)."""
        return os.open(path, flags | os.O_CLOEXEC)

    def owns_namespace(self, fd: int) -> bool:
        """Whether the namespace ``fd``, found at a path inside the lab host, is the lab host's own (not one
        of the machine's that a hostile lab host led the server to). On this machine itself, all are."""
        return True
