"""The operator's Prometheus metrics (``/metrics``, docs/metrics.md), with the ``prometheus_client`` library as
JupyterHub serves its own: on every node, and on the one-machine default.

What is a state (learners, lab hosts, the warm pool, the room, the nodes) is read when Prometheus scrapes, from
the services that hold it: no bookkeeping beside them, nothing to drift. What is an event (a run's start and its
first output, a lab host made ready, a refusal) is counted where it happens, by the service it happens in
(``RunManager.starts`` and ``first_output``, ``Learners.ready_time``, ``Refusals.counts``, ``Pool.exhausted``,
``Room.queued``). A scrape takes each service's lock for a copy, never waits on a lab host, and holds no lock of
its own.

Each app has its own ``CollectorRegistry`` (never the library's global one): a process may build many apps (the
tests do), and each reports its own.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..guard import auth
from ..guard.limits import Refusals
from ..learners.registry import FAILED, READY, RECLAIMED, STARTING, Learners

log = logging.getLogger(__name__)

LEARNER_STATES = (STARTING, READY, FAILED, RECLAIMED)
LAB_HOST_STATES = ("starting", "ready", "in_use", "failed", "pool")
NODE_STATES = ("up", "draining", "down")
ONE_MACHINE = "local"   # the node label of a server that is no cluster's node (LABNB_NODE unset)

Nodes = Callable[[], list[dict]]   # every node's "name", "state" (NODE_STATES) and "heartbeat" (epoch s)

bp = Blueprint("metrics", __name__)


def one_machine() -> list[dict]:
    """The node health of a server that is no cluster's node: it answers the scrape, so it is up."""
    return [{"name": ONE_MACHINE, "state": "up", "heartbeat": time.time()}]


class Metrics:
    """The registry one app's ``/metrics`` shows: the services' own instruments, and this collector, which
    reads their state at each scrape. ``room``: a workshop's (None on the open server); ``nodes``: every
    node's health, a cluster's from its shared store (``store.nodes``); None: the one machine's."""

    def __init__(self, settings, pool, learners: Learners, runs, refusals: Refusals, room=None,
                 nodes: Nodes | None = None):
        self.settings, self.pool, self.learners, self.refusals, self.room = settings, pool, learners, refusals, room
        self.nodes = nodes or one_machine
        self.registry = CollectorRegistry()
        for collector in (runs.starts, runs.first_output, learners.ready_time, self):
            self.registry.register(collector)

    def text(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)

    def collect(self):
        learners = self.learners.every()
        by_state = GaugeMetricFamily("labnb_learners", "Learners this node knows, by their lab host's state "
                                     "(reclaimed: given back for idleness; the next use makes a new one)",
                                     labels=["state"])
        for state in LEARNER_STATES:
            by_state.add_metric([state], sum(1 for lr in learners if lr.state == state))
        yield by_state
        yield self._lab_hosts(learners)
        yield GaugeMetricFamily("labnb_lab_hosts_max", "The most lab hosts this node holds at once "
                                "(LABNB_MAX_LAB_HOSTS)", value=self.settings.max_lab_hosts)
        yield GaugeMetricFamily("labnb_pool_target", "Ready lab hosts the warm pool keeps (LABNB_POOL_SIZE); "
                                "those it has now are labnb_lab_hosts{state=\"pool\"}", value=self.pool.size)
        if self.room is not None:
            counts = self.room.counts()
            yield GaugeMetricFamily("labnb_room_capacity", "Places in the workshop's room (LABNB_CAPACITY)",
                                    value=counts["capacity"])
            places = GaugeMetricFamily("labnb_room_places", "Learners in the workshop's room: seated, or "
                                       "waiting in its queue for a place", labels=["state"])
            places.add_metric(["seated"], counts["seated"])
            places.add_metric(["waiting"], counts["waiting"])
            yield places
        yield self._refusals()
        yield from self._nodes()

    def _lab_hosts(self, learners) -> GaugeMetricFamily:
        """Learners' lab hosts by state (in use: a step's command runs on it), and those in the warm pool."""
        counts = dict.fromkeys(LAB_HOST_STATES, 0)
        for lr in learners:
            state = lr.state
            if state == READY:
                running = any(bench.current is not None for bench in list(lr.benches.values()))
                counts["in_use" if running else "ready"] += 1
            elif state in (STARTING, FAILED):
                counts[state] += 1
        counts["pool"] = self.pool.waiting()
        family = GaugeMetricFamily("labnb_lab_hosts", "Lab hosts on this node by state: a learner's starting, "
                                   "ready, in use (a step's command runs) or failed (it died, or none could be "
                                   "had: see labnb_refusals), and ready in the warm pool", labels=["state"])
        for state, n in counts.items():
            family.add_metric([state], n)
        return family

    def _refusals(self) -> CounterMetricFamily:
        counts = self.refusals.counts()
        counts[("lab host", "pool_exhausted")] = self.pool.exhausted
        if self.room is not None:
            counts[("place", "room_full")] = self.room.queued
        family = CounterMetricFamily("labnb_refusals", "Refusals since the server started, by what was refused "
                                     "and why: the setting whose limit refused it, access (no valid token, or "
                                     "not admitted: no place), pool_exhausted (every lab host held), room_full "
                                     "(a join that had to wait in the queue)", labels=["what", "reason"])
        for (what, reason), n in sorted(counts.items()):
            family.add_metric([what, reason], n)
        return family

    def _nodes(self):
        try:
            nodes = self.nodes()
        except Exception as e:   # the cluster's store unreachable: the rest of the metrics still tell
            log.warning("metrics: reading the nodes' health failed: %s", e)
            return
        state = GaugeMetricFamily("labnb_node_state", "Each node's state (1 for the one it is in): up, draining "
                                  "(no new learners) or down (its heartbeat stopped)", labels=["node", "state"])
        age = GaugeMetricFamily("labnb_node_heartbeat_age_seconds", "Seconds since each node's last heartbeat",
                                labels=["node"])
        now = time.time()
        for node in nodes:
            for s in NODE_STATES:
                state.add_metric([node["name"], s], int(node["state"] == s))
            age.add_metric([node["name"]], max(0.0, now - node["heartbeat"]))
        yield state
        yield age


@bp.get("/metrics")
@auth.operator_token_only
def metrics():
    return Response(current_app.extensions["labnb"].metrics.text(), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
