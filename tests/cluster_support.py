"""A labnb cluster on this machine, for tests: PostgreSQL and Redis of the test's own (a data dir under a
temporary dir, a free loopback port, gone after), N labnb nodes, each ``labnb serve --node NAME`` with a
state dir, port and agent port of its own (web_support.Server), sharing the store and the message queue,
and HAProxy in front when a test asks (``behind_haproxy``: tests/haproxy_support.py).

PostgreSQL is tests/pg_support.py's, Redis tests/redis_support.py's (each with a password, on loopback),
HAProxy tests/haproxy_support.py's (helpers pg's, room's and edge's).
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import tempfile

from haproxy_support import HAProxy
from pg_support import Postgres
from redis_support import start_redis
from web_support import LABNB, Server, free_port
from webapp.cluster.haproxy import Node
from webapp.config import Settings
from webapp.store import open_store


class Cluster:
    """PostgreSQL, Redis and the nodes named ``names``, started in order (the first makes the cluster's
    token, which the others are given too, as an operator would copy it: they must agree). Each node's
    uid ranges are found machine-wide from ``uid_slot`` up. ``env`` adds to every node's environment."""

    def __init__(self, name: str, names: tuple[str, ...] = ("a", "b"), uid_slot: int = 32, pool_size: int = 1,
                 env: dict | None = None):
        self.name, self.uid_slot, self.pool_size = name, uid_slot, pool_size
        self.postgres = Postgres()
        self.redis_dir, self.redis, self.redis_url = tempfile.mkdtemp(prefix="labnb-redis-"), None, ""
        self.database_url = ""   # the cluster's database in that server, once started
        self._database = contextlib.ExitStack()
        self.env = dict(env or {})
        self.nodes: dict[str, Server] = {}
        for n in names:
            self.nodes[n] = self.node(n)

    @property
    def shared(self) -> dict:
        return {"LABNB_DATABASE_URL": self.database_url, "LABNB_REDIS_URL": self.redis_url}

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
        self.redis, self.redis_url = start_redis(self.redis_dir)
        for server in self.nodes.values():
            server.env.update(self.shared)
            server.prepare().start()
        return self

    def labnb(self, *argv: str) -> subprocess.CompletedProcess:
        """``labnb ARGV`` as the operator runs it on a node: with the cluster's settings."""
        return subprocess.run([LABNB, *argv], env={**os.environ, **self.shared}, capture_output=True, text=True,
                              timeout=60)

    def store(self):
        """The cluster's store, as the nodes open it (close it after)."""
        return open_store(Settings(state_dir=tempfile.gettempdir(), database_url=self.database_url))

    def stop(self) -> None:
        for server in self.nodes.values():
            server.cleanup()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(30)
        shutil.rmtree(self.redis_dir, ignore_errors=True)
        self._database.close()
        self.postgres.stop()


def behind_haproxy(cluster: Cluster):
    """HAProxy (tests/haproxy_support.py) in front of the cluster's nodes, with their agent ports, for a fixture
    to yield; stopped after."""
    front = HAProxy([Node(name, "127.0.0.1", s.port, int(s.env["LABNB_AGENT_PORT"]))
                     for name, s in cluster.nodes.items()])
    with front:
        for name in cluster.nodes:
            front.wait_server(name, "up", lambda stats: stats.get("status", "").startswith("UP"))
        yield front


def through(front, node: Server) -> Server:
    """``node``'s test clients pointed at HAProxy: a learner's browser that opens HAProxy's URL."""
    via = copy.copy(node)
    via.url, via.port = front.url, front.port
    return via


def running_cluster(name: str, **kw):
    """A started cluster for a fixture to yield, all of it removed after whatever the tests did."""
    cluster = Cluster(name, **kw)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
