"""Shared fixtures: real sandbox lab hosts in a state dir of the test run's own.

Every lab host a test makes is removed at the end of the session by the
reaper (``gc --all`` on that state dir), whatever the tests did.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from webapp import executor
from webapp.config import Settings
from webapp.lab import plain_text
from webapp.labhost import image, reaper
from webapp.labhost.plain import PlainLabHost
from webapp.labhost.pool import create
from webapp.labhost.sandbox import build_seed
from webapp.labhost.statedir import image_archive, prepare_state_dir


@pytest.fixture(scope="session")
def settings() -> Settings:
    # not under /tmp: every lab host hides the server's /tmp
    state = f"/var/lib/labnb-test-{os.getpid()}"
    s = Settings(state_dir=state, uid_base=200000 + 32 * 65536, max_lab_hosts=16, memory_mb=1024, pids=1024)
    prepare_state_dir(s)
    image.build(image_archive(s))
    build_seed(s)
    yield s
    reaper.gc(s, everything=True)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_host(settings):
    """One lab host shared by a module's tests (each is independent of the others' containers)."""
    host = create(settings)
    yield host
    host.destroy()


@pytest.fixture
def fresh_lab_host(settings):
    host = create(settings)
    yield host
    host.destroy()


def cmdline(pid: int) -> bytes:
    """A process's command line, NUL-separated; empty once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


LABNB = [sys.executable, "-m", "webapp.commands.cli"]


def labnb_env(settings) -> dict[str, str]:
    """The environment of `labnb` in a subprocess, with the test session's lab host settings."""
    return {**os.environ, "LABNB_STATE_DIR": settings.state_dir, "LABNB_UID_BASE": str(settings.uid_base),
            "LABNB_MAX_LAB_HOSTS": str(settings.max_lab_hosts), "LABNB_MEMORY_MB": str(settings.memory_mb),
            "LABNB_PIDS": str(settings.pids)}


def labnb(settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`labnb ARGS...` run to its end, as an operator would, with the test session's settings."""
    return subprocess.run([*LABNB, *args], env=labnb_env(settings), capture_output=True, text=True,
                          timeout=timeout)


def passing_run(settings, lab_path, report: Path, timeout: float = 300):
    """`labnb run LAB --json REPORT`, asserting that every step is done (a failed step's commands and output in
    the message) and that it exited 0: what it printed and the report, for a test's own assertions."""
    out = labnb(settings, "run", str(lab_path), "--json", str(report), timeout=timeout)
    assert report.exists(), out.stdout[-3000:] + out.stderr
    result = json.loads(report.read_text())
    failed = [f"step {s['index']} {s['id']}: {s['status']}\n"
              + "".join(f"$ {c['command']}\n{c['output']}" for c in s["commands"])
              for s in result["steps"] if s["status"] != "done"]
    assert not failed, "\n".join(failed) + out.stdout[-3000:]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    return out, result


@contextlib.contextmanager
def unreached_port():
    """A TCP port of the machine's, listening on every address, that no lab host may reach: yields it and
    the machine's IPv4 addresses to try; the test fails if anyone connected."""
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:   # closed at the end of the test, with nobody having come
            pass
    threading.Thread(target=accept, daemon=True).start()
    addresses = [a for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
                 if ":" not in a]
    try:
        yield server.getsockname()[1], addresses
    finally:
        server.close()
    assert not accepted


class Output:
    """An ``on_output`` callback that keeps the bytes; ``text`` decodes them
    all at once, as a run's one decoder would, with ``\n`` line ends."""

    def __init__(self):
        self.parts: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.parts.append(data)

    def clear(self) -> None:
        self.parts.clear()

    @property
    def text(self) -> str:
        return b"".join(self.parts).decode(errors="replace").replace("\r\n", "\n")


def sh(host, command: str, timeout: float = 60) -> tuple[executor.Outcome, str]:
    """Run a command in a lab host; its outcome and its output as a reader sees it.

    Escapes are stripped as a lab's checks strip them: Debian 13's ``ip``
    colours what it prints on a terminal, Debian 12's does not.
    """
    out = Output()
    outcome = executor.start(host, command, on_output=out, timeout=timeout, window=None).wait(timeout + 10)
    assert outcome is not None, f"{command!r} did not end"
    return outcome, plain_text(out.text)


# The real web server for the test_web_* modules (tests/web_support.py).
pytest_plugins = ["web_support"]


@pytest.fixture(scope="module")
def plain():
    """A plain lab host (this machine, no sandbox): what the executor's and the lab host contract's tests
    run on where isolation is not the point."""
    host = PlainLabHost(Settings(backend="plain"))
    host.start()
    yield host
    host.destroy()
