"""The plain lab host: this machine itself, for a learner's own disposable VM.

Commands run directly, as the server's user, started by a spawner on this
machine (the same program and protocol as in a sandbox lab host); nothing is
isolated and ``destroy`` cannot undo what a lab did. The docker daemon, the
namespaces and the paths are the machine's own: the lab host is this machine.
"""
from __future__ import annotations

import os
import shutil
import socket

from .base import Health, LabHostError
from .local import LocalLabHost
from . import spawn
from .statedir import SCRIPTS

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PlainLabHost(LocalLabHost):
    backend = "plain"

    def __init__(self, settings, lab_host_id: str = "plain"):
        super().__init__(lab_host_id)
        self.settings = settings
        self.home = os.path.expanduser("~")
        self._process = None

    def start(self) -> None:
        self.spawner, self._process = spawn.start_local(self.command_env(), self.home)

    def wait_ready(self, timeout: float | None = None) -> None:
        health = self.health()
        if not health.ok:
            raise LabHostError(health.detail, "Install bash on this machine")

    def command_env(self) -> dict[str, str]:
        return {"PATH": PATH, "HOME": self.home, "TERM": "xterm-256color", "LANG": "C.UTF-8",
                "SHELL": "/bin/bash", "USER": os.environ.get("USER", "root"), "INPUTRC": os.path.join(SCRIPTS, "inputrc")}

    def shell_rc(self) -> str:
        return os.path.join(SCRIPTS, "bashrc")

    # -- this machine is the lab host: its namespaces, paths and dockerd -------
    def namespace_fd(self, kind: str) -> int:
        """The server's own: the lab host is this machine."""
        return os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)

    def open_inside(self, path: str, flags: int) -> int:
        """This machine's ``path``: the lab host is this machine."""
        return os.open(path, flags | os.O_CLOEXEC)

    def owns_namespace(self, fd: int) -> bool:
        """Every namespace of this machine is the lab host's own: the lab host is this machine."""
        return True

    def docker_socket(self, timeout: float) -> socket.socket:
        """This machine's dockerd: the lab host is this machine."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect("/run/docker.sock")
        except OSError as e:
            sock.close()
            raise LabHostError(f"the docker daemon of this machine does not answer: {e}",
                               "Start docker (systemctl start docker)") from None
        return sock

    def health(self) -> Health:
        if shutil.which("bash") is None:
            return Health(False, "bash is not installed on this machine")
        if self._process is None or self._process.poll() is not None:
            return Health(False, "the command spawner of this machine is not running (restart labnb)")
        return Health(True, "this machine")

    def destroy(self) -> None:
        if self._process is not None:
            self.spawner.control.close()
            self._process.wait()
            self._process = None
