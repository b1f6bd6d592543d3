"""The capabilities of a lab host on this machine's kernel, made of local descriptors, once for the
sandbox and the plain backend: commands by the lab host's spawner (``spawn.py``), their terminals behind
``cat`` relays (``relay.py``), ports and the network picture over netlink in the lab host's own
namespaces (``netlink.py``, ``netpicture.py``).

A backend made of this machine's namespaces says how to reach them, and
its dockerd: ``namespace_fd``, ``open_inside``, ``owns_namespace`` and
``docker_socket``. There are no defaults: one forgotten would lead to the
server's own namespaces (its ports, its loopback services), so a class that
lacks one cannot be made. The plain backend's are this machine's own.
"""
from __future__ import annotations

import abc
import os
import socket

from . import netlink, netpicture, nsfs
from .base import LabHost, LabHostError
from .handle import Handle, Job
from .relay import RelayedPty
from .spawn import Child, Spawned, Spawner


class LocalLabHost(LabHost):
    """A lab host whose commands a spawner starts and whose namespaces this machine's kernel holds."""

    def __init__(self, lab_host_id: str):
        super().__init__(lab_host_id)
        self.spawner: Spawner | None = None   # made by ``start``

    # -- commands -----------------------------------------------------------
    def spawn(self, argv: list[str], *, tty: bool = True, rows: int = 24, cols: int = 80) -> Child:
        """Start ``argv`` inside the lab host, by its spawner: under a PTY of the
        lab host's own (``tty``) or with its output on two pipes."""
        if self.spawner is None:
            raise LabHostError(f"lab host {self.id} is not started")
        return self.spawner.spawn(argv, self.command_env(), self.home, tty=tty, rows=rows, cols=cols)

    def run(self, argv: list[str], *, rows: int = 24, cols: int = 80) -> Handle:
        child = self.spawn(argv, rows=rows, cols=cols)
        try:
            return RelayedPty(child, self.id)
        except OSError as e:
            raise LabHostError(f"cannot relay the terminal with cat: {e.strerror}",
                               "The server has run out of processes or descriptors") from None

    def start_job(self, argv: list[str]) -> Job:
        return PipedJob(self.spawn(argv, tty=False))

    # -- network ------------------------------------------------------------
    def listening_ports(self) -> list[tuple[int, str]]:
        """Read from the kernel with sock_diag (what ``ss -ltn`` shows) in the lab host's namespace."""
        fd = self.namespace_fd("net")
        try:
            [sock] = netlink.sockets_in([fd], netlink.NETLINK_SOCK_DIAG)
        finally:
            os.close(fd)
        if isinstance(sock, OSError):
            raise LabHostError(f"cannot read the ports of lab host {self.id}: {sock}")
        try:
            found = netlink.Diag(sock).listening_tcp()
        except OSError as e:   # more listeners than a dump is read for (the learner's choice), a timeout
            raise LabHostError(f"cannot read the ports of lab host {self.id}: {e}") from None
        finally:
            sock.close()
        return [(m["idiag_sport"], m["idiag_src"]) for m in found]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        """From a socket made in the lab host's namespace: a lab host has no route anywhere."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        fd = self.namespace_fd("net")
        try:
            [sock] = nsfs.made_in([fd], lambda: socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC))
        finally:
            os.close(fd)
        if isinstance(sock, OSError):
            raise sock
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
            return sock
        except BaseException:
            sock.close()
            raise

    def network_picture(self, sandbox_keys: dict[str, str] | None, budget: float) -> dict:
        return netpicture.read(self, sandbox_keys, budget)

    # -- this machine's namespaces -------------------------------------------
    @abc.abstractmethod
    def namespace_fd(self, kind: str) -> int:
        """A descriptor of the lab host's own namespace of ``kind`` ("net", "user"); the caller closes it."""

    @abc.abstractmethod
    def open_inside(self, path: str, flags: int) -> int:
        """A descriptor for ``path`` as the lab host sees it, resolved inside it."""

    @abc.abstractmethod
    def owns_namespace(self, fd: int) -> bool:
        """Whether the namespace ``fd``, found at a path inside the lab host, is the lab host's own (not one
        of the machine's that a hostile lab host led the server to)."""


class PipedJob(Spawned, Job):
    """A spawned ``Child`` with its output on two pipes."""

    def __init__(self, child: Child):
        self.child = child

    def outputs(self) -> tuple[int, int]:
        return self.child.stdout, self.child.stderr

    def close(self) -> None:
        self.child.close_fds()
