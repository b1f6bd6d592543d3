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
share about 4,000/s of 4 KiB. The cost is per commit, not per byte, so the
executor should send what one PTY read gives (up to 64 KiB) as one chunk.

Output cap: a run stores at most ``max_output`` bytes (256 MiB by default).
Past that, chunks are counted, not stored: the run's ``truncated`` says how
many bytes were dropped and ``last_seq`` the last chunk seen, so the stored
output is the run's first ``stored_bytes`` bytes and the UI can say so.
"""

from __future__ import annotations

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

log = logging.getLogger(__name__)

__all__ = ["Store", "is_run_id", "STATUSES", "FINISHED"]

#: Every status a run can have. 'cut_off' is only set by Store.mark_cut_off.
STATUSES = ("running", "done", "failed", "interrupted", "timed_out", "cut_off")
#: The statuses finish_run accepts.
FINISHED = ("done", "failed", "interrupted", "timed_out")

DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MAX_ID = 200  # learner, lab, step, kind, lab host ids
_MAX_TEXT = 1024 * 1024  # a command, a check's hint or detail
PAGE_SIZE = 65536
CHECKPOINT_BYTES = 16 << 20
CHECKPOINT_INTERVAL = 2.0
CHECKPOINT_PASSES = 20

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
        status       TEXT NOT NULL CHECK (status IN {STATUSES!r}),
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
]

_RUN_COLUMNS = (
    "id, learner, lab, step, kind, command, lab_host, started, ended, exit_code,"
    " signal, status, duration, stored_bytes, truncated, last_seq"
)


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


class Store:
    """The run store of one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike, max_output: int = DEFAULT_MAX_OUTPUT):
        self.path = Path(path)
        self.max_output = _int("max_output", max_output, 0)
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
        except BaseException:
            self._db.close()
            raise
        self._unchecked = 0                  # output bytes written since the last checkpoint
        self._dirty = False                  # anything written since the last checkpoint
        self._closing = False
        self._checkpoint_now = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        db = _connect(self.path)
        truncated = True
        try:
            while not self._closing:
                self._checkpoint_now.wait(CHECKPOINT_INTERVAL)
                self._checkpoint_now.clear()
                if self._closing:
                    break
                try:
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
                raise

    # -- writing -----------------------------------------------------------

    def start_run(
        self, learner: str, lab: str, step: str, command: str, lab_host: str | None,
        kind: str = "step",
    ) -> str:
        """Record a run as 'running' before its command starts; returns its id."""
        learner, lab, step, kind = (
            _text(f, v) for f, v in (("learner", learner), ("lab", lab), ("step", step), ("kind", kind))
        )
        command = _text("command", command, _MAX_TEXT, empty=True)
        if lab_host is not None:
            lab_host = _text("lab_host", lab_host)
        run_id, now = uuid.uuid4().hex, time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO learners (id, created) VALUES (?, ?)", (learner, now))
            db.execute(
                "INSERT INTO runs (id, learner, lab, step, kind, command, lab_host, started, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (run_id, learner, lab, step, kind, command, lab_host, now),
            )
        return run_id

    def append_chunk(self, run_id: str, seq: int, data: bytes) -> None:
        """Store chunk *seq* of a running run, durably, before anyone is shown it.

        Past the run's output cap the bytes are only counted (``truncated``).
        A seq already stored raises sqlite3.IntegrityError.
        """
        run_id, seq = _run_id(run_id), _int("seq", seq, 0)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"data: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        with self._tx() as db:
            row = db.execute("SELECT status, stored_bytes FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            if row[0] != "running":
                raise ValueError(f"run {run_id}: is {row[0]}, cannot take more output")
            stored = row[1]
            keep = data[: max(0, self.max_output - stored)]
            if keep:
                db.execute(
                    "INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)",
                    (run_id, seq, stored, keep),
                )
            db.execute(
                "UPDATE runs SET stored_bytes = stored_bytes + ?, truncated = truncated + ?,"
                " last_seq = max(coalesce(last_seq, -1), ?) WHERE id = ?",
                (len(keep), len(data) - len(keep), seq, run_id),
            )
        self._unchecked += len(keep)
        if self._unchecked >= CHECKPOINT_BYTES:
            self._checkpoint_now.set()

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
            return db.execute(
                "UPDATE runs SET status = 'cut_off', ended = ? WHERE status = 'running'", (time.time(),)
            ).rowcount

    # -- reading -------------------------------------------------------------

    def chunks_since(self, run_id: str, after_seq: int = -1, limit: int | None = None) -> list[tuple[int, bytes]]:
        """Stored chunks with seq > *after_seq*, in order: what a returning
        browser has not seen. Seqs past the output cap are absent."""
        run_id, after_seq = _run_id(run_id), _int("after_seq", after_seq, -1)
        lim = -1 if limit is None else _int("limit", limit, 0)
        with self._lock:
            return self._db.execute(
                "SELECT seq, data FROM chunks WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, lim),
            ).fetchall()

    def iter_output(self, run_id: str, batch: int = 256) -> Iterator[bytes]:
        """The stored output chunk by chunk, for a download that streams:
        the lock is held for one batch at a time, never the whole log."""
        seq = -1
        while rows := self.chunks_since(run_id, seq, batch):
            for seq, data in rows:
                yield data

    def output(self, run_id: str) -> bytes:
        """The whole stored output (at most max_output bytes)."""
        return b"".join(self.iter_output(run_id))

    def output_head_tail(self, run_id: str, head_bytes: int, tail_bytes: int) -> tuple[bytes, bytes, int, int]:
        """(head, tail, total_bytes, omitted_bytes) of the stored output, so a
        huge output shows its ends; head + omitted + tail == total_bytes. Cuts
        are at byte offsets: decode with errors='replace'. If the run was
        truncated, the tail is the end of what was stored (see run['truncated'])."""
        run_id = _run_id(run_id)
        head_bytes, tail_bytes = _int("head_bytes", head_bytes, 0), _int("tail_bytes", tail_bytes, 0)
        with self._tx("BEGIN") as db:
            row = db.execute("SELECT stored_bytes FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            total = row[0]
            if head_bytes + tail_bytes >= total:
                head_bytes, tail_bytes = total, 0
            # pos grows with seq: walk in from each end and stop early, so
            # the ends of a 256 MiB log cost a few chunks, not a scan.
            chunks = "SELECT pos, data FROM chunks WHERE run = ? ORDER BY seq"
            parts: list[bytes] = []
            for pos, data in db.execute(chunks, (run_id,)) if head_bytes else ():
                if pos >= head_bytes:
                    break
                parts.append(data)
            head = b"".join(parts)[:head_bytes]
            tail_from, first, parts = total - tail_bytes, total, []
            for pos, data in db.execute(chunks + " DESC", (run_id,)) if tail_bytes else ():
                if pos + len(data) <= tail_from:
                    break
                parts.append(data)
                first = pos
            tail = b"".join(reversed(parts))[tail_from - first :]
        return head, tail, total, total - len(head) - len(tail)

    def _runs(self, db: sqlite3.Connection, where: str, args: tuple) -> list[dict]:
        cur = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        runs = [dict(zip(names, row)) for row in cur.fetchall()]
        for run in runs:
            run["checks"] = [
                dict(zip(("idx", "kind", "passed", "hint", "detail"), c))
                for c in db.execute(
                    "SELECT idx, kind, passed, hint, detail FROM checks WHERE run = ? ORDER BY idx",
                    (run["id"],),
                )
            ]
            for c in run["checks"]:
                c["passed"] = bool(c["passed"])
        return runs

    def get_run(self, run_id: str) -> dict | None:
        """One run as a dict (its columns plus ``checks``), or None."""
        run_id = _run_id(run_id)
        with self._tx("BEGIN") as db:
            runs = self._runs(db, "id = ?", (run_id,))
        return runs[0] if runs else None

    def last_runs(self, learner: str, lab: str) -> dict[str, dict]:
        """{step: its latest run} (any kind): what the notebook view shows."""
        learner, lab = _text("learner", learner), _text("lab", lab)
        with self._tx("BEGIN") as db:
            runs = self._runs(
                db,
                "rowid IN (SELECT max(rowid) FROM runs WHERE learner = ? AND lab = ? GROUP BY step)",
                (learner, lab),
            )
        return {run["step"]: run for run in runs}

    def progress(self, learner: str, lab: str, step_ids: list[str]) -> tuple[int, int]:
        """(passed steps, len(step_ids)). A step has passed when its latest
        run ended 'done' and every check recorded on it passed."""
        last = self.last_runs(learner, lab)
        passed = sum(
            1
            for step in step_ids
            if (run := last.get(step)) is not None
            and run["status"] == "done"
            and all(c["passed"] for c in run["checks"])
        )
        return passed, len(step_ids)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection for any thread; isolation_level=None: we write BEGIN/COMMIT ourselves."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA synchronous = NORMAL")
    return db
