"""A room whose saved state cannot be read stays empty (webapp/workshop/room.py, Room.restore)."""
from __future__ import annotations

import json

import pytest

from webapp.workshop.room import Room

ADA, BOB = "a" * 32, "b" * 32


def test_a_saved_room_that_cannot_be_read_leaves_the_room_empty():
    """Workshop._restore keeps the Room its admission holds, so Room.restore must change nothing when it
    raises: a state that fails late (at "spent") must not leave the places it read seated."""
    old = Room(2)
    old.join(ADA, "Ada")
    old.join(BOB, "Bob")
    state = json.loads(json.dumps(old.state()))
    state["spent"] = {"x": "not a time"}   # kept by a labnb that differs
    room = Room(2)
    with pytest.raises(ValueError):
        room.restore(state)
    assert room.places() == []
