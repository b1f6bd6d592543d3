"""Workshop rooms' state (webapp/workshop/room.py), kept so that a restarted
server continues a room: its learners' names, addresses and hands; and, when
several nodes share a room, changed by one node at a time (``room_tx``)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from . import fields
from .schema import Database


class RoomState:
    """A room's state inside ``room_tx``: ``state`` is what is saved (None: none yet); setting it saves
    it when the block ends without an error."""

    def __init__(self, state: str | None):
        self._state, self.changed = state, False

    @property
    def state(self) -> str | None:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state, self.changed = fields.text("state", value, fields.MAX_TEXT, empty=True), True


class Rooms:
    """Mixed into Store: a room's state, as JSON, by its mark."""

    _sql: Database

    def save_room(self, mark: str, state: str) -> None:
        """Keep a workshop room's state (JSON), so that a restart continues the room."""
        with self._sql.write() as db:
            _save(db, fields.text("mark", mark), state)

    def room(self, mark: str) -> str | None:
        """The state last saved of the room, or None."""
        with self._sql.read() as db:
            row = db.execute("SELECT state FROM rooms WHERE mark = ?", (fields.text("mark", mark),)).fetchone()
        return row[0] or None if row else None

    @contextmanager
    def room_tx(self, mark: str) -> Iterator[RoomState]:
        """The room's state for a change that must not cross another's: read, changed and saved in one
        transaction, so two nodes taking the room's last place take turns and one of them sees it taken.

        On PostgreSQL the room's row is locked (``SELECT ... FOR UPDATE``; made first, empty, if there
        is none yet, as a missing row cannot be locked); on SQLite the write transaction holds the file.
        Call nothing else of the store inside the block: on SQLite its one connection is held."""
        mark = fields.text("mark", mark)
        with self._sql.write() as db:
            db.execute("INSERT INTO rooms (mark, state, saved) VALUES (?, '', ?) ON CONFLICT DO NOTHING",
                       (mark, time.time()))
            row = db.execute("SELECT state FROM rooms WHERE mark = ?" + self._sql.for_update, (mark,)).fetchone()
            room = RoomState(row[0] or None)
            yield room
            if room.changed:
                _save(db, mark, room.state)


def _save(db, mark: str, state: str) -> None:
    db.execute("INSERT INTO rooms (mark, state, saved) VALUES (?, ?, ?) ON CONFLICT (mark)"
               " DO UPDATE SET state = excluded.state, saved = excluded.saved", (mark, state, time.time()))
