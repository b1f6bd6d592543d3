"""The fast tier's fixtures: a clock the tests move, and a run store in a temporary SQLite file.

Nothing here needs root, a lab host, a server process or a browser: the tier runs as any user
(tests/test_unit_tier.py runs it as user nobody). The root tier's fixtures (tests/conftest.py) are
loaded too, but lazily: none of them does anything until a test asks for it.
"""
from __future__ import annotations

import pytest

import fakes
from apps import Tab, browser, ready, serving
from webapp.store import Limits, Store


class Clock:
    """Stands in for the ``time`` module of the modules it is put into: ``time()`` and ``monotonic()``
    read one counter that only ``advance`` moves, so a rule about seconds is tested without waiting."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now

    monotonic = time

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """``clock.into(module, ...)``: those modules' ``time`` is the test's clock until it ends."""
    c = Clock()

    def into(*modules):
        for module in modules:
            monkeypatch.setattr(module, "time", c)
        return c
    c.into = into
    return c


@pytest.fixture
def fake_backends():
    """The fake lab hosts (fakes.py) registered as backends for one test: a module asks for it with
    ``pytestmark = pytest.mark.usefixtures("fake_backends")``."""
    fakes.register()
    yield
    fakes.unregister()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "runs.db", Limits()) as s:
        yield s


# An app in process on a fake lab host (apps.py), a signed-in browser with its lab host ready, and a tab of
# it on Socket.IO; a module makes its own ``app`` (or ``http``) where it needs other settings.
@pytest.fixture
def app(tmp_path):
    with serving(tmp_path, runs_per_minute=1000) as app:
        yield app


@pytest.fixture
def http(app):
    http = browser(app)
    ready(http)
    return http


@pytest.fixture
def tab(app, http):
    t = Tab(app, http)
    yield t
    t.close()
