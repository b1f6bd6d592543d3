"""This node in the cluster: its heartbeat, and the burial of a node that died.

Every node beats once a second (``store.node_beat``): the address HAProxy reaches it at, its agent-check
port, its busybox image id, and facts (learners holding a lab host here, lab hosts free). The beat also
reads every node's, and a node whose heartbeat is older than DEAD_AFTER is dead: one live node buries it
(marks it down, loses its learners' placements so that the node their next request reaches makes them a
new lab host and says why, and records its running runs as cut off: their chunks stay in the store).

Burials, a node's join and its coming back up are one at a time: they run in the room transaction of a
row of their own (``store.room_tx(LOCK)``: on PostgreSQL a row lock, ``SELECT ... FOR UPDATE``, held on one
of the store's connections while the block's calls use others; a cluster's store is always PostgreSQL),
and a burial checks the heartbeat again under it. So two live nodes never bury one twice, and a node that
restarts either joins before the burial (its fresh heartbeat stops it) or after it (the burial's cut-off
cannot touch the runs it starts).
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

from ..config import Settings
from ..labhost import image
from ..labhost.statedir import image_archive

log = logging.getLogger(__name__)

UP, DRAINING, DOWN = "up", "draining", "down"
BEAT = 1.0   # seconds between two heartbeats
# Seconds without a heartbeat before a node is dead: five beats missed. A live node can miss one or two (a
# store write queued behind a checkpoint, two busy cores shared by everything): burying it would cut off
# its runs for nothing. Much longer and a learner whose node died waits on a page that cannot load;
# HAProxy's own health check sends their requests elsewhere within about as long.
DEAD_AFTER = 5.0
LOCK = "labnb-cluster-nodes"   # the room row whose transaction serialises burials and joins


def prefix(node: str) -> str:
    """How the ids of the lab hosts a node makes begin (``lh-<node>-``): a node's runs are found by it."""
    return f"lh-{node}-"


def stale(node: dict, now: float | None = None) -> bool:
    """Whether a node's heartbeat (a row of ``store.nodes()``) is older than DEAD_AFTER."""
    return (now or time.time()) - node["heartbeat"] > DEAD_AFTER


def dead(nodes: list[dict], me: str, now: float) -> list[str]:
    """The nodes (rows of ``store.nodes()``) that ``me`` finds dead at ``now`` and not yet buried."""
    return [n["name"] for n in nodes if n["name"] != me and n["state"] != DOWN and stale(n, now)]


def image_id(settings: Settings) -> str:
    """This node's busybox image id ("" if its backend has none): every node must serve the same labs."""
    return image.image_id(image_archive(settings)) or ""


def announced(bind_host: str, port: int) -> str:
    """The address other machines (HAProxy) reach this node at: the address it listens on, or, listening on
    every address, this machine's name (which must resolve there: docs/cluster.md)."""
    host = socket.getfqdn() if bind_host in ("0.0.0.0", "::", "") else bind_host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Node:
    """This node: ``start`` joins the cluster and beats in a thread, ``close`` leaves it. ``facts`` says
    what the other nodes and the operator see of it (``labnb cluster status``), read at every beat."""

    def __init__(self, store, name: str, address: str, agent_port: int, image_id: str,
                 facts: Callable[[], dict]):
        self.store, self.name, self.address, self.agent_port = store, name, address, agent_port
        self.image_id, self.facts = image_id, facts
        self._state = UP
        self._beaten = 0.0          # when the last beat reached the store
        self._failing = False       # the last beat failed (logged once per streak)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Join: lose this node's placements left from before (a restart: those lab hosts are gone), record
        its runs left running as cut off, beat, and come back up if it was buried. Then beat every second.
        Returns how many runs were cut off."""
        with self.store.room_tx(LOCK):
            self.store.lose_node(self.name, f"node {self.name} restarted")
            cut = self.store.mark_cut_off(prefix(self.name))
            self._beat()
            if self._state == DOWN:
                self.store.set_node_state(self.name, UP)
                self._state = UP
        self._thread = threading.Thread(target=self._run, name="node-beat", daemon=True)
        self._thread.start()
        return cut

    def state(self) -> str:
        """This node's state as the cluster has it (``up``, ``draining``, ``down``): down too while its
        beats do not reach the store (it could not record its learners' runs either)."""
        return DOWN if time.time() - self._beaten > DEAD_AFTER else self._state

    def draining(self) -> bool:
        """Whether this node takes no new learner (the operator's ``labnb cluster drain``): for the
        agent-check, which tells HAProxy."""
        return self.state() == DRAINING

    def trouble(self) -> str | None:
        """Why this node must take no new learner though it still serves its own, or None: its beats do
        not reach the store (the runs it would record would be lost). For the agent-check: HAProxy marks
        the node down, and the node's learners stay (docs/cluster.md)."""
        if time.time() - self._beaten > DEAD_AFTER:
            return f"node {self.name}'s heartbeat has not reached the cluster's store for over {DEAD_AFTER:.0f} s"
        return None

    def close(self) -> None:
        """Stop beating, and lose this node's placements (its lab hosts are destroyed by now): its learners'
        next requests reach another node, which says so. The others bury it when its heartbeat is stale."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(BEAT * 5)
        try:
            self.store.lose_node(self.name, f"node {self.name} was stopped")
        except Exception:   # the store is gone too: the others bury this node
            log.exception("telling the cluster that node %s stops", self.name)

    # -- internals ------------------------------------------------------------
    def _beat(self) -> list[dict]:
        self.store.node_beat(self.name, self.address, str(self.agent_port or ""), self.image_id, self.facts())
        nodes = self.store.nodes()
        mine = next((n for n in nodes if n["name"] == self.name), None)
        self._state = mine["state"] if mine else UP
        self._beaten = time.time()
        return nodes

    def _run(self) -> None:
        while not self._stop.wait(BEAT):
            try:
                nodes = self._beat()
                if self._state == DOWN:
                    self._revive()
                for name in dead(nodes, self.name, time.time()):
                    self._bury(name)
            except Exception:   # the store is out of reach: say so once, keep trying
                if not self._failing:
                    log.exception("node %s: the heartbeat did not reach the store; retrying every %.0f s",
                                  self.name, BEAT)
                self._failing = True
            else:
                if self._failing:
                    log.info("node %s: the heartbeat reaches the store again", self.name)
                self._failing = False

    def _bury(self, name: str) -> None:
        """Mark node ``name`` down, lose its placements and cut off its running runs, unless another node did
        first or it beat again (checked under the lock)."""
        with self.store.room_tx(LOCK):
            node = next((n for n in self.store.nodes() if n["name"] == name), None)
            if node is None or node["state"] == DOWN or not stale(node):
                return
            silent = time.time() - node["heartbeat"]
            self.store.set_node_state(name, DOWN)
            learners = self.store.lose_node(name, f"node {name} stopped answering (no heartbeat for "
                                                  f"{silent:.0f} s)")
            cut = self.store.mark_cut_off(prefix(name))
        log.warning("node %s is dead (no heartbeat for %.0f s): marked down; %d learner(s) get a new lab host "
                    "where their next request lands, %d run(s) of its lab hosts recorded as cut off",
                    name, silent, len(learners), cut)

    def _revive(self) -> None:
        """This node beats but was buried (it stalled longer than DEAD_AFTER): its learners' placements are
        lost and its runs recorded as cut off, which cannot be undone; it takes learners again."""
        log.error("node %s was found dead by another node (no heartbeat for over %.0f s) although it runs: its "
                  "learners' placements were lost and its running runs recorded as cut off. It is up again; if "
                  "this repeats, the machine or the store is overloaded (docs/cluster.md, sizing)",
                  self.name, DEAD_AFTER)
        with self.store.room_tx(LOCK):
            self.store.set_node_state(self.name, UP)
        self._state = UP


def pool_facts(pool) -> dict:
    """What a node tells of itself at each beat: learners holding a lab host here, and lab hosts free for new
    ones (of LABNB_MAX_LAB_HOSTS; HAProxy's agent-check weighs nodes by it)."""
    held = len(pool.claimed())
    return {"learners": held, "free": max(0, pool.settings.max_lab_hosts - held)}
