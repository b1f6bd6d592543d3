"""The plain lab host: this machine itself, for a learner's own disposable VM.

Commands run directly, as the server's user; nothing is isolated and
``destroy`` cannot undo what a lab did. The docker daemon is the machine's own.
"""
from __future__ import annotations

import os
import shutil

from .base import Health, LabHost, LabHostError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


class PlainLabHost(LabHost):
    kind = "plain"

    def __init__(self, settings, lab_host_id: str = "plain"):
        super().__init__(lab_host_id)
        self.settings = settings

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float | None = None) -> None:
        health = self.health()
        if not health.ok:
            raise LabHostError(health.detail, "Install bash on this machine")

    def command_argv(self, argv: list[str]) -> list[str]:
        return ["env", "--chdir=" + os.path.expanduser("~"), *argv]

    def command_env(self) -> dict[str, str]:
        return {"PATH": PATH, "HOME": os.path.expanduser("~"), "TERM": "xterm-256color", "LANG": "C.UTF-8",
                "SHELL": "/bin/bash", "USER": os.environ.get("USER", "root"), "INPUTRC": os.path.join(SCRIPTS, "inputrc")}

    def shell_rc(self) -> str:
        return os.path.join(SCRIPTS, "bashrc")

    def docker_url(self) -> str:
        return "unix:///run/docker.sock"

    def netns_path(self) -> None:
        return None

    def health(self) -> Health:
        if shutil.which("bash") is None:
            return Health(False, "bash is not installed on this machine")
        return Health(True, "this machine")

    def destroy(self) -> None:
        pass
