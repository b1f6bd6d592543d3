"""Fake lab hosts for the fast tier, made through the lab host interface (``webapp/labhost/base.py``)
and registered as backends the public way (``backends.register``), as JupyterHub's ``mocking.py``
fakes its spawners.

- ``FakeLabHost`` runs each command as a subprocess of this machine under a PTY of its own, as the
  test's user (no root, no namespaces, no dockerd); its ports and network picture are scripted.
- ``FakeNet`` is the lab network of a set of fake lab hosts: it records whom it joined and the names it
  gave them (``hostset.Network``).
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

from webapp.config import Settings
from webapp.labhost import backends
from webapp.labhost.base import Handle, Health, Job, LabHost, LabHostError
from webapp.labhost.handle import ready
from webapp.labhost.relay import PipedInput
from webapp.labhost.statedir import SCRIPTS

SLOW_READY = 0.3   # seconds a SlowLabHost takes to get ready
INPUT_PIPE = 1 << 20   # the input pipe's capacity: more than INPUT_PENDING, so a write within the bound goes whole
_ids = itertools.count(1)


class _Process:
    """A local subprocess in a session of its own: its signals and its end."""

    _proc: subprocess.Popen

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def signal(self, sig: int) -> None:
        if self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def abandon(self) -> None:
        self.signal(signal.SIGKILL)


class FakeHandle(_Process, PipedInput, Handle):
    """A local subprocess, a PTY its controlling terminal; the server end read directly (a test's output
    is small: no output relay), typed input through a pipe and a ``cat``, as on this machine's lab hosts
    (``PipedInput``), so that what the terminal has not read is counted."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, rows: int, cols: int):
        super().__init__()
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
        typed, self._in = os.pipe()
        fcntl.fcntl(self._in, fcntl.F_SETPIPE_SZ, INPUT_PIPE)
        os.set_blocking(self._in, False)
        self._typist = subprocess.Popen(["cat"], stdin=typed, stdout=master, stderr=subprocess.DEVNULL,
                                        close_fds=True, start_new_session=True)
        os.close(typed)
        self.master = master   # blocking, for the typist: ``read`` polls first
        self.pid = self._proc.pid
        self._lock = threading.Lock()   # not into a descriptor ``close`` has closed

    def fileno(self) -> int:
        return self.master

    def read(self, size: int) -> bytes:
        if not ready([self.master]):
            raise BlockingIOError("no output waits")
        try:
            return os.read(self.master, size)
        except OSError:   # EIO: no process holds the terminal any more
            return b""

    def has_output(self) -> bool:
        return bool(ready([self.master]).get(self.master, 0) & select.POLLIN)

    def hung_up(self) -> bool:
        return bool(ready([self.master], 0, select.POLLHUP))

    def resize(self, rows: int, cols: int) -> None:
        with self._lock:
            if self.master >= 0:
                _set_size(self.master, rows, cols)

    def close(self) -> None:
        with self._lock:
            for fd in (self._in, self.master):
                if fd >= 0:
                    os.close(fd)
            self._in = self.master = -1
        self._typist.kill()   # it may wait on a terminal nobody reads
        self._typist.wait()


class FakeJob(_Process, Job):
    """A local subprocess in a session of its own, its output on two pipes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str):
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
        except OSError as e:
            raise LabHostError(f"the fake lab host could not start {argv[0]}: {e.strerror}") from None

    def outputs(self) -> tuple[int, int]:
        return self._proc.stdout.fileno(), self._proc.stderr.fileno()

    def close(self) -> None:
        self._proc.stdout.close()
        self._proc.stderr.close()


class FakeLabHost(LabHost):
    """A lab host that is a temporary directory of this machine; ``ports`` and ``picture`` are what it
    says of its network."""

    backend = "fake"

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

    def start_job(self, argv: list[str]) -> Job:
        if not self.alive():
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
        return FakeJob(argv, self.command_env(), self.home)

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


class FakeNet:
    """A set's lab network that joins nothing: ``wired`` the lab host ids on it, ``names`` the name each was
    given; ``destroyed`` once removed. Every one made is in ``FakeNet.made`` (a test's look at them)."""

    made: list["FakeNet"] = []
    _ids = itertools.count(1)

    def __init__(self, settings: Settings):
        self.id = f"fakenet-{next(self._ids)}"
        self.wired: list[str] = []
        self.names: dict[str, str] = {}
        self.destroyed = False
        FakeNet.made.append(self)

    def wire(self, members: list[tuple[str, LabHost]]) -> None:
        if self.destroyed:
            raise LabHostError(f"lab network {self.id} is gone")
        for name, host in members:
            if not host.alive():
                raise LabHostError(f"lab host {host.id} is gone", "Reset the lab host")
            if host.id not in self.wired:
                self.wired.append(host.id)
            self.names[host.id] = name

    def destroy(self) -> None:
        self.destroyed = True


class SlowLabHost(FakeLabHost):
    """Gets ready SLOW_READY seconds after it was started (a loaded machine)."""

    backend = "fake-slow"

    def wait_ready(self, timeout: float) -> None:
        time.sleep(min(SLOW_READY, timeout))
        if SLOW_READY > timeout:
            raise LabHostError(f"lab host {self.id} did not get ready within {timeout:g} s")


class NeverLabHost(FakeLabHost):
    """Never gets ready: waits out the ready timeout, then fails as a real one does."""

    backend = "fake-never"

    def wait_ready(self, timeout: float) -> None:
        time.sleep(timeout)
        raise LabHostError(f"lab host {self.id} did not get ready within {timeout:g} s",
                           "Check the machine's load")


# Not isolated: their commands are this machine's, and how many there may be does not depend on its memory
# (an isolated backend's count is fitted to it: the fast tier's limits would differ from machine to machine).
BACKENDS = [
    backends.Backend("fake", FakeLabHost, pooled=True, recorded=False, isolated=False, network=FakeNet),
    backends.Backend("fake-slow", SlowLabHost, pooled=True, recorded=False, isolated=False, network=FakeNet),
    backends.Backend("fake-never", NeverLabHost, pooled=True, recorded=False, isolated=False, network=FakeNet),
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

