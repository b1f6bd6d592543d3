"""A labnb cluster on this machine, for tests: PostgreSQL and Redis of the test's own (a data dir under a
temporary dir, a free loopback port, gone after), N labnb nodes, each ``labnb serve --node NAME`` with a
state dir, port and agent port of its own (web_support.Server), sharing the store and the message queue,
and HAProxy in front when a test asks (``behind_haproxy``: tests/haproxy_support.py).

PostgreSQL is tests/pg_support.py's (a password on loopback), HAProxy tests/haproxy_support.py's. Until
the room's helper lands tests/redis_support.py, the Redis here is this file's own: to be deduplicated then.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from pg_support import Postgres
from web_support import Server, free_port, wait_for

class Redis:
    """A redis-server on a loopback port that keeps nothing on disk."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="labnb-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Redis":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=open(self.dir / "log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: self._ping(), 30, 0.1, "Redis to answer")
        return self

    def _ping(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "log").read_text()
        try:
            return redis.Redis.from_url(self.url).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """PostgreSQL, Redis and the nodes named ``names``, started in order (the first makes the cluster's
    token, which the others are given too, as an operator would copy it: they must agree). Each node's
    uid ranges are found machine-wide from ``uid_slot`` up. ``env`` adds to every node's environment."""

    def __init__(self, name: str, names: tuple[str, ...] = ("a", "b"), uid_slot: int = 32, pool_size: int = 1,
                 env: dict | None = None):
        self.name, self.uid_slot, self.pool_size = name, uid_slot, pool_size
        self.postgres, self.redis = Postgres(), Redis()
        self.database_url = ""   # the cluster's database in that server, once started
        self._database = contextlib.ExitStack()
        self.env = dict(env or {})
        self.nodes: dict[str, Server] = {}
        for n in names:
            self.nodes[n] = self.node(n)

    @property
    def shared(self) -> dict:
        return {"LABNB_DATABASE_URL": self.database_url, "LABNB_REDIS_URL": self.redis.url}

    def node(self, name: str, env: dict | None = None) -> Server:
        """A node of this cluster, not started: ``Server.prepare`` and ``start`` it (the cluster starts its
        own)."""
        server = Server(f"/var/lib/labnb-test-{self.name}-{name}-{os.getpid()}", self.uid_slot, self.pool_size,
                        env={**self.shared, "LABNB_NODE": name, "LABNB_AGENT_PORT": str(free_port()),
                             "LABNB_TRUSTED_PROXIES": "127.0.0.1", **self.env, **(env or {})})
        first = next(iter(self.nodes.values()), None)
        if first is not None:   # one token and operator's token for the whole cluster
            server.token, server.operator_token = first.token, first.operator_token
            server.env.update(LABNB_TOKEN=first.token, LABNB_OPERATOR_TOKEN=first.operator_token)
        return server

    def start(self) -> "Cluster":
        self.postgres.start()
        self.database_url = self._database.enter_context(self.postgres.database())
        self.redis.start()
        for server in self.nodes.values():
            server.env.update(self.shared)
            server.prepare().start()
        return self

    def labnb(self, *argv: str) -> subprocess.CompletedProcess:
        """``labnb ARGV`` as the operator runs it on a node: with the cluster's settings."""
        from web_support import LABNB

        return subprocess.run([LABNB, *argv], env={**os.environ, **self.shared}, capture_output=True, text=True,
                              timeout=60)

    def store(self):
        """The cluster's store, as the nodes open it (close it after)."""
        from webapp.config import Settings
        from webapp.store import open_store

        return open_store(Settings(state_dir=tempfile.gettempdir(), database_url=self.database_url))

    def stop(self) -> None:
        for server in self.nodes.values():
            server.cleanup()
        self.redis.stop()
        self._database.close()
        self.postgres.stop()


def behind_haproxy(cluster: Cluster):
    """HAProxy (tests/haproxy_support.py) in front of the cluster's nodes, with their agent ports, for a fixture
    to yield; stopped after."""
    from haproxy_support import HAProxy
    from webapp.cluster.haproxy import Node

    front = HAProxy([Node(name, "127.0.0.1", s.port, int(s.env["LABNB_AGENT_PORT"]))
                     for name, s in cluster.nodes.items()])
    with front:
        for name in cluster.nodes:
            front.wait_server(name, "up", lambda stats: stats.get("status", "").startswith("UP"))
        yield front


def through(front, node: Server) -> Server:
    """``node``'s test clients pointed at HAProxy: a learner's browser that opens HAProxy's URL."""
    via = copy.copy(node)
    via.url = front.url
    return via


def running_cluster(name: str, **kw):
    """A started cluster for a fixture to yield, all of it removed after whatever the tests did."""
    cluster = Cluster(name, **kw)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
