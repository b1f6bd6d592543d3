"""The store's database when nodes share it: PostgreSQL through psycopg 3, in
the shape of sqlite.py (``write``, ``read``, ``locked``, ``start``, ``close``),
so that the concerns' SQL runs on either.

Why a small pool of connections, not one and a lock as on SQLite: PostgreSQL
lets writers of different rows go on at once, and a commit waits for the WAL
to reach the disk; one connection would make every run's append wait for every
other's commit. Threads take a connection for one transaction and give it back;
at most POOL_SIZE per node, so that N nodes stay well under the server's
``max_connections``.

Why translate ``?`` here: the concerns write SQLite's placeholders; each
statement is translated once (a cache by its text) to psycopg's ``%s`` (and
a literal ``%`` to ``%%``).

Where rows are locked (docs/run-store.md, "Locks"): a write transaction is READ
COMMITTED; what must be read and then changed by one node at a time is read
``FOR UPDATE`` (``for_update``, which is nothing on SQLite, where one writer
holds the whole file): a run's row in an append, a room's row in ``room_tx``,
a learner's usage row in the quota. The schema's migrations and the retention
pass run under advisory locks, so two nodes starting at once migrate once, and
one node at a time prunes.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator

import psycopg
from psycopg import pq

from ..errors import ConfigError
from .schema import MIGRATIONS, statements

log = logging.getLogger(__name__)

POOL_SIZE = 8                 # connections per node
CONNECT_TIMEOUT = 10          # seconds
MIGRATE_LOCK = 0x6C61626E62_01   # advisory lock keys (one namespace per database): "labnb", then which

_TYPES = [(re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),   # SQLite's REAL is 8 bytes; PostgreSQL's 4
          (re.compile(r"\bINTEGER\b"), "BIGINT"),           # output positions pass 2 GiB
          (re.compile(r"\bBLOB\b"), "BYTEA")]
_ROWID = "rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"   # what SQLite gives runs, and the concerns order by


def ddl(statement: str) -> str:
    """A migration's statement (SQLite's DDL) as PostgreSQL takes it."""
    for word, pg_type in _TYPES:
        statement = word.sub(pg_type, statement)
    return re.sub(r"(CREATE TABLE runs \()", rf"\1 {_ROWID}", statement)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The concerns' SQL with psycopg's placeholders: ``?`` outside quotes to ``%s``, ``%`` to ``%%``."""
    out, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        out.append("%s" if ch == "?" and not quoted else "%%" if ch == "%" else ch)
    return "".join(out)


class Connection:
    """A psycopg connection that takes the concerns' SQL, for one transaction: ``state`` is what the
    concerns keep for its length (quota.py: the locks it holds), ``before_commit`` what they write last."""

    __slots__ = ("pg", "state", "before_commit")

    def __init__(self, pg: psycopg.Connection):
        self.pg = pg
        self.state: dict = {}
        self.before_commit: list[Callable[[], object]] = []

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        return self.pg.execute(translate(sql), params, binary=True)


class Postgres:
    """One PostgreSQL database, migrated; safe to share between threads through ``write``, ``read`` and
    ``locked``, each on a connection of the pool for its time."""

    for_update = " FOR UPDATE"
    json_texts = "SELECT json_array_elements_text(?::json)"
    no_limit = None
    IntegrityError = psycopg.IntegrityError

    def __init__(self, url: str, size: int = POOL_SIZE):
        self.url = url
        self.where = _where(url)
        self._size = size
        self._idle: list[psycopg.Connection] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._migrate()
        with self._connection() as pg:
            self.max_connections = int(pg.execute("SHOW max_connections").fetchone()[0])

    # -- connections ---------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   application_name="labnb")
        except psycopg.OperationalError as e:
            raise ConfigError("LABNB_DATABASE_URL", f"cannot connect to PostgreSQL at {self.where}: "
                              f"{str(e).strip().splitlines()[-1]}",
                              "Check the address, the user and password in LABNB_DATABASE_URL, and that "
                              "PostgreSQL runs and accepts connections from this node") from None

    @contextmanager
    def _connection(self, begin: str | None = None) -> Iterator[psycopg.Connection]:
        """A connection of the pool for the block (a new one while fewer than the pool's size are open), with
        ``begin`` run on it first. A connection the server dropped (it restarted, say) is found so, at that
        first statement: the pool's idle ones, dropped with it, are closed, and ``begin`` is run once more on a
        new one (nothing was done yet), so a write after a restart does not fail for it."""
        pg = self._checkout()
        try:
            if begin is not None:
                try:
                    pg.execute(begin)
                except psycopg.OperationalError:
                    if not pg.broken:
                        raise
                    self._checkin(pg)
                    pg = self._checkout()
                    pg.execute(begin)
            yield pg
        finally:
            self._checkin(pg)

    def _checkout(self) -> psycopg.Connection:
        with self._cond:
            while not self._idle and self._open >= self._size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _checkin(self, pg: psycopg.Connection) -> None:
        """Back to the pool; closed if it is broken or left inside a transaction (and, broken, the idle ones too:
        the server they were on is likely gone)."""
        with self._cond:
            if pg.closed or pg.broken or pg.info.transaction_status != pq.TransactionStatus.IDLE:
                dropped = [pg] + (self._idle if pg.broken else [])
                if pg.broken:
                    self._idle = []
                self._open -= len(dropped)
                for gone in dropped:
                    gone.close()
            else:
                self._idle.append(pg)
            self._cond.notify_all()

    def _migrate(self) -> None:
        """Bring the schema to MIGRATIONS, one node at a time (an advisory lock): two starting at once
        migrate once."""
        with self._connection() as pg, pg.transaction():
            pg.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            pg.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = pg.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                pg.execute("INSERT INTO schema_version VALUES (0)")
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise RuntimeError(f"{self.where}: schema version {version} is newer than this labnb knows"
                                   f" ({len(MIGRATIONS)})")
            for v in range(version, len(MIGRATIONS)):
                for statement in statements(MIGRATIONS[v], "postgres"):
                    pg.execute(ddl(statement))
            pg.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))

    # -- transactions --------------------------------------------------------

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (READ COMMITTED: what must not change under it is read ``FOR UPDATE``)."""
        return self._tx("BEGIN")

    def read(self) -> AbstractContextManager[Connection]:
        """A consistent snapshot across several reads."""
        return self._tx("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """A connection for one statement (its own transaction)."""
        with self._connection() as pg:
            yield Connection(pg)

    @contextmanager
    def _tx(self, begin: str) -> Iterator[Connection]:
        with self._connection(begin) as pg:
            try:
                db = Connection(pg)
                yield db
                for last in db.before_commit:
                    last()
                pg.execute("COMMIT")
            except BaseException:
                if not pg.broken and pg.info.transaction_status != pq.TransactionStatus.IDLE:
                    pg.execute("ROLLBACK")
                raise

    @contextmanager
    def one_at_a_time(self, key: int) -> Iterator[bool]:
        """Whether this node holds the advisory lock ``key`` for the block (without waiting): a chore
        that one node at a time does (the retention pass); another node doing it now is False."""
        with self._connection() as pg:
            held = pg.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
            try:
                yield held
            finally:
                if held and not pg.broken:
                    pg.execute("SELECT pg_advisory_unlock(%s)", (key,))

    # -- the store's thread --------------------------------------------------

    def wrote(self, nbytes: int) -> None:
        """Nothing to checkpoint: PostgreSQL's own checkpointer does it."""

    def start(self, chore: Callable[[], object], interval: float) -> None:
        """Start the thread that calls ``chore`` (the store's retention) every ``interval`` seconds."""
        def loop() -> None:
            while not self._closing.wait(interval):
                try:
                    chore()
                except psycopg.Error:     # the database away for a while: next time
                    log.exception("the store's hourly chore on %s", self.where)
        self._thread = threading.Thread(target=loop, name="store-chore", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            for pg in self._idle:
                pg.close()
            self._open -= len(self._idle)
            self._idle.clear()


def _where(url: str) -> str:
    """The database's address without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError("LABNB_DATABASE_URL", "is not a PostgreSQL address this labnb can read",
                          "Write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
