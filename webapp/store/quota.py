"""A learner's and the whole store's stored bytes, and making room within
``Limits.learner`` and ``Limits.total`` (see limits.py) by taking finished
runs' output.

The usage counts are kept in memory (read at start, recounted after a failed
transaction): one server process writes a store.
"""

from __future__ import annotations

import sqlite3
import time

from .limits import NOTE_ROOM, Limits, mib, note


class Quota:
    """The usage counts of one store; every method runs inside the store's
    write transaction (or, ``recount``, with its lock held)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._used: dict[str, int] = {}
        self._total = 0

    def recount(self, db: sqlite3.Connection) -> None:
        """Read every learner's stored bytes (the lock held, or before any thread)."""
        self._used = {learner: int(n) for learner, n in
                      db.execute("SELECT learner, sum(stored_bytes) FROM runs GROUP BY learner").fetchall()}
        self._total = sum(self._used.values())

    def count(self, learner: str, delta: int) -> None:
        self._used[learner] = self._used.get(learner, 0) + delta
        self._total += delta

    def forget(self, learner: str) -> None:
        """A learner deleted with their runs."""
        self._total -= self._used.pop(learner, 0)

    def make_room(self, db: sqlite3.Connection, learner: str, need: int) -> str | None:
        """Take finished runs' output until ``need`` more bytes of ``learner``'s
        fit both quotas; None if they do, else the limit that is still full."""
        over = self._used.get(learner, 0) + need - self.limits.learner
        if over > 0:
            self._prune(db, over, "learner", learner)
            if self._used.get(learner, 0) + need > self.limits.learner:
                return "learner"
        over = self._total + need - self.limits.total
        if over > 0:
            self._prune(db, over, "store")
            if self._total + need > self.limits.total:
                return "store"
        return None

    def _prune(self, db: sqlite3.Connection, need: int, why: str, learner: str | None = None) -> None:
        """Free ``need`` bytes from ``learner``'s finished runs, or from the
        learners who store the most."""
        freed, spent = 0, set()
        while freed < need:
            who = learner or max((k for k, n in self._used.items() if n > 0 and k not in spent),
                                 key=self._used.__getitem__, default=None)
            if who is None:
                return
            got = self._prune_one(db, who, why)
            if not got:
                if learner:
                    return
                spent.add(who)
            freed += got

    def _prune_one(self, db: sqlite3.Connection, learner: str, why: str) -> int:
        """Free one finished run's output of ``learner``: the oldest that a later
        run of its step replaced (deleted), else the oldest latest one (its output
        replaced by a note). Returns the bytes freed, 0 if there was none."""
        newer = ("EXISTS (SELECT 1 FROM runs AS n WHERE n.learner = r.learner AND n.lab = r.lab"
                 " AND n.step = r.step AND n.rowid > r.rowid)")
        row = db.execute(f"SELECT id, stored_bytes FROM runs AS r WHERE learner = ? AND status != 'running'"
                         f" AND stored_bytes > 0 AND {newer} ORDER BY rowid LIMIT 1", (learner,)).fetchone()
        if row is not None:
            db.execute("DELETE FROM runs WHERE id = ?", (row[0],))
            self.count(learner, -row[1])
            return row[1]
        row = db.execute(f"SELECT id, stored_bytes, truncated, last_seq FROM runs AS r WHERE learner = ?"
                         f" AND status != 'running' AND stored_bytes > ? AND NOT {newer} ORDER BY rowid LIMIT 1",
                         (learner, NOTE_ROOM)).fetchone()
        if row is None:
            return 0
        run_id, stored, truncated, last_seq = row
        text = note(f"labnb removed this run's output ({stored:,} bytes) on {time.strftime('%Y-%m-%d %H:%M')}"
                    f" to make room: {self.full(why)}. Run the step again to see it.")
        db.execute("DELETE FROM chunks WHERE run = ?", (run_id,))
        db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)",
                   (run_id, last_seq + 1, stored + truncated, text))
        db.execute("UPDATE runs SET stored_bytes = ?, truncated = ?, last_seq = ?, head_seq = NULL,"
                   " limited_by = ? WHERE id = ?", (len(text), stored + truncated, last_seq + 1, why, run_id))
        self.count(learner, len(text) - stored)
        return stored - len(text)

    def full(self, why: str) -> str:
        """Which quota is full, for a note."""
        if why == "learner":
            return f"your runs' stored output is at its limit of {mib(self.limits.learner)} (LABNB_LEARNER_OUTPUT_MB)"
        return f"the server's run store is at its limit of {mib(self.limits.total)} (LABNB_STORE_OUTPUT_MB)"
