"""The store's schema, one list of migrations for both databases, and what the
concerns (runs.py, output.py, ...) may ask of a database (``Database``).

Migrations are written in SQLite's DDL; postgres.py reads the same text with
PostgreSQL's types (``REAL`` is a float8 there, ``INTEGER`` a bigint, ``BLOB``
a bytea) and gives ``runs`` the ``rowid`` column SQLite gives every table (the
concerns order runs by it). A migration that only one database needs is a
``{"sqlite": ..., "postgres": ...}`` dict (a missing key: nothing to do there),
so that the versions of both stay the same numbers. Statements are split on
';' (no ';' inside a statement).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..status import STORED

USAGE_SHARDS = 64   # rows the store's total is spread over on PostgreSQL (quota.py)

# One entry per schema version; a database says how many it has applied.
MIGRATIONS: list[str | dict[str, str]] = [
    f"""
    CREATE TABLE learners (
        id      TEXT PRIMARY KEY,
        created REAL NOT NULL
    );
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        learner      TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
        lab          TEXT NOT NULL,
        step         TEXT NOT NULL,
        kind         TEXT NOT NULL,
        command      TEXT NOT NULL,
        lab_host     TEXT,
        started      REAL NOT NULL,
        ended        REAL,
        exit_code    INTEGER,
        signal       INTEGER,
        status       TEXT NOT NULL CHECK (status IN {STORED!r}),
        duration     REAL,
        stored_bytes INTEGER NOT NULL DEFAULT 0,
        truncated    INTEGER NOT NULL DEFAULT 0,
        last_seq     INTEGER
    );
    CREATE INDEX runs_by_step ON runs (learner, lab, step);
    CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
    -- pos: byte offset of the chunk in the stored output, for head/tail.
    CREATE TABLE chunks (
        run  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seq  INTEGER NOT NULL,
        pos  INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run, seq)
    );
    CREATE TABLE checks (
        run    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        idx    INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        passed INTEGER NOT NULL,
        hint   TEXT,
        detail TEXT,
        PRIMARY KEY (run, idx)
    );
    """,
    # head_seq: the last chunk of the run's head; the chunks after it are its
    # tail, deleted oldest first. limited_by: which limit left output out.
    """
    ALTER TABLE runs ADD COLUMN head_seq INTEGER;
    ALTER TABLE runs ADD COLUMN limited_by TEXT CHECK (limited_by IN ('run', 'learner', 'store'));
    CREATE INDEX runs_by_end ON runs (coalesce(ended, started)) WHERE status != 'running'
    """,
    # kind was 'step' in every run: a run is a step's commands (checks are its parts)
    """
    ALTER TABLE runs DROP COLUMN kind
    """,
    # a workshop's room (webapp/workshop/room.py), by a key of its access code's and token's marks
    """
    CREATE TABLE rooms (
        mark  TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        saved REAL NOT NULL
    )
    """,
    # past one machine (docs/cluster.md): the nodes and their heartbeats (nodes.py), which node holds a
    # learner's lab host (placements.py), values every node must share (shared.py: the secret key...)
    """
    CREATE TABLE nodes (
        name      TEXT PRIMARY KEY,
        address   TEXT NOT NULL,
        agent     TEXT NOT NULL,
        state     TEXT NOT NULL CHECK (state IN ('up', 'draining', 'down')),
        image_id  TEXT NOT NULL,
        heartbeat REAL NOT NULL,
        facts     TEXT NOT NULL
    );
    CREATE TABLE placements (
        learner  TEXT PRIMARY KEY,
        node     TEXT NOT NULL,
        lab_host TEXT,
        state    TEXT NOT NULL CHECK (state IN ('starting', 'ready', 'failed', 'lost')),
        note     TEXT NOT NULL,
        since    REAL NOT NULL
    );
    CREATE INDEX placements_by_node ON placements (node);
    CREATE TABLE shared (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        made  REAL NOT NULL
    )
    """,
    # the usage counts where nodes share the store (quota.py, TableCounts): a learner's stored bytes on
    # their row, the store's in USAGE_SHARDS rows that appends of different learners update apart; SQLite
    # keeps them in the one server's memory
    {"postgres": f"""
    ALTER TABLE learners ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE learners SET stored_bytes = (SELECT coalesce(sum(stored_bytes), 0) FROM runs WHERE learner = learners.id);
    CREATE INDEX learners_by_usage ON learners (stored_bytes) WHERE stored_bytes > 0;
    CREATE TABLE usage (
        shard INTEGER PRIMARY KEY,
        bytes INTEGER NOT NULL
    );
    INSERT INTO usage SELECT shard, 0 FROM generate_series(0, {USAGE_SHARDS - 1}) AS shard;
    UPDATE usage SET bytes = (SELECT coalesce(sum(stored_bytes), 0) FROM runs) WHERE shard = 0
    """},
]


def statements(migration: str | dict[str, str], database: str) -> list[str]:
    """A migration's statements for ``database`` ("sqlite" or "postgres")."""
    text = migration if isinstance(migration, str) else migration.get(database, "")
    return [s for s in text.split(";") if s.strip()]


class Database(Protocol):
    """What the concerns use of sqlite.py's ``SQLite`` and postgres.py's ``Postgres``: transactions
    yielding a connection whose ``execute(sql, params)`` takes SQL with ``?`` parameters, and the few
    phrases the two databases say differently."""

    for_update: str        # after a SELECT in a write(): lock the rows read (PostgreSQL), or nothing (SQLite)
    json_texts: str        # a subquery of the texts in a JSON array given as one parameter
    no_limit: Any          # a LIMIT parameter that means none
    IntegrityError: type[Exception]   # what a duplicate key raises

    def write(self) -> AbstractContextManager[Any]: ...
    def read(self) -> AbstractContextManager[Any]: ...
    def locked(self) -> AbstractContextManager[Any]: ...
    def one_at_a_time(self, key: int) -> AbstractContextManager[bool]: ...
    def wrote(self, nbytes: int) -> None: ...
    def start(self, chore, interval: float) -> None: ...
    def close(self) -> None: ...
