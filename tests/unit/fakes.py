"""Fake lab hosts for the fast tier, made through the lab host interface (``webapp/labhost/base.py``)
and registered as backends the public way (``backends.register``), as JupyterHub's ``mocking.py``
fakes its spawners.

- ``FakeLabHost`` runs each command as a subprocess of this machine under a PTY of its own, as the
  test's user (no root, no namespaces, no dockerd); its ports and network picture are scripted.
- ``SlowLabHost`` takes ``SLOW_READY`` seconds to get ready; ``NeverLabHost`` never gets ready and
  says so once the ready timeout has passed.

``register()`` makes them known as the backends "fake", "fake-slow" and "fake-never"; ``settings``
gives settings that pick one.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
from typing import Callable

from webapp.config import Settings
from webapp.labhost import backends
from webapp.labhost.base import Handle, HeadTail, Health, LabHost, LabHostError
from webapp.labhost.statedir import SCRIPTS

SLOW_READY = 0.3   # seconds a SlowLabHost takes to get ready
_ids = itertools.count(1)


class FakeHandle(Handle):
    """A local subprocess in a session of its own, a PTY its controlling terminal; the server end read
    directly (a test's output is small: no relays)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, rows: int, cols: int):
        master, slave = pty.openpty()
        _set_size(slave, rows, cols)
        try:
            self._proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                          start_new_session=True, close_fds=True,
                                          preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        except OSError as e:
            os.close(master)
            raise LabHostError(f"the fake lab host could not start {argv[0]}: {e.strerror}") from None
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self.pid = self._proc.pid
        self._lock = threading.Lock()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def fileno(self) -> int:
        return self.master

    def read(self, size: int) -> bytes:
        try:
            return os.read(self.master, size)
        except BlockingIOError:
            raise
        except OSError:   # EIO: no process holds the terminal any more
            return b""

    def has_output(self) -> bool:
        return bool(_events(self.master, select.POLLIN) & select.POLLIN)

    def hung_up(self) -> bool:
        return bool(_events(self.master, select.POLLHUP))

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.master < 0:
                raise ProcessLookupError("the process has ended")
            os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        with self._lock:
            if self.master >= 0:
                _set_size(self.master, rows, cols)

    def signal(self, sig: int) -> None:
        if self._proc.returncode is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def abandon(self) -> None:
        self.signal(signal.SIGKILL)

    def close(self) -> None:
        with self._lock:
            if self.master >= 0:
                os.close(self.master)
                self.master = -1


class FakeLabHost(LabHost):
    """A lab host that is a temporary directory of this machine; ``ports`` and ``picture`` are what it
    says of its network."""

    kind = "fake"

    def __init__(self, settings: Settings):
        super().__init__(f"fake-{next(_ids)}")
        self.settings = settings
        self.ports: list[tuple[int, str]] = []
        self.started = self.destroyed = False
        self._dir: tempfile.TemporaryDirectory | None = None
        self._handles: list[FakeHandle] = []

    def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="labnb-fake-")
        self.home = self._dir.name
        self.started = True

    def wait_ready(self, timeout: float) -> None:
        if not self.started:
            raise LabHostError(f"lab host {self.id} is not started")

    def health(self) -> Health:
        return Health(self.alive(), "ready" if self.alive() else f"lab host {self.id} is gone")

    def alive(self) -> bool:
        return self.started and not self.destroyed

    def destroy(self) -> None:
        if self.destroyed:
            return
        self.destroyed = True
        for handle in self._handles:
            handle.signal(signal.SIGKILL)
            handle.wait()
        if self._dir is not None:
            self._dir.cleanup()

    def command_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "TERM": "xterm-256color",
                "LANG": "C.UTF-8", "SHELL": "/bin/bash", "INPUTRC": os.path.join(SCRIPTS, "inputrc")}

    def shell_rc(self) -> str:
        return os.path.join(SCRIPTS, "bashrc")

    def run(self, argv: list[str], *, rows: int = 24, cols: int = 80) -> Handle:
        if not self.alive():
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
        handle = FakeHandle(argv, self.command_env(), self.home, rows, cols)
        self._handles.append(handle)
        return handle

    def capture(self, argv: list[str], timeout: float = 60, *,
                stdout: Callable[[bytes], None] | None = None) -> tuple[int, bytes, bytes]:
        try:
            done = subprocess.run(argv, capture_output=True, env=self.command_env(), cwd=self.home,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabHostError(f"{argv[0]} in lab host {self.id} did not end within {timeout:g} s",
                               "The lab host is frozen, overloaded or broken: reset it") from None
        out, err = HeadTail(), HeadTail()
        (stdout or out.feed)(done.stdout)
        err.feed(done.stderr)
        return done.returncode, out.value(), err.value()

    def listening_ports(self) -> list[tuple[int, str]]:
        return list(self.ports)

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((address, port), timeout)

    def network_picture(self, sandbox_keys: dict[str, str] | None, budget: float) -> dict:
        return {"lab_host": self.id, "links": [], "notes": [],
                "namespaces": [{"id": "n0", "kind": "lab host", "label": "lab host",
                                "members": [{"kind": "lab host", "name": "lab host", "network": ""}],
                                "interfaces": []}]}

    def docker_socket(self, timeout: float) -> socket.socket:
        raise LabHostError(f"fake lab host {self.id} has no docker engine")

    def docker(self, timeout: int = 30):
        raise LabHostError(f"fake lab host {self.id} has no docker engine")


class SlowLabHost(FakeLabHost):
    """Gets ready SLOW_READY seconds after it was started (a loaded machine)."""

    def wait_ready(self, timeout: float) -> None:
        time.sleep(min(SLOW_READY, timeout))
        if SLOW_READY > timeout:
            raise LabHostError(f"lab host {self.id} did not get ready within {timeout:g} s")


class NeverLabHost(FakeLabHost):
    """Never gets ready: waits out the ready timeout, then fails as a real one does."""

    def wait_ready(self, timeout: float) -> None:
        time.sleep(timeout)
        raise LabHostError(f"lab host {self.id} did not get ready within {timeout:g} s",
                           "Check the machine's load")


BACKENDS = [
    backends.Backend("fake", FakeLabHost, pooled=True, reapable=False, isolated=True),
    backends.Backend("fake-slow", SlowLabHost, pooled=True, reapable=False, isolated=True),
    backends.Backend("fake-never", NeverLabHost, pooled=True, reapable=False, isolated=True),
]


def register() -> None:
    for backend in BACKENDS:
        backends.register(backend)


def unregister() -> None:
    for backend in BACKENDS:
        backends.unregister(backend.name)


def settings(state_dir: str, backend: str = "fake", **kw) -> Settings:
    """Settings whose lab hosts are fakes (``register`` first), with a short ready timeout."""
    kw.setdefault("ready_timeout", 2.0)
    kw.setdefault("pool_size", 0)
    return Settings(state_dir=state_dir, backend=backend, **kw)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _events(fd: int, events: int) -> int:
    poller = select.poll()
    poller.register(fd, events)
    return next((ev for _, ev in poller.poll(0)), 0)
