"""The store's database: one SQLite file, its schema and migrations, its
transactions and its checkpoints. Everything that is SQLite's and not the
store's own lives here, so that a second database is a second module of this
shape (postgres.py). The schema is schema.py's; the concerns' SQL is
SQLite's with ``?`` parameters, as PostgreSQL takes it too (postgres.py
translates), and the phrases the two say differently are attributes here.

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
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .schema import MIGRATIONS, statements

log = logging.getLogger(__name__)

PAGE_SIZE = 65536
CHECKPOINT_BYTES = 16 << 20
CHECKPOINT_INTERVAL = 2.0
CHECKPOINT_PASSES = 20

class SQLite:
    """One SQLite file, opened and migrated; its connection is safe to share
    between threads through ``write``, ``read`` and ``locked``.

    ``recount`` reads again what the store keeps in memory (the usage counts):
    it is called with the connection, the lock held, once the file is open
    and after every write that was rolled back."""

    for_update = ""                     # one writer at a time anyway
    json_texts = "SELECT value FROM json_each(?)"
    no_limit = -1
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path: Path, recount: Callable[[sqlite3.Connection], None]):
        self.path = path
        self._recount = recount
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        # Create the file 0600 ourselves: learners' output is private, and
        # SQLite gives its -wal and -shm files the database file's mode. An
        # existing file keeps the mode its owner gave it.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self.db = _connect(path)
        try:
            # Output is stored as large blobs: 64 KiB pages write them at about
            # twice the rate of the default 4 KiB (only a new, empty file takes it).
            self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise RuntimeError(f"{path}: cannot use WAL mode (got {mode!r})")
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            recount(self.db)
        except BaseException:
            self.db.close()
            raise
        self._unchecked = 0                  # output bytes written since the last checkpoint
        self._dirty = False                  # anything written since the last checkpoint
        self._closing = False
        self._checkpoint_now = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _migrate(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")  # two servers starting at once take turns
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this labnb knows"
                    f" ({len(MIGRATIONS)})"
                )
            for v in range(version, len(MIGRATIONS)):
                for statement in statements(MIGRATIONS[v], "sqlite"):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {v + 1}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- transactions --------------------------------------------------------

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction under the lock (IMMEDIATE: read-modify-write)."""
        return self._tx("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A consistent snapshot across several reads, under the lock."""
        return self._tx("BEGIN")

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, for one statement: no transaction to begin."""
        with self._lock:
            yield self.db

    @contextmanager
    def one_at_a_time(self, key: int) -> Iterator[bool]:
        """Always this process's turn: one server writes the file."""
        yield True

    @contextmanager
    def _tx(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute(begin)
            try:
                yield self.db
                self.db.execute("COMMIT")
                self._dirty = self._dirty or begin == "BEGIN IMMEDIATE"
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if begin == "BEGIN IMMEDIATE":
                    self._recount(self.db)   # the usage counts may have moved with what was rolled back
                raise

    # -- checkpoints ---------------------------------------------------------

    def wrote(self, nbytes: int) -> None:
        """Count output written, so that a checkpoint follows every CHECKPOINT_BYTES."""
        self._unchecked += nbytes
        if self._unchecked >= CHECKPOINT_BYTES:
            self._checkpoint_now.set()

    def start(self, chore: Callable[[], object], interval: float) -> None:
        """Start the checkpoint thread; it also calls ``chore`` (the store's
        retention) every ``interval`` seconds, so that the store has one thread."""
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(chore, interval),
                                              name="store-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self, chore: Callable[[], object], interval: float) -> None:
        db = _connect(self.path)
        truncated = True
        next_chore = time.monotonic() + interval
        try:
            while not self._closing:
                self._checkpoint_now.wait(CHECKPOINT_INTERVAL)
                self._checkpoint_now.clear()
                if self._closing:
                    break
                try:
                    if time.monotonic() >= next_chore:
                        next_chore = time.monotonic() + interval
                        chore()
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
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            self.db.close()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection for any thread; isolation_level=None: we write BEGIN/COMMIT ourselves."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA synchronous = NORMAL")
    return db
