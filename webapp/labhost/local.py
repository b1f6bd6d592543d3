"""The capabilities of a lab host on this machine's kernel, made of local descriptors, once for the
sandbox and the plain backend: commands by the lab host's spawner (``spawn.py``), their terminals behind
``cat`` relays (``relay.py``), ports and the network picture over netlink in the lab host's own
namespaces (``netlink.py``, ``netpicture.py``), the docker engine by its socket.

A backend made of this machine's namespaces says how to reach them:
``namespace_fd``, ``open_inside`` and ``owns_namespace``. The defaults are
this machine's own (the plain backend: a lab host that is this machine).
"""
from __future__ import annotations

import math
import os
import select
import socket
import time
from typing import Callable

from . import netlink, netpicture, nsfs
from .base import HeadTail, LabHost, LabHostError
from .handle import Handle
from .relay import RelayedPty
from .spawn import Child, Spawner

READ_SIZE = 256 << 10   # bytes per read of a server job's output pipes at most


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

    def capture(self, argv: list[str], timeout: float = 60, *,
                stdout: Callable[[bytes], None] | None = None) -> tuple[int, bytes, bytes]:
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

    # -- docker engine ------------------------------------------------------
    def docker_socket(self, timeout: float) -> socket.socket:
        """By default this machine's dockerd."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect("/run/docker.sock")
        except OSError as e:
            sock.close()
            raise LabHostError(f"the docker daemon of this machine does not answer: {e}",
                               "Start docker (systemctl start docker)") from None
        return sock

    # -- this machine's namespaces -------------------------------------------
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
