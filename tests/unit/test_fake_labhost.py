"""A fake lab host, made through the interface and registered as a backend, runs commands through the
executor, lists its ports, draws its network and is claimed through the pool: a new backend is one module
and one registry entry."""
from __future__ import annotations

import pytest

import fakes
from webapp import executor
from webapp.labhost import backends, pool
from webapp.errors import ConfigError
from webapp.labhost.base import LabHostError
from webapp.network import picture
from webapp.proxy import ports


pytestmark = pytest.mark.usefixtures("fake_backends")


@pytest.fixture
def host(tmp_path):
    made = pool.create(fakes.settings(str(tmp_path)))
    yield made
    made.destroy()


def test_the_registry_makes_a_registered_backend(tmp_path):
    made = pool.make(fakes.settings(str(tmp_path)))
    assert isinstance(made, fakes.FakeLabHost) and made.backend == "fake"
    assert "fake" in backends.names() and backends.get("fake").pooled


def test_an_unknown_backend_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="LABNB_BACKEND: there is no lab host backend 'nowhere'.*fake, fake-never"):
        pool.make(fakes.settings(str(tmp_path), backend="nowhere"))


def test_a_command_runs_through_the_executor(host):
    out = bytearray()
    outcome = executor.start(host, "echo hello from $HOME; exit 3", on_output=out.extend, window=None).wait(60)
    assert outcome is not None and outcome.status == executor.FAILED and outcome.exit_code == 3
    assert f"hello from {host.home}" in out.decode()


def test_a_capture_keeps_the_output_and_the_outcome(host):
    outcome, text = executor.capture(host, "printf ok", timeout=60)
    assert outcome.ok and text == "ok"


def test_a_stopped_command_ends_interrupted(host):
    proc = executor.start(host, "sleep 30", window=None)
    outcome = proc.stop(grace=0.2)
    assert outcome is not None and outcome.status == executor.INTERRUPTED


def test_a_terminal_runs_typed_commands(host):
    terminal = executor.open_terminal(host, "main")
    try:
        out = bytearray()
        run = terminal.type("echo typed", on_output=out.extend, timeout=60)
        assert run.wait(60) is not None and run.outcome.status == executor.DONE
        assert "typed" in out.decode()
    finally:
        terminal.close()


def test_the_pool_hands_out_fakes_and_destroys_them(tmp_path):
    lab_hosts = pool.Pool(fakes.settings(str(tmp_path), max_lab_hosts=2)).start()
    try:
        claimed = lab_hosts.claim()
        assert isinstance(claimed, fakes.FakeLabHost) and claimed.alive()
        assert lab_hosts.claimed() == [claimed]
        lab_hosts.release(claimed)
        assert claimed.destroyed and lab_hosts.claimed() == []
    finally:
        lab_hosts.close()


def test_a_slow_lab_host_is_claimed_once_ready(tmp_path):
    lab_hosts = pool.Pool(fakes.settings(str(tmp_path), backend="fake-slow")).start()
    try:
        assert lab_hosts.claim().health().ok
    finally:
        lab_hosts.close()


def test_a_lab_host_that_never_gets_ready_fails_the_claim_and_is_destroyed(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(fakes.NeverLabHost, "start", lambda self: (made.append(self), fakes.FakeLabHost.start(self)))
    with pytest.raises(LabHostError, match="did not get ready within 0.2 s"):
        pool.create(fakes.settings(str(tmp_path), backend="fake-never", ready_timeout=0.2))
    assert len(made) == 1 and made[0].destroyed


def test_its_ports_are_listed_through_the_interface(host):
    host.ports = [(8080, "0.0.0.0"), (8080, "::"), (22, "127.0.0.1")]
    assert ports.listening(host) == [ports.Port(22, "127.0.0.1", "127.0.0.1"),
                                     ports.Port(8080, "127.0.0.1", "0.0.0.0, ::")]   # no engine: unnamed


def test_its_network_picture_is_laid_out(host):
    drawn = picture.read(host)
    assert drawn["lab_host"] == host.id and drawn["width"] > 0 and "took_ms" in drawn
    assert {"x", "y", "width", "height"} <= set(drawn["namespaces"][0])
