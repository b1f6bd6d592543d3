"""The run store: every run, its output and its checks, kept in SQLite.

Why it exists: nothing a learner ran may be lost, not even when the server is
killed mid-run. Each output chunk is committed before it is sent to a browser,
so a browser that comes back (or a restarted server) finds every chunk it was
shown, by sequence number.

Why these SQLite settings: WAL lets readers go on while a run writes, and
with ``synchronous=NORMAL`` a commit is in the WAL (in the kernel's page
cache) when ``commit`` returns: that survives a crash of the process
(SIGKILL, OOM kill), which is what we guard against; only a power cut or a
kernel crash can lose the last commits, and fsync on every chunk would cost
far more than it buys.

Why one connection and a lock: SQLite lets one writer in at a time anyway,
an append (one commit) takes 0.1 to 0.2 ms, and one connection can be closed
for sure (per-thread connections leak with the server's short-lived threads).
Long reads go in batches or stop early, so they never hold the lock for long.

Why a checkpoint thread: SQLite's automatic checkpoint runs inside the commit
that fills the WAL, copying it into the database and syncing the file; in a
flood of output that commit took up to 0.3 s, stalling the run's stream. The
writing connection has automatic checkpoints off; a thread of the store's own,
on a connection of its own, checkpoints after every CHECKPOINT_BYTES of
output and at most every CHECKPOINT_INTERVAL seconds after any write, while
writers go on appending to the WAL, and truncates the WAL when writes pause.

Speed, measured on the 2-core dev VM: about 7,500 appends/s of 100-byte
chunks, 5,000/s of 4 KiB (20 MB/s), 1,000/s of 64 KiB (70 MB/s); 8 threads
share about 4,000/s of 4 KiB. The cost is per commit, not per byte, so a
run's flusher stores what came during the previous commit (up to 256 KiB,
runs/manager.MAX_CHUNK) as one chunk.

Limits (``Limits``, from Settings; docs/run-store.md), so that no learner
and no flood can fill the disk:

- A run stores at most ``Limits.run`` bytes: its first half as it comes (the
  head), then the latest output (the tail), whose oldest chunks are deleted
  as new ones come. Chunks keep their position in the whole output, so what
  was left out is a gap that ``truncated`` counts, and a finished run that
  lost bytes gets a last chunk saying so (a note; 1 KiB is kept for it).
- A learner's runs store at most ``Limits.learner`` bytes, all learners
  ``Limits.total``. Past either, finished runs make room, oldest first:
  runs that a later run of the same step replaced are deleted, then the
  latest runs' output is replaced by a note (the run, its status and checks
  stay, so progress is kept). The total takes from the learner who stores
  the most. Running runs are never touched: if nothing else is left, new
  output is counted, not stored.
- Runs that ended more than ``Limits.retention_days`` ago are deleted, at
  start and hourly.

The usage counts are kept in memory (read at start, recounted after a failed
transaction): one server process writes a store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .status import DONE, FAILED, FINISHED, RUNNING, STORED

log = logging.getLogger(__name__)

__all__ = ["Store", "Limits", "is_run_id", "step_state"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MAX_ID = 200  # learner, lab, step, check kind, lab host ids
_MAX_TEXT = 1024 * 1024  # a command, a check's hint or detail
PAGE_SIZE = 65536
CHECKPOINT_BYTES = 16 << 20
CHECKPOINT_INTERVAL = 2.0
CHECKPOINT_PASSES = 20
PRUNE_INTERVAL = 3600.0   # seconds between two retention passes
PRUNE_BATCH = 64          # runs deleted per transaction, so readers are not held up
ROLL_PARTS = 16           # a run's tail is rolled in steps of its cap / ROLL_PARTS
NOTE_ROOM = 1024          # bytes of a run's cap kept for its note; a run's output is replaced only if larger

# One entry per schema version; user_version says how many have been applied.
# Statements are split on ';' (executescript would commit our transaction).
_MIGRATIONS = [
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
]

_RUN_COLUMNS = (
    "id, learner, lab, step, command, lab_host, started, ended, exit_code,"
    " signal, status, duration, stored_bytes, truncated, last_seq, limited_by"
)
_RANK = {None: 0, "run": 1, "learner": 2, "store": 3}   # a run keeps the strongest limit that cut it


def is_run_id(s: object) -> bool:
    """True if *s* looks like a run id (uuid4 hex: 32 lowercase hex digits)."""
    return isinstance(s, str) and _RUN_ID.fullmatch(s) is not None


def _run_id(s: object) -> str:
    if not is_run_id(s):
        raise ValueError(f"run id: expected 32 hex digits, got {str(s)[:40]!r}")
    return s  # type: ignore[return-value]


def _text(field: str, value: object, max_len: int = _MAX_ID, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected text, got {type(value).__name__}")
    if not value and not empty:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > max_len:
        raise ValueError(f"{field}: longer than {max_len} characters")
    if "\0" in value:
        raise ValueError(f"{field}: contains a NUL character")
    return value


def _int(field: str, value: object, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field}: must be >= {minimum}, got {value}")
    return value


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n and n % (1 << 20) == 0 else f"{n:,} bytes"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the store keeps, in bytes and days (Settings gives MiB)."""

    run: int = 16 << 20
    learner: int = 256 << 20
    total: int = 4096 << 20
    retention_days: float = 30.0

    def __post_init__(self):
        if self.run < 2 * NOTE_ROOM:
            raise ValueError(f"LABNB_RUN_OUTPUT_MB: {self.run} bytes is too small a cap for a run; give at least 1 (MiB)")
        for name, small, big in (("LABNB_LEARNER_OUTPUT_MB", self.run, self.learner),
                                 ("LABNB_STORE_OUTPUT_MB", self.learner, self.total)):
            if big < small:
                raise ValueError(f"{name}: {_mib(big)} is less than {_mib(small)}, the limit it must hold"
                                 f" (a run's cap for a learner, a learner's for the store); raise it")
        if not self.retention_days >= 0:
            raise ValueError(f"LABNB_RETENTION_DAYS: expected a number of days >= 0 (0: keep runs for ever),"
                             f" got {self.retention_days}")

    @classmethod
    def from_settings(cls, s) -> Limits:
        """From a config.Settings (MiB)."""
        return cls(s.run_output_mb << 20, s.learner_output_mb << 20, s.store_output_mb << 20, s.retention_days)


class Store:
    """The run store of one SQLite file; safe to share between threads.

    ``limits`` defaults to those of the default settings."""

    def __init__(self, path: str | os.PathLike, limits: Limits | None = None):
        from .config import Settings

        self.path = Path(path)
        self.limits = limits or Limits.from_settings(Settings())
        if not self.path.parent.exists():
            self.path.parent.mkdir(mode=0o700, parents=True)
        # Create the file 0600 ourselves: learners' output is private, and
        # SQLite gives its -wal and -shm files the database file's mode. An
        # existing file keeps the mode its owner gave it.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        try:
            # Output is stored as large blobs: 64 KiB pages write them at about
            # twice the rate of the default 4 KiB (only a new, empty file takes it).
            self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise RuntimeError(f"{self.path}: cannot use WAL mode (got {mode!r})")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self._recount()
        except BaseException:
            self._db.close()
            raise
        self._unchecked = 0                  # output bytes written since the last checkpoint
        self._dirty = False                  # anything written since the last checkpoint
        self._closing = False
        self._checkpoint_now = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpoint", daemon=True)
        self.prune_expired()
        self._checkpointer.start()

    def _recount(self) -> None:
        """Read every learner's stored bytes (the lock held, or before any thread)."""
        self._used: dict[str, int] = dict(
            self._db.execute("SELECT learner, sum(stored_bytes) FROM runs GROUP BY learner").fetchall())
        self._total = sum(self._used.values())

    def _checkpoint_loop(self) -> None:
        db = _connect(self.path)
        truncated = True
        next_prune = time.monotonic() + PRUNE_INTERVAL
        try:
            while not self._closing:
                self._checkpoint_now.wait(CHECKPOINT_INTERVAL)
                self._checkpoint_now.clear()
                if self._closing:
                    break
                try:
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_INTERVAL
                        self.prune_expired()
                    if self._dirty:
                        self._dirty, self._unchecked, truncated = False, 0, False
                        self._checkpoint(db)
                    elif not truncated:
                        # Quiet for a while: give the WAL's disk space back. (Truncating
                        # it in a busy moment stalled the next commit by 0.1 s or more.)
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        truncated = True
                except sqlite3.Error:   # busy, say (another process on the file): next time
                    log.exception("checkpointing %s", self.path)
        finally:
            db.close()

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # two servers starting at once take turns
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this labnb knows"
                    f" ({len(_MIGRATIONS)})"
                )
            for v in range(version, len(_MIGRATIONS)):
                for statement in _MIGRATIONS[v].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {v + 1}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        """Copy the WAL into the database until a writer can start the WAL over.

        A writer restarts the WAL only when a checkpoint has copied all of it, so
        under steady writes each pass copies what came during the previous
        one, until one finishes between two commits (the WAL shrinks)."""
        before = None
        for _ in range(CHECKPOINT_PASSES):
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if self._closing or (before is not None and frames <= before) or frames * PAGE_SIZE < CHECKPOINT_BYTES:
                return
            before = frames

    def close(self) -> None:
        self._closing = True
        self._checkpoint_now.set()
        self._checkpointer.join()
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; IMMEDIATE for writes (read-modify-write),
        plain BEGIN for a consistent snapshot across several reads."""
        with self._lock:
            self._db.execute(begin)
            try:
                yield self._db
                self._db.execute("COMMIT")
                self._dirty = self._dirty or begin == "BEGIN IMMEDIATE"
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if begin == "BEGIN IMMEDIATE":
                    self._recount()   # the usage counts may have moved with what was rolled back
                raise

    # -- writing -----------------------------------------------------------

    def start_run(self, learner: str, lab: str, step: str, command: str, lab_host: str | None) -> str:
        """Record a run as 'running' before its command starts; returns its id."""
        learner, lab, step = (_text(f, v) for f, v in (("learner", learner), ("lab", lab), ("step", step)))
        command = _text("command", command, _MAX_TEXT, empty=True)
        if lab_host is not None:
            lab_host = _text("lab_host", lab_host)
        run_id, now = uuid.uuid4().hex, time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO learners (id, created) VALUES (?, ?)", (learner, now))
            db.execute(
                "INSERT INTO runs (id, learner, lab, step, command, lab_host, started, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (run_id, learner, lab, step, command, lab_host, now),
            )
        return run_id

    def append_chunk(self, run_id: str, seq: int, data: bytes) -> None:
        """Store chunk *seq* of a running run, durably, before anyone is shown it.

        Within the limits (see the module's doc): a run's head is kept, its
        tail rolls; what is left out is counted in ``truncated``. A seq
        already stored raises sqlite3.IntegrityError.
        """
        run_id, seq = _run_id(run_id), _int("seq", seq, 0)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"data: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        with self._tx() as db:
            row = db.execute("SELECT status, learner, stored_bytes, truncated, head_seq, limited_by FROM runs"
                             " WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            status, learner, stored, truncated, head_seq, limited_by = row
            if status != "running":
                raise ValueError(f"run {run_id}: is {status}, cannot take more output")
            pos = stored + truncated            # where this chunk starts in the whole output
            cap = self.limits.run - NOTE_ROOM
            freed, last_freed = 0, None
            if head_seq is None:                # the head: kept as it comes, up to half the cap
                keep, at = data[: max(0, cap - stored)], pos
                if pos + len(data) >= cap // 2:
                    head_seq = seq
            else:                               # the tail: the oldest chunks after the head make room
                # Free a sixteenth of the cap more than needed: deleting a
                # few chunks at once costs about what deleting one does.
                excess = stored + len(data) - cap
                goal = excess + cap // ROLL_PARTS if excess > 0 else 0
                while freed < goal:
                    after = head_seq if last_freed is None else last_freed
                    rows = db.execute("SELECT seq, length(data) FROM chunks WHERE run = ? AND seq > ?"
                                      " ORDER BY seq LIMIT 16", (run_id, after)).fetchall()
                    if not rows:
                        break
                    for last_freed, n in rows:
                        freed += n
                        if freed >= goal:
                            break
                keep = data[max(0, excess - freed):]
                at = pos + len(data) - len(keep)
            if len(keep) < len(data) or freed:
                limited_by = _strongest(limited_by, "run")
            if len(keep) > freed:
                why = self._make_room(db, learner, len(keep) - freed)
                if why:                         # nothing left to take from: count it, store nothing
                    keep, freed, limited_by = b"", 0, _strongest(limited_by, why)
            if freed:
                db.execute("DELETE FROM chunks WHERE run = ? AND seq > ? AND seq <= ?",
                           (run_id, head_seq, last_freed))
            if keep:
                db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)", (run_id, seq, at, keep))
            db.execute(
                "UPDATE runs SET stored_bytes = ?, truncated = ?, last_seq = max(coalesce(last_seq, -1), ?),"
                " head_seq = ?, limited_by = ? WHERE id = ?",
                (stored + len(keep) - freed, truncated + len(data) - len(keep) + freed, seq, head_seq,
                 limited_by, run_id),
            )
            self._count(learner, len(keep) - freed)
        self._unchecked += len(keep)
        if self._unchecked >= CHECKPOINT_BYTES:
            self._checkpoint_now.set()

    def _count(self, learner: str, delta: int) -> None:
        self._used[learner] = self._used.get(learner, 0) + delta
        self._total += delta

    def _make_room(self, db: sqlite3.Connection, learner: str, need: int) -> str | None:
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
            self._count(learner, -row[1])
            return row[1]
        row = db.execute(f"SELECT id, stored_bytes, truncated, last_seq FROM runs AS r WHERE learner = ?"
                         f" AND status != 'running' AND stored_bytes > ? AND NOT {newer} ORDER BY rowid LIMIT 1",
                         (learner, NOTE_ROOM)).fetchone()
        if row is None:
            return 0
        run_id, stored, truncated, last_seq = row
        note = _note(f"labnb removed this run's output ({stored:,} bytes) on {time.strftime('%Y-%m-%d %H:%M')}"
                     f" to make room: {self._full(why)}. Run the step again to see it.")
        db.execute("DELETE FROM chunks WHERE run = ?", (run_id,))
        db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)",
                   (run_id, last_seq + 1, stored + truncated, note))
        db.execute("UPDATE runs SET stored_bytes = ?, truncated = ?, last_seq = ?, head_seq = NULL,"
                   " limited_by = ? WHERE id = ?", (len(note), stored + truncated, last_seq + 1, why, run_id))
        self._count(learner, len(note) - stored)
        return stored - len(note)

    def _full(self, why: str) -> str:
        """Which quota is full, for a note."""
        if why == "learner":
            return f"your runs' stored output is at its limit of {_mib(self.limits.learner)} (LABNB_LEARNER_OUTPUT_MB)"
        return f"the server's run store is at its limit of {_mib(self.limits.total)} (LABNB_STORE_OUTPUT_MB)"

    def _end_note(self, db: sqlite3.Connection, run_id: str) -> None:
        """At a run's end: if output was left out, a last chunk saying why."""
        learner, stored, truncated, last_seq, limited_by = db.execute(
            "SELECT learner, stored_bytes, truncated, last_seq, limited_by FROM runs WHERE id = ?",
            (run_id,)).fetchone()
        if not truncated:
            return
        total = stored + truncated
        if limited_by == "run":
            half = _mib(self.limits.run // 2)
            text = (f"labnb kept about the first and the last {half} of this run's {total:,} bytes of output;"
                    f" the {truncated:,} bytes between were not stored (LABNB_RUN_OUTPUT_MB)."
                    f" To keep all of it, send it to a file on the lab host.")
        else:
            text = (f"{truncated:,} bytes of this run's output were not stored: {self._full(limited_by)}, and only"
                    f" running runs were left to make room from."
                    + (" Tell the instructor." if limited_by == "store" else ""))
        last = db.execute("SELECT substr(data, -1) FROM chunks WHERE run = ? ORDER BY seq DESC LIMIT 1",
                          (run_id,)).fetchone()
        note = _note(text, at_line_start=last is None or last[0] == b"\n")
        self._make_room(db, learner, len(note))
        seq = (-1 if last_seq is None else last_seq) + 1
        db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)", (run_id, seq, total, note))
        db.execute("UPDATE runs SET stored_bytes = stored_bytes + ?, last_seq = ? WHERE id = ?",
                   (len(note), seq, run_id))
        self._count(learner, len(note))

    def finish_run(
        self, run_id: str, status: str, exit_code: int | None = None, signal: int | None = None
    ) -> bool:
        """End a running run. Returns False if it had already ended (a stop
        racing the command's own exit is not an error)."""
        run_id = _run_id(run_id)
        if status not in FINISHED:
            raise ValueError(f"status: expected one of {', '.join(FINISHED)}, got {str(status)[:40]!r}")
        if exit_code is not None:
            _int("exit_code", exit_code)
        if signal is not None:
            _int("signal", signal, 0)
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, exit_code = ?, signal = ?, ended = ?, duration = ? - started"
                " WHERE id = ? AND status = 'running'",
                (status, exit_code, signal, now, now, run_id),
            )
            if cur.rowcount == 0 and db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise LookupError(f"run {run_id}: no such run")
            if cur.rowcount == 1:
                self._end_note(db, run_id)
            return cur.rowcount == 1

    def record_check(
        self, run_id: str, idx: int, kind: str, passed: bool, hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record check *idx* of a run. Record checks before finish_run, so
        that progress never counts a run whose checks are still coming."""
        run_id, idx, kind = _run_id(run_id), _int("idx", idx, 0), _text("kind", kind)
        hint = None if hint is None else _text("hint", hint, _MAX_TEXT, empty=True)
        detail = None if detail is None else _text("detail", detail, _MAX_TEXT, empty=True)
        with self._tx() as db:
            db.execute(
                "INSERT INTO checks (run, idx, kind, passed, hint, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, idx, kind, 1 if passed else 0, hint, detail),
            )

    def mark_cut_off(self) -> int:
        """At startup: runs still 'running' lost their server; mark them
        'cut_off' (ended = now, duration unknown). Returns how many."""
        with self._tx() as db:
            runs = [r for (r,) in db.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()]
            db.execute("UPDATE runs SET status = 'cut_off', ended = ? WHERE status = 'running'", (time.time(),))
            for run_id in runs:
                self._end_note(db, run_id)
            return len(runs)

    def prune_expired(self, now: float | None = None) -> int:
        """Delete the runs that ended more than ``retention_days`` before ``now``
        (and learners left with none, and workshop rooms left as long), a batch
        per transaction. Returns how many runs."""
        if not self.limits.retention_days:
            return 0
        cutoff = (time.time() if now is None else now) - self.limits.retention_days * 86400
        deleted = 0
        while True:
            with self._tx() as db:
                old = db.execute("SELECT id, learner, stored_bytes FROM runs WHERE status != 'running'"
                                 " AND coalesce(ended, started) < ? LIMIT ?", (cutoff, PRUNE_BATCH)).fetchall()
                for run_id, learner, stored in old:
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    self._count(learner, -stored)
                if len(old) < PRUNE_BATCH:
                    gone = db.execute("DELETE FROM learners WHERE created < ? AND NOT EXISTS"
                                      " (SELECT 1 FROM runs WHERE learner = learners.id) RETURNING id",
                                      (cutoff,)).fetchall()
                    for (learner,) in gone:
                        self._total -= self._used.pop(learner, 0)
                    db.execute("DELETE FROM rooms WHERE saved < ?", (cutoff,))   # names, addresses, hands
            deleted += len(old)
            if len(old) < PRUNE_BATCH:
                if deleted:
                    log.info("deleted %d run(s) that ended more than %g days ago", deleted,
                             self.limits.retention_days)
                return deleted

    # -- reading -------------------------------------------------------------

    def chunks_since(self, run_id: str, after_seq: int = -1, limit: int | None = None
                     ) -> list[tuple[int, int, bytes]]:
        """Stored chunks (seq, pos, data) with seq > *after_seq*, in order: what
        a returning browser has not seen. pos is the chunk's place in the whole
        output: where chunks were left out (see Limits), seq and pos jump."""
        run_id, after_seq = _run_id(run_id), _int("after_seq", after_seq, -1)
        lim = -1 if limit is None else _int("limit", limit, 0)
        with self._lock:
            return self._db.execute(
                "SELECT seq, pos, data FROM chunks WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, lim),
            ).fetchall()

    def iter_output(self, run_id: str, batch: int = 256) -> Iterator[bytes]:
        """The stored output chunk by chunk, for a download that streams (the
        lock is held for one batch at a time, never the whole log), with a line
        saying how many bytes were left out wherever some were."""
        seq, end = -1, 0
        while rows := self.chunks_since(run_id, seq, batch):
            for seq, pos, data in rows:
                if pos > end:
                    yield _note(f"labnb: {pos - end:,} bytes left out here", at_line_start=False)
                yield data
                end = pos + len(data)

    def output(self, run_id: str) -> bytes:
        """The whole stored output, as iter_output gives it."""
        return b"".join(self.iter_output(run_id))

    def output_head_tail(self, run_id: str, head_bytes: int, tail_bytes: int) -> tuple[bytes, bytes, int, int]:
        """(head, tail, total_bytes, omitted_bytes) of the output, so a huge
        output shows its ends; head + omitted + tail == total_bytes, the whole
        output's length, what was not stored included. The head is at most
        *head_bytes* from the start, the tail at most *tail_bytes* up to the last
        chunk stored, each without a gap in it. Cuts are at byte offsets:
        decode with errors='replace'."""
        run_id = _run_id(run_id)
        head_bytes, tail_bytes = _int("head_bytes", head_bytes, 0), _int("tail_bytes", tail_bytes, 0)
        with self._tx("BEGIN") as db:
            row = db.execute("SELECT stored_bytes + truncated FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            total = row[0]
            # Walk in from each end and stop early, so the ends of a long
            # output cost a few chunks, not a scan.
            chunks = "SELECT pos, data FROM chunks WHERE run = ? ORDER BY seq"
            last = db.execute(chunks + " DESC LIMIT 1", (run_id,)).fetchone()
            stored_end = last[0] + len(last[1]) if last else 0
            if head_bytes + tail_bytes >= stored_end:
                head_bytes = tail_bytes = stored_end   # all of it: the head, and past a gap the tail
            parts, head_end = [], 0
            for pos, data in db.execute(chunks, (run_id,)) if head_bytes else ():
                if pos != head_end or pos >= head_bytes:
                    break
                parts.append(data)
                head_end += len(data)
            head = b"".join(parts)[:head_bytes]
            if len(head) == stored_end:
                tail_bytes = 0                 # no gap: the head is all of it
            tail_from = max(stored_end - tail_bytes, len(head))
            first, parts = stored_end, []
            for pos, data in db.execute(chunks + " DESC", (run_id,)) if tail_bytes else ():
                if pos + len(data) != first or first <= tail_from:
                    break
                parts.append(data)
                first = pos
            tail = b"".join(reversed(parts))[max(0, tail_from - first):]
        return head, tail, total, total - len(head) - len(tail)

    def _runs(self, db: sqlite3.Connection, where: str, args: tuple) -> list[dict]:
        """The runs that ``where`` selects, each with its checks (fetched in batches: a workshop's grid
        reads hundreds of runs at a time)."""
        cur = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        runs = [dict(zip(names, row)) for row in cur.fetchall()]
        by_id = {run["id"]: run for run in runs}
        for run in runs:
            run["checks"] = []
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for run_id, idx, kind, passed, hint, detail in db.execute(
                f"SELECT run, idx, kind, passed, hint, detail FROM checks WHERE run IN ({','.join('?' * len(part))})"
                " ORDER BY run, idx", part,
            ):
                by_id[run_id]["checks"].append(
                    {"idx": idx, "kind": kind, "passed": bool(passed), "hint": hint, "detail": detail})
        return runs

    def get_run(self, run_id: str) -> dict | None:
        """One run as a dict (its columns plus ``checks``), or None."""
        run_id = _run_id(run_id)
        with self._tx("BEGIN") as db:
            runs = self._runs(db, "id = ?", (run_id,))
        return runs[0] if runs else None

    def last_runs(self, learner: str, lab: str) -> dict[str, dict]:
        """{step: its latest run}: what the notebook view shows."""
        learner, lab = _text("learner", learner), _text("lab", lab)
        with self._tx("BEGIN") as db:
            runs = self._runs(
                db,
                "rowid IN (SELECT max(rowid) FROM runs WHERE learner = ? AND lab = ? GROUP BY step)",
                (learner, lab),
            )
        return {run["step"]: run for run in runs}

    def latest_runs(self, labs: list[str], learners: list[str]) -> list[dict]:
        """The latest run of each step of ``labs`` of each of ``learners`` (a workshop's members): its grid.
        The learners go as one JSON array, however many there are."""
        labs = [_text("lab", lab) for lab in labs]
        if not labs or not learners:
            return []
        with self._tx("BEGIN") as db:
            return self._runs(
                db,
                f"rowid IN (SELECT max(rowid) FROM runs WHERE lab IN ({','.join('?' * len(labs))})"
                " AND learner IN (SELECT value FROM json_each(?)) GROUP BY learner, lab, step)",
                (*labs, json.dumps([_text("learner", x) for x in learners])),
            )

    def save_room(self, mark: str, state: str) -> None:
        """Keep a workshop room's state (JSON), so that a restart continues the room."""
        with self._tx() as db:
            db.execute("INSERT INTO rooms (mark, state, saved) VALUES (?, ?, ?) ON CONFLICT (mark)"
                       " DO UPDATE SET state = excluded.state, saved = excluded.saved",
                       (_text("mark", mark), state, time.time()))

    def room(self, mark: str) -> str | None:
        """The state last saved of the room, or None."""
        with self._tx("BEGIN") as db:
            row = db.execute("SELECT state FROM rooms WHERE mark = ?", (_text("mark", mark),)).fetchone()
        return row[0] if row else None

    def progress(self, learner: str, lab: str, step_ids: list[str]) -> tuple[int, int]:
        """(passed steps, len(step_ids)), by ``step_state`` of each step's latest run."""
        last = self.last_runs(learner, lab)
        passed = sum(1 for step in step_ids if step_state(last.get(step)) == PASSED)
        return passed, len(step_ids)


NOT_STARTED, PASSED = "not_started", "passed"


def step_state(run: dict | None) -> str:
    """A step as a grid shows it, from its latest run: not_started, running,
    passed (ended 'done' and every check recorded on it passed) or failed."""
    if run is None:
        return NOT_STARTED
    if run["status"] == RUNNING:
        return RUNNING
    return PASSED if run["status"] == DONE and all(c["passed"] for c in run["checks"]) else FAILED


def _strongest(a: str | None, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _note(text: str, at_line_start: bool = True) -> bytes:
    """A line of labnb's own in a run's output, dim as the page shows its notes."""
    return ("" if at_line_start else "\r\n").encode() + f"\x1b[2m[{text}]\x1b[0m\r\n".encode()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection for any thread; isolation_level=None: we write BEGIN/COMMIT ourselves."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA synchronous = NORMAL")
    return db
