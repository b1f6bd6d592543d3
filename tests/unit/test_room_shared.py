"""A room that several nodes share (webapp/workshop/shared.py): two SharedRooms on one store are two nodes
(on PostgreSQL in tests/test_cluster_room.py). Each change is a transaction on the room as it is in the
store, so places are taken once and the queue has one order whichever node the learners join; reads are
of a node's copy, at most STALE s old unless told sooner; the learners' signs reach the node that ends
idle places."""
from __future__ import annotations

import threading

import pytest

from webapp.workshop import room as room_module, shared
from webapp.workshop.room import ENDED, SEATED, WAITING, RoomError, Times
from webapp.workshop.shared import STALE, SharedRoom

KEY = "k" * 32


def node(store, capacity=2, times=Times()) -> SharedRoom:
    return SharedRoom(capacity, times, store, KEY)


def test_places_are_taken_once_whichever_node_the_learners_join(store):
    a, b = node(store), node(store)
    assert a.join("l1", "Ana").state == SEATED
    assert b.join("l2", "Bo").state == SEATED    # b loads the room in its transaction: one place was left
    assert a.join("l3", "Cy").state == WAITING
    b.invalidate()
    assert b.counts() == {"capacity": 2, "seated": 2, "waiting": 1} and b.position("l3") == 1
    assert b.end("l1", "left") == ["l3"]         # b's end seats a's waiting learner
    a.invalidate()
    assert a.get("l3").state == SEATED and a.get("l1").state == ENDED


def test_joins_at_once_on_two_nodes_seat_capacity_and_queue_the_rest_in_one_order(store):
    a, b = node(store, capacity=5), node(store, capacity=5)
    go = threading.Barrier(20)

    def join(room, i):
        go.wait()
        room.join(f"l{i:02}", f"n{i}")
    threads = [threading.Thread(target=join, args=(a if i % 2 else b, i)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    a.invalidate(), b.invalidate()
    for room in (a, b):
        assert room.counts() == {"capacity": 5, "seated": 5, "waiting": 15}
    order = sorted((p for p in a.places() if p.state == WAITING), key=lambda p: a.position(p.id))
    assert [b.position(p.id) for p in order] == list(range(1, 16))


def test_a_read_is_of_the_nodes_copy_at_most_stale_seconds_old(store, clock):
    clock.into(shared, room_module)
    a, b = node(store), node(store)
    a.join("l1", "Ana")
    assert b.get("l1") is not None              # b had no copy yet
    a.broadcast("break until 11")
    assert b.banner_for("l1") is None           # b's copy is fresh: not read again
    clock.advance(STALE)
    assert b.banner_for("l1")["text"] == "break until 11"
    a.clear_banner()
    b.invalidate()                              # the other node's note
    assert b.banner_for("l1") is None


def test_a_change_refused_saves_nothing(store):
    a, b = node(store), node(store)
    a.join("l1", "Ana")
    with pytest.raises(RoomError):
        b.raise_hand("nobody", "help")
    with pytest.raises(RoomError):
        b.join("l2", "")
    a.invalidate()
    assert [p.id for p in a.places()] == ["l1"]


def test_a_place_whose_time_is_up_ends_once_whichever_nodes_end_them(store, clock):
    clock.into(shared, room_module)
    times = Times(duration=60)
    a, b, c = node(store, 1, times), node(store, 1, times), node(store, 1, times)
    a.join("l1", "Ana")
    b.join("l2", "Bo")
    clock.advance(61)
    idle = lambda learner: False   # noqa: E731
    ended = [room.expire(idle)[0] for room in (a, b)]
    assert ended == [[("l1", "time")], []]      # b's transaction saw it ended already
    c.invalidate()
    assert c.get("l2").state == SEATED and c.get("l1").state == ENDED


def test_the_signs_one_node_saw_keep_a_learner_of_another_from_being_idle(store, clock):
    clock.into(shared, room_module)
    times = Times(idle=600)
    a, b = node(store, 2, times), node(store, 2, times)   # the learner is on a, b ends idle places
    a.join("l1", "Ana")
    b.invalidate()
    for _ in range(5):
        clock.advance(300)
        a.touch("l1")
        assert not a.signs_due() or a.keep_signs() is None
        clock.advance(shared.SIGNS_EVERY)
        if a.signs_due():
            a.keep_signs()
        assert b.expire(lambda learner: False)[0] == []
    clock.advance(601)
    assert b.expire(lambda learner: False)[0] == [("l1", "idle")]


def test_a_node_that_starts_gives_everyone_a_fresh_idle_clock(store, clock):
    clock.into(shared, room_module)
    a = node(store, 2, Times(idle=600))
    a.join("l1", "Ana")
    clock.advance(3600)    # the cluster was down
    b = node(store, 2, Times(idle=600))
    b.resume()
    assert b.expire(lambda learner: False)[0] == []


def test_a_node_makes_no_lab_host_for_a_learner_another_node_holds_one_for(store):
    from webapp.workshop.manager import RoomAdmission

    room = node(store)
    room.join("l1", "Ana")
    on_a = RoomAdmission(room, "mark", "operator", store, "a")
    store.place_learner("l1", "b", None, "starting")
    assert "held by node b" in on_a.admits("l1")            # b makes it: a makes no second one
    store.place_learner("l1", "b", "lh-b-1", "ready")
    assert "held by node b" in on_a.admits("l1")
    store.place_learner("l1", "b", None, "failed")           # b holds none now: a may make it
    assert on_a.admits("l1") is None
    assert {k: store.placement("l1")[k] for k in ("node", "lab_host", "state")} == \
        {"node": "a", "lab_host": None, "state": "starting"}   # said at once, for the other nodes
    store.place_learner("l1", "b", "lh-b-2", "lost")         # b died
    assert on_a.admits("l1") is None
    alone = RoomAdmission(room, "mark", "operator", store)   # one machine: placements are not read
    store.place_learner("l1", "b", "lh-b-3", "ready")
    assert alone.admits("l1") is None
