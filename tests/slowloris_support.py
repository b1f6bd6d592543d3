"""A slowloris for the tests and bench/slowloris.py: many connections, each from a loopback address of its
group, that send their request slowly and open again when the server closes them, as the attack does."""
from __future__ import annotations

import collections
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass

SLOW_HEAD = b"X-Slow: " + b"a" * 8000   # a header that is never whole at a byte a tick


@dataclass
class Group:
    """``count`` connections from ``source`` that send ``first`` at once, then ``slow`` a byte a tick."""
    source: str
    count: int
    first: bytes = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    slow: bytes = SLOW_HEAD


# The kinds of slow request: a head; a kept-alive connection's next head, sent behind a whole request
# (read ahead by the server); a small body behind a whole head.
HEAD = {}
NEXT_HEAD = {"first": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"}
BODY = {"first": b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n", "slow": b"a" * 1000}


class Slowloris:
    """Keeps every group's connections open to 127.0.0.1:``port`` in a thread of its own: each tick
    (``every`` s) it sends each connection its next byte and opens again those the server closed."""

    def __init__(self, port: int, groups: list[Group], every: float):
        self.port, self.groups, self.every = port, groups, every
        self.statuses: collections.Counter = collections.Counter()   # what the server answered, by status
        self.opened = self.closed = self.failed = 0    # connections opened, closed by the server, not opened
        self.ticks = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Slowloris":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def open_now(self) -> int:
        """How many of the attack's connections are open now."""
        with self.lock:
            return self.opened - self.closed

    def _connect(self, group: Group) -> socket.socket | None:
        s = socket.socket()
        try:
            s.bind((group.source, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", self.port))
            s.sendall(group.first)
            s.setblocking(False)
            return s
        except OSError:
            s.close()
            with self.lock:
                self.failed += 1
            return None

    def _run(self) -> None:
        poller = selectors.DefaultSelector()
        sent: dict[socket.socket, int] = {}     # slow bytes sent on each connection
        missing = {i: g.count for i, g in enumerate(self.groups)}
        tick = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() >= tick:
                    for s, n in list(sent.items()):
                        group = self.groups[poller.get_key(s).data]
                        if n < len(group.slow):
                            try:
                                s.send(group.slow[n:n + 1])
                                sent[s] = n + 1
                            except OSError:
                                pass   # closed by the server: read below
                    for i, n in missing.items():
                        for _ in range(n):
                            s = self._connect(self.groups[i])
                            if s is not None:
                                poller.register(s, selectors.EVENT_READ, i)
                                sent[s] = 0
                                missing[i] -= 1
                                with self.lock:
                                    self.opened += 1
                    self.ticks += 1
                    tick += self.every
                for key, _ in poller.select(max(0.0, min(0.2, tick - time.monotonic()))):
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    with self.lock:
                        self.statuses.update(int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data))
                    if not data:
                        poller.unregister(key.fileobj)
                        key.fileobj.close()
                        del sent[key.fileobj]
                        missing[key.data] += 1
                        with self.lock:
                            self.closed += 1
        finally:
            for s in sent:
                s.close()
            poller.close()
