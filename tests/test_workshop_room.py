"""A room's state across a restart, without a server: what ``Room.state`` keeps
and ``restore`` takes back, and a saved state this labnb cannot read.
(tests/test_workshop_restart.py restarts a real server.)"""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from webapp.config import Settings
from webapp.store import Store
from webapp.guard.auth import operator_mark
from webapp.workshop.manager import RoomAdmission, Workshop, code_mark
from webapp.workshop.room import Room, Times

ADA, BOB = "a" * 32, "b" * 32


def restarted(room: Room, capacity: int = 1) -> Room:
    again = Room(capacity, room.times)
    again.restore(json.loads(json.dumps(room.state())))
    return again


def test_a_restored_room_is_the_room_it_was():
    room = Room(1, Times(duration=3600))
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    room.raise_hand(ADA, "stuck")
    room.see_hand(ADA)
    room.broadcast("lunch")
    room.dismiss(ADA, room.banner["id"])
    room.extend(ADA, 600)
    assert room.spend("n1", 900)
    again = restarted(room)
    ada, bob = again.get(ADA), again.get(BOB)
    assert (ada.state, ada.hand.message, ada.hand.seen, ada.granted) == ("seated", "stuck", room.get(ADA).hand.seen, 600)
    assert bob.state == "waiting" and again.position(BOB) == 1
    assert again.banner_for(ADA) is None and again.banner_for(BOB)["text"] == "lunch"
    assert not again.spend("n1", 900)
    again.broadcast("back")   # a new banner, not the dismissed one's id again
    assert again.banner_for(ADA)["text"] == "back"
    # in a room restarted larger, who waited is seated
    assert restarted(room, capacity=2).get(BOB).state == "seated"


def test_a_spent_resume_link_is_forgotten_once_it_would_have_expired():
    room = Room(1)
    assert room.spend("n1", 900)
    room._spent["n1"] -= 901   # as 901 s later
    assert room.spend("n2", 900) and "n1" not in room.state()["spent"]


def test_a_state_saved_by_another_labnb_loses_nothing_it_does_not_know():
    room = Room(1)
    room.join(ADA, "Ada")
    room.raise_hand(ADA, "help")
    state = room.state()
    state["members"][0]["future"] = 1
    state["members"][0]["hand"]["also"] = 2
    again = Room(1)
    again.restore(state)
    assert again.get(ADA).hand.message == "help"


def test_an_unreadable_saved_state_is_kept_aside_and_the_room_starts_empty(tmp_path, caplog):
    settings = Settings(state_dir=str(tmp_path), workshop=1, capacity=2, access_code="abcde-23456")
    admission = RoomAdmission(Room(settings.capacity), code_mark(settings.access_code), operator_mark("operator"))
    workshop = Workshop(settings, {}, admission, SimpleNamespace(mark="token"), None, None, None, None, None)
    workshop._key = "room"
    with Store(tmp_path / "runs.db") as store:
        store.save_room("room", json.dumps({"members": [{"id": ADA}]}))   # no name, no place
        with caplog.at_level(logging.ERROR):
            workshop._restore(store)
        assert workshop.room.places() == [] and "cannot be read" in caplog.text
        aside = [row[0] for row in store._sql.db.execute("SELECT mark FROM rooms WHERE mark LIKE 'room.unread.%'")]
        assert len(aside) == 1 and store.room(aside[0]) == store.room("room")
