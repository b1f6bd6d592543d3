"""The node's answer to HAProxy's agent-check: how many new learners it can take, or that it takes none.

HAProxy connects to ``agent-port`` every ``agent-inter``, sends nothing, and
reads one line of words (HAProxy's configuration manual, "agent-check"):

- ``up ready <n>%``: the node works and takes new learners. The generated
  config gives every node ``weight 100``, so ``<n>%`` makes its weight ``n``:
  the lab hosts it can still give (at most 256, HAProxy's largest weight).
  A full node reports ``0%`` and gets no new learner while another has room;
  when every node is full, the nodes' ``backup`` entries take them, and the
  room's queue holds them.
- ``up drain <n>%``: the node is being drained: no new learner, but every
  learner pinned to it by HAProxy's cookie carries on.
- ``down ready <n>% #<why>``: the node cannot make lab hosts at all;
  HAProxy's stats show why. Its learners stay (``option persist``) while it
  answers.

Only the agent undoes what it said, so every reply says the whole state
(``up`` after ``down``, ``ready`` after ``drain``, and the weight).

The server is one thread that answers each connection in turn: one line out,
no waiting on the peer (whatever it sent is discarded unread), a short
timeout on the write, at most one answer per GAP (a flood of connections
would otherwise take the worker's interpreter lock from its pages), and the
kernel's backlog as the bound on connections waiting. Anyone who reaches the
port learns the node's free capacity and nothing else; the operator
firewalls it to HAProxy's address (docs/cluster.md).
"""
from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
from typing import Callable

log = logging.getLogger(__name__)

WEIGHT_MOST = 256     # HAProxy's largest server weight
BACKLOG = 16          # connections waiting to be answered; more are refused by the kernel
WRITE_TIMEOUT = 1.0   # seconds to hand one line to a peer that does not read
GAP = 0.01            # seconds between two answers: HAProxy asks once per check interval; a flood gets 100 a second
WHY_MOST = 120        # characters of a down reason: HAProxy shows it on one stats line


@dataclasses.dataclass(frozen=True)
class Report:
    """What the node says of itself: ``free``, the lab hosts it can still give new learners; ``draining``,
    whether the operator is draining it (the cluster's node state); ``broken``, why it cannot make lab hosts
    at all (empty: it can)."""
    free: int
    draining: bool = False
    broken: str = ""


def reply(report: Report) -> bytes:
    """The one line HAProxy reads, the node's whole state each time: up or down, ready or drain, the weight,
    and why it is down last (HAProxy reads what follows a ``#`` word as a description, to the line's end)."""
    words = ["down" if report.broken else "up", "drain" if report.draining else "ready",
             f"{min(max(report.free, 0), WEIGHT_MOST)}%"]
    if report.broken:
        words.append("#" + re.sub(r"[^\x20-\x7e]+", " ", report.broken).strip()[:WHY_MOST])   # one printable line
    return (" ".join(words) + "\n").encode()


def node_report(settings, pool, room=None, draining: Callable[[], bool] = lambda: False,
                broken: Callable[[], str | None] = lambda: None) -> Callable[[], Report]:
    """The report of a node serving ``pool``'s lab hosts: free, the lab hosts under LABNB_MAX_LAB_HOSTS not
    given to a learner (the warm pool's waiting ones are there to be given); in a workshop, at most the
    ``room``'s places left (capacity less those seated and waiting). ``draining`` and ``broken`` are the
    node's state (the cluster's node lifecycle: ``Node.draining``) and its pool's (``Pool.cannot_make``: why
    the machine lets it make no lab host, or None), cheap to ask: HAProxy asks every few seconds."""
    def report() -> Report:
        free = settings.max_lab_hosts - len(pool.claimed())
        if room is not None:
            counts = room.counts()
            free = min(free, counts["capacity"] - counts["seated"] - counts["waiting"])
        return Report(free, draining(), broken() or "")
    return report


class Agent:
    """The agent-check server on ``host``:``port`` (0: a free port, see ``port`` once started), answering
    with ``reply(report())``."""

    def __init__(self, report: Callable[[], Report], port: int, host: str = "0.0.0.0"):
        self.report, self.host, self.port = report, host, port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> "Agent":
        sock = socket.create_server((self.host, self.port), backlog=BACKLOG,
                                    family=socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.settimeout(0.5)   # to see ``close`` soon
        self._sock, self.port = sock, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="haproxy-agent", daemon=True)
        self._thread.start()
        log.info("HAProxy's agent-check answered on %s port %d", self.host, self.port)
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError as e:
                if self._stop.is_set():
                    return
                log.error("agent-check: accepting a connection: %s", e)
                self._stop.wait(0.1)   # out of descriptors: let some close
                continue
            with conn:
                self._answer(conn)
            self._stop.wait(GAP)   # this thread shares the worker's interpreter lock with every page

    def _answer(self, conn: socket.socket) -> None:
        try:
            line = reply(self.report())
        except Exception:   # HAProxy keeps what the agent said last: the node stays as it was
            log.exception("agent-check: the node's report failed")
            return
        try:
            conn.settimeout(WRITE_TIMEOUT)
            conn.sendall(line)
            conn.setblocking(False)
            conn.recv(4096)   # what the peer sent (agent-send), discarded: closing with it unread sends a reset
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
