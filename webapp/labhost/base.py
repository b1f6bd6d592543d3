"""What every lab host offers, whatever it is made of: the interface.

Shaped like JupyterHub's spawner: one small base class and interchangeable
backends (``backends.py`` names them). A lab host is where one learner's
commands run, and it is known only by what it can do: run a command and hand
back its terminal (``handle.Handle``), run the server's own jobs to their end,
list and connect to its listening ports, read its network picture, and talk to
its docker engine. Nothing here is a descriptor of this machine: the backends
on this machine's kernel share that code in ``local.py``; a lab host elsewhere
(another node, a pod) implements the same methods its own way.

What the server must never leave to a backend is here, concrete: ``capture``
bounds the output of the server's own jobs and puts a deadline on them (a
backend only starts the job: ``start_job``), and ``Handle.write`` bounds typed
input (``handle.py``).
"""
from __future__ import annotations

import abc
import dataclasses
import os
import socket
import time
from typing import Callable

from .errors import LabHostError
from .handle import Handle, Job, ready

__all__ = ["LabHost", "LabHostError", "Handle", "Job", "Health", "HeadTail", "BASH", "DOCKER_API", "KEEP"]

DOCKER_API = "1.41"  # docker.io 20.10; a fixed version avoids a round trip at construction
KEEP = 64 << 10      # bytes of the server's own jobs' output kept at each end (a check's verdict, a probe's answer)
BASH = "/bin/bash"   # the shell of the server's own jobs, by its path: never a `bash` the learner put first on PATH
READ_SIZE = 256 << 10   # bytes per read of a server job's output at most


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
    """One learner's lab host: create, wait until ready, use its capabilities, destroy.

    Whatever a lab host answers is the word of a hostile peer (its root is the
    learner's): every implementation bounds what it reads and puts a deadline
    on every wait (docs/security.md)."""

    backend: str = ""   # the name its backend is registered by (``Backend.name``, ``backends.py``)
    home: str = "/"     # where commands start

    def __init__(self, lab_host_id: str):
        self.id = lab_host_id
        self.created = time.time()
        self.offers: set[str] | None = None   # what labs may require of it, if probed (offers.py)

    # -- life ---------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Begin making the lab host; returns before it is ready."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Block until commands and the docker daemon work, or raise LabHostError."""

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
    def command_env(self) -> dict[str, str]:
        """The environment a command starts with inside the lab host."""

    @abc.abstractmethod
    def shell_rc(self) -> str:
        """Path, inside the lab host, of the rc file for terminal shells (scripts/bashrc)."""

    # -- commands -----------------------------------------------------------
    @abc.abstractmethod
    def run(self, argv: list[str], *, rows: int = 24, cols: int = 80) -> Handle:
        """Start ``argv`` inside the lab host under a terminal of its own, ``rows`` by ``cols``; its
        handle. LabHostError if it cannot be started (within a deadline)."""

    @abc.abstractmethod
    def start_job(self, argv: list[str]) -> Job:
        """Start ``argv`` inside the lab host without a terminal, its output on two descriptors, for
        ``capture``; LabHostError if it cannot be started (within a deadline)."""

    def capture(self, argv: list[str], timeout: float = 60, *,
                stdout: Callable[[bytes], None] | None = None) -> tuple[int, bytes, bytes]:
        """Run ``argv`` without a terminal, for the server's own jobs: its return code, and a bounded head
        and tail (``HeadTail``) of its stdout, unless ``stdout`` takes each chunk of it, and of its stderr.
        Whatever it prints, and however long it takes: past ``timeout`` seconds it is killed and
        LabHostError says so, also when its lab host does not answer at all (frozen by its root)."""
        job = self.start_job(argv)
        out, err = HeadTail(), HeadTail()
        fd_out, fd_err = job.outputs()
        sinks = {fd_out: stdout or out.feed, fd_err: err.feed}
        deadline = time.monotonic() + timeout
        rc = None
        try:
            while sinks and time.monotonic() < deadline:
                for fd in ready(list(sinks), max(0.001, deadline - time.monotonic())):
                    chunk = os.read(fd, READ_SIZE)
                    if chunk:
                        sinks[fd](chunk)
                    else:
                        del sinks[fd]
            if not sinks:
                rc = job.wait(max(0.0, deadline - time.monotonic()))
        finally:
            job.close()
            if rc is None:
                job.signal(9)
                job.abandon()
                job.wait()
        if rc is None:
            raise LabHostError(f"{argv[0]} in lab host {self.id} did not end within {timeout:g} s",
                               "The lab host is frozen, overloaded or broken: reset it")
        return rc, out.value(), err.value()

    # -- network ------------------------------------------------------------
    @abc.abstractmethod
    def listening_ports(self) -> list[tuple[int, str]]:
        """Each listening TCP socket of the lab host's own network (its own and its host-mode
        containers'), as (port, the address it listens on)."""

    @abc.abstractmethod
    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to ``address``:``port`` as made from inside the lab host's network: nothing
        it can name leads outside it."""

    @abc.abstractmethod
    def network_picture(self, sandbox_keys: dict[str, str] | None, budget: float) -> dict:
        """Its network namespaces, interfaces and links (docs/network.md), before layout, read within
        about ``budget`` seconds; ``sandbox_keys`` is the caller's memory of its containers' sandbox keys."""

    # -- docker engine ------------------------------------------------------
    @abc.abstractmethod
    def docker_socket(self, timeout: float) -> socket.socket:
        """A connection to the lab host's dockerd API, to be read as a hostile peer's (``engine.get``)."""
