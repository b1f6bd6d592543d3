"""A costly read shared between askers (webapp/guard/sharing.py): one at a time per key, at most one per
interval, nobody waits."""
from __future__ import annotations

import threading

import pytest

from webapp.guard import sharing
from webapp.guard.sharing import Busy, Sharing


@pytest.fixture
def moved(clock):
    return clock.into(sharing)


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return self.n


def test_the_first_ask_reads(moved):
    read = Counter()
    assert Sharing(interval=5).get("lh-1", read, "busy") == (1, True)


def test_within_the_interval_the_last_result_is_shared_not_fresh(moved):
    shared, read = Sharing(interval=5), Counter()
    shared.get("lh-1", read, "busy")
    moved.advance(4.9)
    assert shared.get("lh-1", read, "busy") == (1, False) and read.n == 1
    moved.advance(0.1)
    assert shared.get("lh-1", read, "busy") == (2, True)


def test_each_key_is_read_on_its_own(moved):
    shared, read = Sharing(interval=5), Counter()
    assert shared.get("lh-1", read, "busy") == (1, True)
    assert shared.get("lh-2", read, "busy") == (2, True)
    assert shared.known() == {"lh-1", "lh-2"}


def test_a_slow_read_spaces_the_next_by_the_cooldown(moved):
    shared = Sharing(interval=1, cooldown=10)

    def slow():
        moved.advance(2)   # the read took 2 s: the next after 20 s
        return "picture"
    shared.get("lh-1", slow, "busy")
    moved.advance(19)
    assert shared.get("lh-1", slow, "busy") == ("picture", False)
    moved.advance(1)
    assert shared.get("lh-1", slow, "busy") == ("picture", True)


def test_a_result_nobody_asks_for_is_forgotten(moved):
    shared = Sharing(interval=1)
    shared.get("lh-1", Counter(), "busy")
    moved.advance(sharing.KEEP)
    shared.get("lh-2", Counter(), "busy")
    assert shared.known() == {"lh-2"}


def test_a_failed_read_raises_to_its_asker_and_leaves_no_result(moved):
    shared = Sharing(interval=5)

    def broken():
        raise OSError("lab host gone")
    with pytest.raises(OSError):
        shared.get("lh-1", broken, "busy")
    assert shared.known() == set()
    assert shared.get("lh-1", Counter(), "busy") == (1, True)   # not left marked as reading


def _while_reading(shared: Sharing, key: str, ask):
    """``ask()`` while another thread is inside its read of ``key``."""
    inside, done, out = threading.Event(), threading.Event(), {}

    def read():
        inside.set()
        done.wait(60)
        return "first"
    t = threading.Thread(target=lambda: out.setdefault("reader", shared.get(key, read, "busy")))
    t.start()
    assert inside.wait(60)
    try:
        return ask()
    finally:
        done.set()
        t.join(10)


def test_while_a_key_is_read_an_asker_gets_busy_not_a_second_read():
    shared, read = Sharing(interval=0), Counter()
    with pytest.raises(Busy, match="a read is under way"):
        _while_reading(shared, "lh-1", lambda: shared.get("lh-1", read, "a read is under way"))
    assert read.n == 0


def test_while_a_key_is_read_an_asker_gets_the_last_result():
    shared = Sharing(interval=0)
    shared.get("lh-1", lambda: "old", "busy")
    assert _while_reading(shared, "lh-1", lambda: shared.get("lh-1", Counter(), "busy")) == ("old", False)


def test_at_most_most_reads_at_once_in_all():
    shared, read = Sharing(interval=0, most=1), Counter()
    with pytest.raises(Busy):
        _while_reading(shared, "lh-1", lambda: shared.get("lh-2", read, "busy"))
    assert read.n == 0
    assert shared.get("lh-2", read, "busy") == (1, True)   # the reader's place was given back
