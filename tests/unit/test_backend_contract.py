"""The promises of the lab host interface that every backend keeps, run on every registered backend:
the server's own jobs are bounded and deadlined (``LabHost.capture``), typed input is bounded
(``Handle.write``), signals, waits and reads after the end behave as ``Handle`` says.

Here on the backends that run without root (the fakes); ``tests/test_labhost_contract.py`` runs the
same tests on the plain and the sandbox backend. A backend registered in neither tier fails
``test_every_registered_backend_runs_the_contract``.
"""
from __future__ import annotations

import contextlib
import signal
import time

import pytest

import fakes
from webapp.labhost import backends, pool
from webapp.labhost.base import BASH, KEEP, LabHostError
from webapp.labhost.handle import INPUT_PENDING, Handle, ready
from webapp.labhost.local import LocalLabHost

ROOT_TIER = {"plain", "sandbox"}   # need root or this machine's spawner: tests/test_labhost_contract.py
NEVER_READY = {"fake-never"}       # runs no command at all
UNIT_TIER = [b.name for b in fakes.BACKENDS if b.name not in NEVER_READY]
HANG = 30.0   # seconds after which a test that should long have ended gives up (not a timed assertion)


@pytest.fixture(params=UNIT_TIER)
def host(request, tmp_path):
    fakes.register()
    try:
        made = pool.create(fakes.settings(str(tmp_path), backend=request.param))
        yield made
        made.destroy()
    finally:
        fakes.unregister()


@contextlib.contextmanager
def running(host, argv: list[str]):
    """``argv`` started in ``host`` under a terminal; killed and let go of after the test."""
    handle = host.run(argv)
    try:
        yield handle
    finally:
        handle.signal(signal.SIGKILL)
        handle.wait(HANG)
        handle.close()


def shown(handle: Handle, until: bytes | None = None) -> tuple[bytes, bool]:
    """What the terminal shows, up to its end (or until ``until`` shows); and whether the end was read."""
    got = bytearray()
    give_up = time.monotonic() + HANG
    while time.monotonic() < give_up and not (until and until in got):
        ready([handle.fileno()], 0.2)
        try:
            chunk = handle.read(1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            return bytes(got), True
        got += chunk
    return bytes(got), False


def test_every_registered_backend_runs_the_contract():
    fakes.register()
    try:
        assert set(backends.names()) <= set(UNIT_TIER) | ROOT_TIER | NEVER_READY
    finally:
        fakes.unregister()


def test_capture_keeps_a_bounded_head_and_tail_of_each_stream(host):
    rc, out, err = host.capture([BASH, "-c", "yes o | head -c 4000000; yes e | head -c 4000000 >&2; exit 3"],
                                timeout=60)
    assert rc == 3
    for kept, letter in ((out, b"o"), (err, b"e")):
        assert len(kept) <= 2 * KEEP + 200
        assert kept.startswith(letter + b"\n") and kept.endswith(letter + b"\n")
        assert b"bytes of output cut here" in kept


def test_capture_ends_a_job_at_its_deadline(host):
    with pytest.raises(LabHostError, match="did not end within 1 s"):
        host.capture([BASH, "-c", "sleep 60"], timeout=1)


def test_the_deadline_holds_for_a_job_that_closed_its_output(host):
    with pytest.raises(LabHostError, match="did not end within 1 s"):
        host.capture([BASH, "-c", "exec >&- 2>&-; sleep 60"], timeout=1)


def test_typed_input_past_the_bound_is_refused_whole(host):
    with running(host, ["sleep", "60"]) as handle:
        with pytest.raises(BlockingIOError):
            handle.write(b"x" * (INPUT_PENDING + 1))
        handle.write(b"seen\n")
        echo, _ = shown(handle, until=b"seen")
        assert b"seen" in echo and b"x" not in echo


def test_typed_input_is_refused_while_the_bound_is_unread(host):
    with running(host, ["sleep", "60"]) as handle:
        handle.write(b"y" * INPUT_PENDING)   # within the bound: it goes whole, and nothing reads it
        with pytest.raises(BlockingIOError, match="wait to be read"):
            handle.write(b"y" * INPUT_PENDING)


def test_a_signal_ends_the_command_and_wait_says_how(host):
    with running(host, ["sleep", "60"]) as handle:
        assert handle.wait(0.1) is None and handle.returncode is None
        handle.signal(signal.SIGTERM)
        assert handle.wait(HANG) == -signal.SIGTERM == handle.returncode
        handle.signal(signal.SIGKILL)   # once it has ended: nothing
        assert handle.wait() == -signal.SIGTERM


def test_an_abandoned_command_counts_as_killed(host):
    with running(host, ["sleep", "60"]) as handle:
        handle.abandon()
        assert handle.wait(HANG) == -signal.SIGKILL


def test_output_is_read_whole_after_the_command_ended(host):
    """Nothing it printed is lost at its end (as much as fits a terminal with nobody reading: more
    makes the command wait)."""
    with running(host, [BASH, "-c", "head -c 2000 /dev/zero | tr '\\0' a; echo; echo end"]) as handle:
        assert handle.wait(HANG) == 0
        output, ended = shown(handle)
        assert ended and output.count(b"a") == 2000 and output.rstrip().endswith(b"end")


def test_a_local_backend_must_say_how_to_reach_its_namespaces():
    """None of them defaults to this machine's own: a backend that forgot one would lead the server to its
    own ports, network and loopback services (docs/security.md)."""

    class Half(LocalLabHost):
        def start(self): ...
        def wait_ready(self, timeout): ...
        def health(self): ...
        def destroy(self): ...
        def command_env(self): ...
        def shell_rc(self): ...
        def docker_socket(self, timeout): ...

    assert Half.__abstractmethods__ == {"namespace_fd", "open_inside", "owns_namespace"}
    with pytest.raises(TypeError, match="abstract"):
        Half("x")
