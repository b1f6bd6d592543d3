"""A real PostgreSQL 15 for the tests: Debian's server binaries, a data dir of
its own under a temporary dir, listening on 127.0.0.1 only at a free port,
torn down at the end of the session (no postgres process is left).

``postgres_url``, a session fixture, starts it and gives the address of its
``postgres`` database as the superuser; ``pg_database_url`` makes a fresh
database for one test (dropped after it), so tests never see each other's rows.

Authentication: a password (SCRAM) on TCP, a random one per session, and no
Unix socket at all. Trust on loopback would let any process of any user on
this machine in (the tests share it with lab hosts and other helpers' servers),
so the password is what keeps the database the tests' own. The server runs as
the ``postgres`` user (it refuses root), in a directory it owns; fsync is off,
as nothing of it outlives the session.

Plugin-free: a test module imports the fixtures it uses
(``from pg_support import postgres_url, pg_database_url``).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One PostgreSQL server of the test run's own; ``url(db)`` says how to reach a database of it."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable     # fsync and synchronous commits on, as in production (bench/store.py)
        self.password = secrets.token_hex(16)
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="labnb-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen | None = None

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 60) -> "Postgres":
        who = pwd.getpwnam(USER)
        os.chown(self.dir, who.pw_uid, who.pw_gid)
        os.chmod(self.dir, 0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, who.pw_uid, who.pw_gid)
        pwfile.chmod(0o600)
        subprocess.run([BIN / "initdb", "-D", self.data, "-U", USER, f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256", "--auth-local=reject", "-E", "UTF8", "--no-sync"],
                       user=USER, check=True, capture_output=True, cwd=self.dir)
        pwfile.unlink()
        self.log = open(self.dir / "log", "ab")
        fast = [] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                        "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(
            [BIN / "postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port), "-k", "", *fast,
             "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
            user=USER, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start; its log: {(self.dir / 'log').read_text()[-2000:]}")
                time.sleep(0.1)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for the block; dropped after it (its connections ended)."""
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.url(), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are cut off) and remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """The superuser's address of the session's PostgreSQL (its ``postgres`` database)."""
    return postgres_server.url()


@pytest.fixture
def pg_database_url(postgres_server) -> Iterator[str]:
    """A fresh database of the session's PostgreSQL for one test."""
    with postgres_server.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> str:
    """Where a test's store is, once on each database: a SQLite file of its own (in a directory not made
    yet), then a fresh PostgreSQL database. A module that uses it imports ``postgres_server`` and
    ``pg_database_url`` too."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "runs.db")
    return request.getfixturevalue("pg_database_url")
