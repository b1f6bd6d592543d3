"""A learner's and the whole store's stored bytes, and making room within
``Limits.learner`` and ``Limits.total`` (see limits.py) by taking finished
runs' output.

Where the usage counts are: on SQLite in the server's memory (read at start,
recounted after a failed transaction; ``MemoryCounts``), as one server
process writes the file. On PostgreSQL several nodes write the store, so the
counts are rows changed in the writing transaction itself, under locks that
make both limits hold across nodes (``TableCounts``; docs/run-store.md,
"Locks"):

- a learner's stored bytes are on their ``learners`` row, read ``FOR UPDATE``
  before a change, so one learner's writes take turns wherever they run;
- the store's total is spread over USAGE_SHARDS rows (a learner's writes
  change their shard's), summed when read, and guarded by an advisory lock:
  shared while the total is far from its limit (any number of writers at
  once: each adds at most SHARED_BYTES, and the sum read leaves room for a
  full pool of such writers, ``margin``), exclusive near it (one writer at a
  time reads the exact total and prunes). A single hot row would have made
  every append of every node wait for the previous one's commit; the shared
  lock costs one statement per append instead, and the exclusive mode's
  turn-taking only comes near a full store.
- a transaction changes the shard rows last, just before it commits (its
  deltas are gathered until then), and takes other learners' rows with SKIP
  LOCKED when the store's limit prunes them: the locks are always taken in one
  order (the store's lock, learners' rows, shard rows), so nodes never wait on
  each other in a circle.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from .limits import NOTE_ROOM, Limits, mib, note
from .schema import USAGE_SHARDS

SHARED_BYTES = 1 << 20          # what a writer may add under the shared lock (a chunk is at most 256 KiB)
STORE_LOCK = 0x6C61626E62_03    # the advisory lock on the store's total ("labnb", then which)


class MemoryCounts:
    """The usage counts in memory: one server process writes the store (SQLite)."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._total = 0

    def recount(self, db: Any) -> None:
        """Read every learner's stored bytes (the lock held, or before any thread)."""
        self._used = {learner: int(n) for learner, n in
                      db.execute("SELECT learner, sum(stored_bytes) FROM runs GROUP BY learner").fetchall()}
        self._total = sum(self._used.values())

    def enter(self, db: Any, need: int) -> None:
        """Nothing to lock: the write transaction holds the file."""

    def hold(self, db: Any, learners: list[str]) -> None:
        """Nothing to lock: the write transaction holds the file."""

    def used(self, db: Any, learner: str) -> int:
        return self._used.get(learner, 0)

    def total(self, db: Any) -> int:
        return self._total

    def add(self, db: Any, learner: str, delta: int) -> None:
        self._used[learner] = self._used.get(learner, 0) + delta
        self._total += delta

    def forget(self, learner: str) -> None:
        """A learner deleted with their runs."""
        self._total -= self._used.pop(learner, 0)

    def largest(self, db: Any, skip: set[str]) -> str | None:
        return max((k for k, n in self._used.items() if n > 0 and k not in skip),
                   key=self._used.__getitem__, default=None)


class TableCounts:
    """The usage counts in the database, changed in the writing transaction (PostgreSQL: nodes share it).
    What a transaction has locked and changed is kept on its connection (``db.state``)."""

    def __init__(self, limit: int, max_connections: int):
        self.limit = limit                               # the store's, Limits.total
        self.margin = max_connections * SHARED_BYTES     # what writers under the shared lock may add at once

    def recount(self, db: Any) -> None:
        """Nothing to read: the counts are rows, rolled back with the transaction that changed them."""

    def _tx(self, db: Any) -> dict:
        """This transaction's quota state: its lock mode, bytes added under it, learners' rows locked, and
        the deltas of the shards (written just before the commit)."""
        tx = db.state.get("quota")
        if tx is None:
            tx = db.state["quota"] = {"mode": None, "added": 0, "used": {}, "shards": {}}
            db.before_commit.append(lambda: self._write_shards(db, tx["shards"]))
        return tx

    def enter(self, db: Any, need: int) -> None:
        """Take the store's lock before adding ``need`` bytes: shared while the total leaves room for every
        writer that may hold it (``margin``), else exclusive. A transaction that outgrows its shared share
        asks for the exclusive lock (then it waits for the other writers, none of which waits for it)."""
        tx = self._tx(db)
        if tx["mode"] == "exclusive" or (tx["mode"] == "shared" and tx["added"] + need <= SHARED_BYTES):
            tx["added"] += need
            return
        if tx["mode"] is None and need <= SHARED_BYTES:   # one statement: the total read, the lock taken
            shared = db.execute(
                "SELECT CASE WHEN t.bytes + ? <= ? THEN (SELECT true FROM pg_advisory_xact_lock_shared(?))"
                " ELSE (SELECT false FROM pg_advisory_xact_lock(?)) END"
                " FROM (SELECT sum(bytes) AS bytes FROM usage) AS t",
                (sum(tx["shards"].values()) + need + self.margin, self.limit, STORE_LOCK, STORE_LOCK)).fetchone()[0]
        else:
            db.execute("SELECT pg_advisory_xact_lock(?)", (STORE_LOCK,))
            shared = False
        tx["mode"] = "shared" if shared else "exclusive"
        tx["added"] += need

    def hold(self, db: Any, learners: list[str]) -> None:
        """Lock these learners' rows, in one order (before deleting their runs: retention)."""
        tx = self._tx(db)
        wanted = sorted(set(learners) - set(tx["used"]))
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            for learner, used in db.execute(f"SELECT id, stored_bytes FROM learners WHERE id IN"
                                            f" ({','.join('?' * len(part))}) ORDER BY id FOR UPDATE", part):
                tx["used"][learner] = used

    def used(self, db: Any, learner: str) -> int:
        tx = self._tx(db)
        if learner not in tx["used"]:
            row = db.execute("SELECT stored_bytes FROM learners WHERE id = ? FOR UPDATE", (learner,)).fetchone()
            tx["used"][learner] = row[0] if row else 0
        return tx["used"][learner]

    def total(self, db: Any) -> int:
        """The store's total as this transaction sees it (exact under the exclusive lock)."""
        return db.execute("SELECT sum(bytes)::bigint FROM usage").fetchone()[0] + sum(self._tx(db)["shards"].values())

    def add(self, db: Any, learner: str, delta: int) -> None:
        tx = self._tx(db)
        if learner in tx["used"]:
            tx["used"][learner] += delta
        db.execute("UPDATE learners SET stored_bytes = stored_bytes + ? WHERE id = ?", (delta, learner))
        shard = zlib.crc32(learner.encode()) % USAGE_SHARDS
        tx["shards"][shard] = tx["shards"].get(shard, 0) + delta

    def forget(self, learner: str) -> None:
        """Nothing: a learner is deleted with their row, its count at 0."""

    def largest(self, db: Any, skip: set[str]) -> str | None:
        """The learner who stores the most, but not one another transaction is changing (SKIP LOCKED:
        waiting for them, with this transaction's locks held, could close a circle)."""
        tx = self._tx(db)
        row = db.execute("SELECT id, stored_bytes FROM learners WHERE stored_bytes > 0 AND NOT id = ANY(?)"
                         " ORDER BY stored_bytes DESC LIMIT 1 FOR UPDATE SKIP LOCKED", (sorted(skip),)).fetchone()
        if row is None:
            return None
        tx["used"].setdefault(row[0], row[1])
        return row[0]

    @staticmethod
    def _write_shards(db: Any, shards: dict[int, int]) -> None:
        for shard in sorted(shards):
            if shards[shard]:
                db.execute("UPDATE usage SET bytes = bytes + ? WHERE shard = ?", (shards[shard], shard))


class Quota:
    """The usage counts of one store and making room within the limits; every method runs inside the store's
    write transaction (or, ``recount``, with its lock held)."""

    def __init__(self, limits: Limits, counts: MemoryCounts | TableCounts | None = None):
        self.limits = limits
        self.counts = counts or MemoryCounts()

    def recount(self, db: Any) -> None:
        self.counts.recount(db)

    def count(self, db: Any, learner: str, delta: int) -> None:
        self.counts.add(db, learner, delta)

    def forget(self, learner: str) -> None:
        self.counts.forget(learner)

    def hold(self, db: Any, learners: list[str]) -> None:
        """Before changing several learners' counts in one transaction: take them in one order."""
        self.counts.hold(db, learners)

    def reserve(self, db: Any, need: int) -> None:
        """Before several ``make_room``s in one transaction: take the store's lock for all of them at once."""
        self.counts.enter(db, need)

    def make_room(self, db: Any, learner: str, need: int) -> str | None:
        """Take finished runs' output until ``need`` more bytes of ``learner``'s
        fit both quotas; None if they do, else the limit that is still full."""
        counts = self.counts
        counts.enter(db, need)
        over = counts.used(db, learner) + need - self.limits.learner
        if over > 0:
            self._prune(db, over, "learner", learner)
            if counts.used(db, learner) + need > self.limits.learner:
                return "learner"
        over = counts.total(db) + need - self.limits.total
        if over > 0:
            self._prune(db, over, "store")
            if counts.total(db) + need > self.limits.total:
                return "store"
        return None

    def _prune(self, db: Any, need: int, why: str, learner: str | None = None) -> None:
        """Free ``need`` bytes from ``learner``'s finished runs, or from the
        learners who store the most."""
        freed, spent = 0, set()
        while freed < need:
            who = learner or self.counts.largest(db, spent)
            if who is None:
                return
            got = self._prune_one(db, who, why)
            if not got:
                if learner:
                    return
                spent.add(who)
            freed += got

    def _prune_one(self, db: Any, learner: str, why: str) -> int:
        """Free one finished run's output of ``learner``: the oldest that a later
        run of its step replaced (deleted), else the oldest latest one (its output
        replaced by a note). Returns the bytes freed, 0 if there was none."""
        newer = ("EXISTS (SELECT 1 FROM runs AS n WHERE n.learner = r.learner AND n.lab = r.lab"
                 " AND n.step = r.step AND n.rowid > r.rowid)")
        row = db.execute(f"SELECT id, stored_bytes FROM runs AS r WHERE learner = ? AND status != 'running'"
                         f" AND stored_bytes > 0 AND {newer} ORDER BY rowid LIMIT 1", (learner,)).fetchone()
        if row is not None:
            db.execute("DELETE FROM runs WHERE id = ?", (row[0],))
            self.count(db, learner, -row[1])
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
        self.count(db, learner, len(text) - stored)
        return stored - len(text)

    def full(self, why: str) -> str:
        """Which quota is full, for a note."""
        if why == "learner":
            return f"your runs' stored output is at its limit of {mib(self.limits.learner)} (LABNB_LEARNER_OUTPUT_MB)"
        return f"the server's run store is at its limit of {mib(self.limits.total)} (LABNB_STORE_OUTPUT_MB)"
