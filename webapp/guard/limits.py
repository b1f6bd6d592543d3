"""How much of the server one client may take, and whether the configured
limits fit the machine.

Every WebSocket holds one of gunicorn's threads for as long as it is open
(webapp/commands/server.py), so WebSockets are counted at the HTTP upgrade, before
Engine.IO takes them: per learner, per client address and in all, and the
thread pool is larger than their total by HTTP_THREADS, kept for pages. New
learner identities are counted per client address over a time window and in
all, since each may claim a lab host; and the lab hosts that the learners of
one client address hold at once. Every refusal is logged, at most once a
minute per client and reason, with how many were refused meanwhile.

A client address is the TCP peer's (``client_address``): behind a reverse
proxy every learner shares the proxy's, so raise the per-address limits there.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import ipaddress
import logging
import re
import threading
import time

from flask import Flask, session

from ..config import Settings
from ..errors import ConfigError
from ..labhost.base import LabHostError
from ..labhost.subids import RANGES

log = logging.getLogger(__name__)

HTTP_THREADS = 64      # gunicorn threads beyond max_sockets: pages load even when every WebSocket is taken
LOG_EVERY = 60.0       # seconds between log lines of one kind of refusal of one client
SMALLEST_MB = 64       # MiB: the smallest lab host the uid ranges are reserved for (its dockerd alone takes about 40)
SOCKET_PATH = "/socket.io/"
SETTING = re.compile(r"LABNB_[A-Z_]+")


def client_address(peer: str | None) -> str:
    """Whose address every per-address limit counts: the peer's IPv4 address, or its IPv6 /64 (one machine
    may hold a whole /64, and would otherwise be a new address at each request)."""
    return _network(peer) if peer else "an unknown address"


@functools.lru_cache(maxsize=4096)
def _network(peer: str) -> str:
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer   # not an IP address (a unix socket's peer)
    if ip.version == 4:
        return str(ip)
    return str(ip.ipv4_mapped or ipaddress.ip_network((ip, 64), strict=False))


class Refusals:
    """Logs what is refused and why; a flood of the same refusal becomes one line a minute; counts them all
    (``counts``)."""

    def __init__(self):
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def log(self, kind: str, who: str, why: str) -> None:
        now = time.monotonic()
        setting = SETTING.search(why)
        with self._lock:
            self._counts[(kind.removeprefix("a "), setting[0] if setting else "access")] += 1
            if len(self._last) > 4096:   # forget clients that have gone quiet
                self._last = {k: v for k, v in self._last.items() if now - v[0] < LOG_EVERY}
            key = (kind, who, why)
            last, quiet = self._last.get(key, (-LOG_EVERY, 0))
            if now - last < LOG_EVERY:
                self._last[key] = (last, quiet + 1)
                return
            self._last[key] = (now, 0)
        more = f" ({quiet} more like it in the last minute)" if quiet else ""
        log.warning("refused %s from %s: %s%s", kind, who, why, more)

    def counts(self) -> dict[tuple[str, str], int]:
        """Refusals since the server started, by what was refused and the setting that refused it ("access"
        when none did: no valid token, no place), for the operator's metrics."""
        with self._lock:
            return dict(self._counts)


class Window:
    """Counts events per client address over the last ``window`` seconds."""

    def __init__(self, per_address: int, window: float):
        self.per_address, self.window = per_address, window
        self._seen: dict[str, collections.deque[float]] = {}

    def full(self, address: str) -> int | None:
        """How many came from ``address`` in the window if that is the most, else None (call under a lock)."""
        now = time.monotonic()
        seen = self._seen.setdefault(address, collections.deque())
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if len(self._seen) > 4096:   # forget addresses that have gone quiet
            self._seen = {a: d for a, d in self._seen.items() if d and now - d[-1] < self.window}
        return len(seen) if len(seen) >= self.per_address else None

    def add(self, address: str) -> None:
        self._seen.setdefault(address, collections.deque()).append(time.monotonic())


class NewLearners:
    """New learner identities: at most ``per_address`` per ``window`` seconds
    from one client address, and ``total`` in all while the server runs."""

    def __init__(self, per_address: int, window: float, total: int, refusals: Refusals):
        self.total, self.refusals = total, refusals
        self._made = Window(per_address, window)
        self._count = 0
        self._lock = threading.Lock()

    def take(self, address: str) -> str | None:
        """Count one new learner from ``address``; why not (None: counted)."""
        with self._lock:
            made = self._made.full(address)
            if self._count >= self.total:
                why = (f"this server has let in {self.total} new learners since it started, its most "
                       f"(LABNB_MAX_LEARNERS): ask the operator")
            elif made is not None:
                why = (f"{made} new learners joined from {address} in the last {self._made.window:.0f} s, the most "
                       f"(LABNB_NEW_LEARNERS_PER_ADDRESS): go on in the browser you joined with, "
                       f"or ask the operator to raise the limit")
            else:
                self._made.add(address)
                self._count += 1
                return None
        self.refusals.log("a new learner", address, why)
        return why


class WrongCodes:
    """Wrong access codes: at most ``per_address`` per ``window`` seconds from
    one client address, so that a code cannot be guessed."""

    def __init__(self, per_address: int, window: float, refusals: Refusals):
        self.refusals = refusals
        self._wrong = Window(per_address, window)
        self._lock = threading.Lock()

    def attempt(self, address: str, right: bool) -> tuple[int, str] | None:
        """Count one try of a code from ``address`` (``right`` or not), checked and counted at once (a burst
        of guesses in parallel cannot slip past the count): None if it may go in, else the status and why."""
        with self._lock:
            tried = self._wrong.full(address)
            if tried is None and not right:
                self._wrong.add(address)
        if tried is not None:
            why = (f"{tried} wrong access codes came from {address} in the last {self._wrong.window:.0f} s, the "
                   f"most (LABNB_JOIN_ATTEMPTS): ask the instructor for the join URL, and try again later")
            self.refusals.log("a join", address, why)
            return 429, why
        if not right:
            return 403, "that is not this workshop's access code: check it with the instructor"
        return None


class RunStarts:
    """Runs one learner starts: at most ``per_minute`` in any minute. One run
    at a time bounds their lab host already; this bounds what a script that
    starts and stops runs in a loop costs the server and the store (a row, a
    process, events to every tab) beside the other learners."""

    def __init__(self, per_minute: int, refusals: Refusals):
        self.refusals = refusals
        self._started = Window(per_minute, 60.0)
        self._lock = threading.Lock()

    def refusal(self, learner: str, address: str) -> str | None:
        """Why ``learner`` may not start a run now (None: they may; ``count`` it once started)."""
        with self._lock:
            started = self._started.full(learner)
        if started is None:
            return None
        why = (f"{started} runs were started in the last minute, the most (LABNB_RUNS_PER_MINUTE): "
               f"wait a moment, then run the step again")
        self.refusals.log("a run", f"{address} (learner {learner[:8]})", why)
        return why

    def count(self, learner: str) -> None:
        """A run of ``learner``'s started (one refused for another reason is not counted)."""
        with self._lock:
            self._started.add(learner)


class LabHostsPerAddress:
    """Lab hosts the learners of one client address hold at once: at most
    ``most``, so that one address (a script that makes learners, a browser
    with many profiles) cannot hold every lab host of the machine, and learners
    elsewhere get one. The open server's: a workshop's room gives its learners places in
    the order they came, and a classroom often shares one address."""

    def __init__(self, settings: Settings, refusals: Refusals):
        self.most = settings.lab_hosts_per_address or max(1, settings.max_lab_hosts // 4)
        self.idle_minutes, self.refusals = settings.idle_minutes, refusals

    def refusal(self, address: str, held: int) -> str | None:
        """Why a learner at ``address``, where learners hold ``held`` lab hosts, may not get one (None: they may)."""
        if held < self.most:
            return None
        wait = (f"wait until one of them is given back (after {self.idle_minutes:g} min with no activity), then "
                f"press Retry" if self.idle_minutes else "ask the operator")
        why = (f"the learners at {address} hold {held} lab host{'s' if held > 1 else ''}, the most one client "
               f"address may hold (LABNB_LAB_HOSTS_PER_ADDRESS={self.most}) so that learners elsewhere get one too: "
               f"go on in a browser that has one, or {wait}. Behind a NAT or a reverse proxy many learners share "
               f"one address: the operator can raise LABNB_LAB_HOSTS_PER_ADDRESS")
        self.refusals.log("a lab host", address, why)
        return why


class SocketLimits:
    """WSGI middleware in front of Engine.IO: a WebSocket upgrade is let
    through only with a valid session (``Guard.refusal``; a refused Socket.IO
    connect would leave its WebSocket and thread held) and within the counts."""

    def __init__(self, wsgi_app, app: Flask, settings: Settings, refusals: Refusals):
        self.wsgi_app, self.app, self.refusals = wsgi_app, app, refusals
        self.limits = ((settings.max_sockets, "in all", "LABNB_MAX_SOCKETS"),
                       (settings.max_sockets_per_address, "from this address", "LABNB_MAX_SOCKETS_PER_ADDRESS"),
                       (settings.max_sockets_per_learner, "of this learner", "LABNB_MAX_SOCKETS_PER_LEARNER"))
        self._open: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(SOCKET_PATH):
            return self.wsgi_app(environ, start_response)
        address = client_address(environ.get("REMOTE_ADDR"))
        with self.app.request_context(environ):
            guard = self.app.extensions["labnb.guard"]
            why = guard.refusal() or guard.admission.refusal(active=False)
            learner = session.get("learner")
        if why:
            self.refusals.log("a WebSocket", address, why)
            return plain_response(start_response, "403 Forbidden", why)
        keys = ("*", "address:" + address, "learner:" + learner)
        with self._lock:
            for key, (most, where, setting) in zip(keys, self.limits):
                if self._open[key] >= most:
                    why = (f"{most} WebSockets are open {where}, the most ({setting}): "
                           f"close other labnb tabs, or ask the operator to raise {setting}")
                    break
            else:
                self._open.update(keys)
        if why:
            self.refusals.log("a WebSocket", f"{address} (learner {learner[:8]})", why)
            return plain_response(start_response, "429 Too Many Requests", why)
        try:
            # In threading mode the WebSocket lives and ends within this call.
            return self.wsgi_app(environ, start_response)
        finally:
            with self._lock:
                self._open.subtract(keys)
                for key in keys:
                    if self._open[key] <= 0:
                        del self._open[key]


def plain_response(start_response, status: str, text: str) -> list[bytes]:
    """A refusal as plain text, from WSGI middleware (Flask's own headers are not added there)."""
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")])
    return [body]


def mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise LabHostError("/proc/meminfo has no MemTotal", "Run labnb on Linux")


def lab_hosts_that_fit(settings: Settings, total_mb: int) -> int:
    """How many lab hosts at their memory limit fit ``total_mb`` of memory beside the server's own."""
    return max(total_mb - settings.server_memory_mb, 0) // max(settings.memory_mb, 1)


def uid_ranges_wanted(settings: Settings, total_mb: int) -> int:
    """How many lab hosts' uid ranges this machine should reserve (root's entry in /etc/subuid and
    /etc/subgid, ``labnb lab-hosts ranges --write``): by the memory rule, as many lab hosts as fit
    ``total_mb`` beside the server's LABNB_SERVER_MEMORY_MB at SMALLEST_MB each (or at LABNB_MEMORY_MB if
    smaller), so that no LABNB_MAX_LAB_HOSTS ``fit_memory`` lets a server start with needs more; at least
    RANGES, what setup reserved before."""
    smallest = dataclasses.replace(settings, memory_mb=min(settings.memory_mb, SMALLEST_MB))
    return max(RANGES, lab_hosts_that_fit(smallest, total_mb))


def fit_memory(settings: Settings, max_lab_hosts_given: bool, total_mb: int | None = None) -> Settings:
    """The settings with every lab host at its memory limit, and the server,
    fitting the machine's memory (``total_mb``, MemTotal if None): a
    ``max_lab_hosts`` not given is lowered to what fits. Raises ConfigError
    saying which setting to change."""
    total = mem_total_mb() if total_mb is None else total_mb
    room = total - settings.server_memory_mb
    fits = lab_hosts_that_fit(settings, total)
    if not max_lab_hosts_given and fits < settings.max_lab_hosts:
        settings = dataclasses.replace(settings, max_lab_hosts=fits)
    need = settings.max_lab_hosts * settings.memory_mb
    if need > room or settings.max_lab_hosts < 1:
        todo = (f"Set LABNB_MAX_LAB_HOSTS to at most {fits}, or LABNB_MEMORY_MB to at most "
                f"{max(room, 0) // max(settings.max_lab_hosts, 1)}") if fits else (
                f"Lower LABNB_MEMORY_MB to at most {max(room, 0)}, or LABNB_SERVER_MEMORY_MB")
        raise ConfigError(
            "LABNB_MAX_LAB_HOSTS" if fits else "LABNB_MEMORY_MB",
            f"{settings.max_lab_hosts} lab hosts (LABNB_MAX_LAB_HOSTS) of {settings.memory_mb} MiB "
            f"(LABNB_MEMORY_MB) need {need} MiB, and the server {settings.server_memory_mb} MiB more "
            f"(LABNB_SERVER_MEMORY_MB), but this machine has {total} MiB", todo)
    if settings.pool_size > settings.max_lab_hosts:
        raise ConfigError("LABNB_POOL_SIZE", f"the warm pool (LABNB_POOL_SIZE={settings.pool_size}) is larger than "
                          f"the lab hosts there may be (LABNB_MAX_LAB_HOSTS={settings.max_lab_hosts})",
                          f"Set LABNB_POOL_SIZE to at most {settings.max_lab_hosts}")
    return settings


def capacity(settings: Settings) -> str:
    """What ``fit_memory`` decided, for the log."""
    return (f"up to {settings.max_lab_hosts} lab hosts of {settings.memory_mb} MiB "
            f"({settings.pool_size} kept ready), {mem_total_mb()} MiB of memory")
