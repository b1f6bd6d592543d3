"""Running the app in production: gunicorn, one worker process, many threads.

One process because lab hosts, terminals and runs live in its memory;
threads because Flask-SocketIO's author recommends ``async_mode='threading'``
(eventlet is unmaintained) and gunicorn's gthread worker serves WebSockets
through simple-websocket. Each open WebSocket holds a thread, so their number
is capped (limits.SocketLimits) below the threads, which keep
limits.HTTP_THREADS more for pages. No thread waits for a request to arrive:
the worker's loop reads them (webapp/commands/heads.py).

Before it forks the worker, the settings are resolved (app.resolve: the
tokens, a workshop's access code and sizing, the limits that fit the machine's
memory), the labs loaded and what lab hosts need made (provision.py: a fresh
state dir's image), so that a mistake is told here, to the operator; the
worker then builds the app and its services (create_app) from them. A node
of a cluster (``--node``, docs/cluster.md) settles the cluster's secrets as
the settings are resolved, and compares its busybox image with the other
nodes' once it is made.
"""
from __future__ import annotations

import logging
import os
import resource

from gunicorn.app.base import BaseApplication

from .. import create_app
from . import heads
from ..app import resolve, served_labs
from ..config import Settings
from ..labhost import backends, provision, reaper
from ..labhost.pool import Pool
from ..guard.limits import HTTP_THREADS, capacity

# Seconds a kept-alive HTTP connection may wait for its next request. gunicorn
# closes expired ones in its main loop between two waits, so a request that
# arrived meanwhile is dropped unanswered (the client's RemoteDisconnected),
# and the busier the server the wider that window: with gunicorn's 2 s, a room
# of 30 (bench/workshop.py) met it. Longer than the gaps between a tab's
# requests, the race is left to the rare connection idle this long. gunicorn
# stops accepting at worker_connections: an idle connection holds only a
# descriptor, so allow many, but at most half the limit of open files (which
# is raised), the rest being for runs, lab hosts and the store.
KEEPALIVE = 30
WORKER_CONNECTIONS = 8192


class _Gunicorn(BaseApplication):
    """``make`` builds the app in the worker (gunicorn calls ``load`` there, after the fork)."""

    def __init__(self, make, options: dict):
        self.make, self.options = make, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.make()


def serve(settings: Settings, host: str, port: int, given: frozenset[str] = frozenset()) -> None:
    """Serve until stopped; ``given``: the settings the operator chose on the command line."""
    open_files = _raise_open_files_limit()
    given = given | {f for f in ("pool_size", "max_lab_hosts", "new_learners_per_address", "capacity")
                     if f"LABNB_{f.upper()}" in os.environ}
    settings = resolve(settings, given)
    labs = served_labs(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("labnb")
    backend = backends.get(settings.backend)
    if settings.sizing:
        log.info("%s", settings.sizing)
    if backend.isolated:   # each with a memory limit of its own: as many as the machine's memory fits
        log.info("capacity: %s", capacity(settings))
    if backend.recorded:
        removed = reaper.gc(settings)
        if removed:
            log.info("removed %d lab host(s) left by an earlier server: %s", len(removed), ", ".join(removed))
        # a fresh state dir: its image is made now, before any learner's lab host needs it
        provision.provide(settings, lambda made: log.info("made what lab hosts need: %s", made))
    if settings.node:   # every node serves the same labs, or none
        from ..cluster import join

        join.check_image(settings)
        log.info("node %s joins the cluster: its busybox image is the up nodes'", settings.node)
    pool = Pool(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    root = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    elsewhere = (" (from other machines: this machine's address in place of 127.0.0.1)"
                 if host in ("0.0.0.0", "::", "") else "")

    def when_ready(_server):
        if settings.workshop:
            print(f"\n    labnb is running a workshop for up to {settings.capacity} learners at once "
                  f"({', '.join(labs) or 'no labs'}).\n    {settings.sizing}."
                  f"\n    The instructor's dashboard (keep this URL to yourself):"
                  f"\n\n        {root}/workshop?token={settings.operator_token}\n"
                  f"\n    Learners join here{elsewhere}, access code {settings.access_code}:"
                  f"\n\n        {root}/join?code={settings.access_code}\n", flush=True)
            return
        print(f"\n    labnb is running. Open this URL in a browser (it is the operator's: keep it to yourself):"
              f"\n\n        {root}/?token={settings.operator_token}\n"
              f"\n    Learners open this one{elsewhere} (each browser is a learner of its own):"
              f"\n\n        {root}/?token={settings.token}\n", flush=True)

    # The services (the store's connection) are made, and threads and the pool
    # start, in the worker: gunicorn forks it from this process, and threads do not survive a fork.
    # Each open tab holds a thread for its WebSocket: 50 learners with a few
    # tabs each fit in the default 192; so does each connection to a lab
    # host's web service (webapp/proxy/gateway.py), counted apart.
    _Gunicorn(lambda: create_app(settings, pool, bind_host=host, port=port, labs=labs), {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1, "worker_class": heads.worker_class(settings.proxy_domain),
        "threads": settings.max_sockets + HTTP_THREADS + settings.proxy_connections,
        "timeout": 0,
        "keepalive": KEEPALIVE, "worker_connections": min(WORKER_CONNECTIONS, open_files // 2),
        "graceful_timeout": 15,
        "when_ready": when_ready, "post_worker_init": lambda worker: worker.wsgi.extensions["labnb"].start(),
        "worker_exit": lambda _s, worker: _close(worker),
        "accesslog": None, "loglevel": "warning",
    }).run()


def _close(worker) -> None:
    """The worker's services, if it got as far as making them."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions["labnb"].close()


def _raise_open_files_limit() -> int:
    """Each command holds 5 descriptors (its PTY, relay pipes, a wake-up pipe)
    and each tab a socket: a workshop passes the usual soft limit of 1024, so
    take the hard limit, as far as the kernel allows one process. The limit
    it now has."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/proc/sys/fs/nr_open") as f:
        want = min(hard if hard != resource.RLIM_INFINITY else 1 << 20, int(f.read()))
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return max(soft, want)
