"""Workshop rooms' state (webapp/workshop/room.py), kept so that a restarted
server continues a room: its learners' names, addresses and hands."""

from __future__ import annotations

import time

from . import fields
from .sqlite import SQLite


class Rooms:
    """Mixed into Store: a room's state, as JSON, by its mark."""

    _sql: SQLite

    def save_room(self, mark: str, state: str) -> None:
        """Keep a workshop room's state (JSON), so that a restart continues the room."""
        with self._sql.write() as db:
            db.execute("INSERT INTO rooms (mark, state, saved) VALUES (?, ?, ?) ON CONFLICT (mark)"
                       " DO UPDATE SET state = excluded.state, saved = excluded.saved",
                       (fields.text("mark", mark), state, time.time()))

    def room(self, mark: str) -> str | None:
        """The state last saved of the room, or None."""
        with self._sql.read() as db:
            row = db.execute("SELECT state FROM rooms WHERE mark = ?", (fields.text("mark", mark),)).fetchone()
        return row[0] if row else None
