"""A pool on a machine that lets it make no more lab hosts (webapp/labhost/pool.py, ``Pool.cannot_make``), on
fakes whose machine has a few uid ranges: a claim and a workshop's join are refused at once with the
machine's words, the warm pool says so once and checks again at growing intervals instead of making lab
hosts in a loop, and it makes the next once a range is freed. The slow tier's tests/test_pool_refusal.py
says the same on real lab hosts and the machine's /etc/subuid."""
from __future__ import annotations

import logging
import threading

import pytest

import fakes
from apps import OPERATOR, WAIT, browser, host_state, ready, serving, services, session_value
from test_workshop_app import CODE, join, text
from web_support import wait_for
from webapp.labhost import backends, pool
from webapp.labhost.errors import CannotMake

WORDS = "all 1 uid ranges of this machine are claimed"
TODO = "Set LABNB_MAX_LAB_HOSTS to at most 1"


class Machine:
    """``ranges`` uid ranges for RangedLabHost: one taken as a lab host starts, freed as it goes."""

    def __init__(self, ranges: int):
        self.free, self.asked, self.tried = ranges, 0, 0
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None   # set: a lab host's start waits for it, its range taken

    def refusal(self, settings) -> CannotMake | None:
        with self.lock:
            self.asked += 1
            return None if self.free > 0 else CannotMake(WORDS, TODO)


class RangedLabHost(fakes.FakeLabHost):
    machine: Machine

    def start(self) -> None:
        with self.machine.lock:
            self.machine.tried += 1
            if self.machine.free <= 0:
                raise CannotMake(WORDS, TODO)
            self.machine.free -= 1
            self.ranged = True
        if self.machine.hold is not None:
            self.machine.hold.wait(WAIT)
        super().start()

    def destroy(self) -> None:
        if getattr(self, "ranged", False) and not self.destroyed:
            with self.machine.lock:
                self.machine.free += 1
        super().destroy()


@pytest.fixture
def machine():
    """A machine of 1 uid range, as the backend "fake-ranged"'s."""
    RangedLabHost.machine = made = Machine(1)
    backends.register(backends.Backend("fake-ranged", RangedLabHost, pooled=True, recorded=False, isolated=False,
                                       refusal=made.refusal))
    yield made
    backends.unregister("fake-ranged")


@pytest.fixture
def quick(monkeypatch):
    """The warm pool's checks every few milliseconds, not seconds."""
    monkeypatch.setattr(pool, "RECHECK_LEAST", 0.005)
    monkeypatch.setattr(pool, "RECHECK_MOST", 0.04)


def settings(tmp_path, **kw):
    return fakes.settings(str(tmp_path), "fake-ranged", max_lab_hosts=3, ready_timeout=3600.0, **kw)


def test_the_warm_pool_says_once_that_it_cannot_make_backs_off_and_makes_the_next_once_a_range_is_freed(
        tmp_path, machine, quick, caplog):
    caplog.set_level(logging.INFO, logger=pool.__name__)
    lab_hosts = pool.Pool(settings(tmp_path, pool_size=1)).start()
    try:
        assert lab_hosts.wait_full(WAIT) and lab_hosts.cannot_make() is None   # one waits ready
        first = lab_hosts.claim()
        wait_for(lambda: lab_hosts.cannot_make(), WAIT, what="the pool to find the machine's range taken")
        assert lab_hosts.cannot_make() == f"{WORDS}. {TODO}"
        with pytest.raises(CannotMake, match=f"{WORDS}. {TODO}"):   # at once: the ready timeout is an hour
            lab_hosts.claim()
        asked = machine.asked
        wait_for(lambda: machine.asked > asked + 10, WAIT, what="the pool to check again, several times")
        refusals = [r.getMessage() for r in caplog.records if WORDS in r.getMessage()]
        assert refusals == [f"warm pool: {WORDS}. {TODO}. It makes the next when a uid range is freed"]
        # it checked, cheaply; it tried to make lab hosts twice in all: its first, and the refused one
        # (the claim's refused try is a third)
        assert machine.tried == 3, machine.tried
        lab_hosts.release(first)
        assert lab_hosts.wait_full(WAIT) and lab_hosts.cannot_make() is None
        assert "warm pool: a uid range was freed; it makes lab hosts again" in caplog.messages
        assert lab_hosts.claim().alive()
    finally:
        lab_hosts.close()


def test_a_claim_waits_for_the_lab_host_the_pool_makes_in_the_machine_s_last_range(tmp_path, machine):
    machine.hold = threading.Event()
    lab_hosts = pool.Pool(settings(tmp_path, pool_size=1)).start()
    try:
        wait_for(lambda: machine.free == 0, WAIT, what="the pool to take the machine's range")
        assert lab_hosts.cannot_make() is None   # it is making one: a join may come
        got: list = []
        claim = threading.Thread(target=lambda: got.append(lab_hosts.claim()))
        claim.start()
        wait_for(lambda: machine.asked, WAIT, what="the claim to find no range free")
        machine.hold.set()
        claim.join(WAIT)
        assert got and got[0].alive()
    finally:
        machine.hold.set()
        lab_hosts.close()


def test_the_open_server_tells_a_learner_past_the_machine_s_ranges_at_once(tmp_path, machine):
    with serving(tmp_path, "fake-ranged", max_lab_hosts=3, ready_timeout=3600.0, lab_hosts_per_address=9) as app:
        first = browser(app)
        ready(first)
        second = browser(app)
        state = wait_for(lambda: (s := host_state(second)) != "starting" and s, WAIT, what="the claim to end")
        page = text(second.get("/labs/80-unit/host"))
        assert state == "failed" and WORDS in page and TODO in page, page


def test_a_workshop_refuses_a_join_at_once_while_no_lab_host_can_be_made_and_lets_it_in_after(tmp_path, machine):
    with serving(tmp_path, "fake-ranged", workshop=1, capacity=2, access_code=CODE, workshop_labs="80-unit",
                 max_lab_hosts=3, memory_mb=64, ready_timeout=3600.0) as app:
        first, r = join(app, "Ada")
        assert r.status_code == 303, text(r)
        ready(first)
        second, r = join(app, "Grace")
        assert r.status_code == 503 and f"cannot give anyone a lab host now: {WORDS}. {TODO}" in text(r), text(r)
        assert services(app).workshop.room.get(session_value(second, "learner") or "") is None   # no place taken
        instructor = browser(app, OPERATOR)
        learner = session_value(first, "learner")
        r = instructor.post(f"/workshop/learners/{learner}/end",
                            headers={"X-CSRF-Token": session_value(instructor, "csrf")})
        assert r.status_code < 400, r.text
        wait_for(lambda: machine.free, WAIT, what="the ended learner's lab host to go")
        second, r = join(app, "Grace", http=second)
        assert r.status_code == 303, text(r)
        ready(second)
