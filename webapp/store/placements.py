"""Which node holds a learner's lab host (docs/cluster.md): where the
instructor's commands for a learner go, and whose learners must move when
their node dies."""

from __future__ import annotations

import time

from . import fields
from .schema import Database

PLACEMENT_STATES = ("starting", "ready", "failed", "lost")
_COLUMNS = "learner, node, lab_host, state, note, since"


class Placements:
    """Mixed into Store: a learner's placement, one per learner."""

    _sql: Database

    def place_learner(self, learner: str, node: str, lab_host: str | None, state: str, note: str = "") -> None:
        """Say where a learner's lab host is and how it stands (``since``: now)."""
        if state not in PLACEMENT_STATES:
            raise ValueError(f"state: expected one of {', '.join(PLACEMENT_STATES)}, got {str(state)[:40]!r}")
        row = (fields.text("learner", learner), fields.text("node", node),
               None if lab_host is None else fields.text("lab_host", lab_host), state,
               fields.text("note", note, fields.MAX_TEXT, empty=True), time.time())
        with self._sql.write() as db:
            db.execute(f"INSERT INTO placements ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (learner)"
                       " DO UPDATE SET node = excluded.node, lab_host = excluded.lab_host, state = excluded.state,"
                       " note = excluded.note, since = excluded.since", row)

    def placement(self, learner: str) -> dict | None:
        """The learner's placement (learner, node, lab_host, state, note, since), or None."""
        found = self._placements("learner = ?", (fields.text("learner", learner),))
        return found[0] if found else None

    def placements(self, node: str | None = None) -> list[dict]:
        """Every placement, or those on ``node``."""
        if node is None:
            return self._placements("1 = 1", ())
        return self._placements("node = ?", (fields.text("node", node),))

    def lose_node(self, node: str, note: str) -> list[str]:
        """A dead node's placements marked ``lost`` with ``note``; returns their learners (to move)."""
        args = (fields.text("note", note, fields.MAX_TEXT, empty=True), time.time(), fields.text("node", node))
        with self._sql.write() as db:
            return sorted(r for (r,) in db.execute("UPDATE placements SET state = 'lost', note = ?, since = ?"
                                                    " WHERE node = ? AND state != 'lost' RETURNING learner", args))

    def _placements(self, where: str, args: tuple) -> list[dict]:
        with self._sql.read() as db:
            cur = db.execute(f"SELECT {_COLUMNS} FROM placements WHERE {where} ORDER BY learner", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
