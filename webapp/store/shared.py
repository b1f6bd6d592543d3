"""Values every node of a cluster must share (the secret key, the learners'
and the operator's tokens, a workshop's access code): the first node to ask
makes the value, every other node reads it, so the operator copies nothing."""

from __future__ import annotations

import time
from typing import Callable

from . import fields
from .schema import Database


class Shared:
    """Mixed into Store: named values, made once."""

    _sql: Database

    def shared_value(self, name: str, make: Callable[[], str]) -> str:
        """The value named ``name``: the one stored, else ``make()``'s, stored (insert if absent, then
        read, in one transaction: of two nodes racing, the first to commit wins and both get its value)."""
        name = fields.text("name", name)
        with self._sql.write() as db:
            row = db.execute("SELECT value FROM shared WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return row[0]
            db.execute("INSERT INTO shared (name, value, made) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (name, fields.text("value", make(), fields.MAX_TEXT), time.time()))
            return db.execute("SELECT value FROM shared WHERE name = ?", (name,)).fetchone()[0]
