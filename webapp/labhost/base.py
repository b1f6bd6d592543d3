"""What every lab host offers, whatever it is made of.

Shaped like JupyterHub's spawner: one small base class and interchangeable
backends. A lab host is where one learner's commands run; the executor only
asks it for the argv and environment that run a command inside it.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import time

import docker

DOCKER_API = "1.41"  # docker.io 20.10; a fixed version avoids a round trip at construction


class LabHostError(RuntimeError):
    """Something a user or operator can act on: what happened, and what to do."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(f"{what}. {todo}".strip() if todo else what)
        self.what, self.todo = what, todo


@dataclasses.dataclass
class Health:
    ok: bool
    detail: str


class LabHost(abc.ABC):
    """One learner's lab host: create, wait until ready, run commands in it, destroy."""

    kind: str = ""

    def __init__(self, lab_host_id: str):
        self.id = lab_host_id
        self.created = time.time()

    @abc.abstractmethod
    def start(self) -> None:
        """Begin making the lab host; returns before it is ready."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Block until commands and the docker daemon work, or raise LabHostError."""

    @abc.abstractmethod
    def command_argv(self, argv: list[str]) -> list[str]:
        """The argv that runs ``argv`` inside the lab host."""

    @abc.abstractmethod
    def command_env(self) -> dict[str, str]:
        """The environment a command starts with inside the lab host."""

    @abc.abstractmethod
    def shell_rc(self) -> str:
        """Path, inside the lab host, of the rc file for terminal shells (scripts/bashrc)."""

    @abc.abstractmethod
    def docker_url(self) -> str:
        """Address of the lab host's docker daemon, as seen from the server."""

    @abc.abstractmethod
    def netns_path(self) -> str | None:
        """The lab host's network namespace file, None for the server's own."""

    @abc.abstractmethod
    def health(self) -> Health:
        """Whether the lab host still works, and if not, why."""

    def alive(self) -> bool:
        """Cheap check, made before each command: does the lab host still exist?"""
        return True

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the lab host and everything it made; safe to call twice."""

    def docker(self, timeout: int = 30) -> docker.DockerClient:
        """A docker SDK client for the lab host's daemon (close it after use)."""
        return docker.DockerClient(base_url=self.docker_url(), version=DOCKER_API, timeout=timeout)

    @contextlib.contextmanager
    def netns(self):
        """A pyroute2 view of the lab host's network namespace, for one ``with`` block.

        ``flags=0`` so that a vanished namespace raises instead of being made anew;
        one IPRoute per use because pyroute2 sockets must not be shared between threads.
        """
        from pyroute2 import IPRoute

        path = self.netns_path()
        ipr = IPRoute(netns=path, flags=0) if path else IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()
