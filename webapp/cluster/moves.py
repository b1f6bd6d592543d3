"""Learners that move between nodes: where each one's lab host is, kept in the store for the other nodes
(the instructor's commands go there, ``labnb cluster status`` counts them), and, for a learner first seen
on this node, whether the lab host they had on another node was lost.

HAProxy pins a learner to their node with a cookie; it sends them elsewhere only when that node is down
(or was stopped). The learner's identity, place and recorded runs are in the shared store, so the node
their request reaches makes them a new lab host and tells them what went with the old one.
"""
from __future__ import annotations

import time

from .node import BEAT, DOWN

LOST = "lost"
# Seconds without a heartbeat after which the node a learner comes from counts as gone: HAProxy sends a
# learner to another node only when theirs stopped answering, which may be before it is buried (DEAD_AFTER).
SILENT = 2 * BEAT


class Moves:
    """The placements of the learners whose lab hosts this node (``node``) holds, in ``store``."""

    def __init__(self, store, node: str):
        self.store, self.node = store, node

    def placed(self, learner_id: str, lab_host: str, state: str) -> None:
        """The learner's lab host here is ``state`` (starting, ready, failed)."""
        self.store.place_learner(learner_id, self.node, lab_host or None, state)

    def lost(self, learner_id: str) -> str:
        """What to tell a learner first seen on this node whose lab host was on a node that died or stopped
        (their placement lost, or that node down or silent for SILENT): "" for anyone else."""
        placement = self.store.placement(learner_id)
        if placement is None or placement["node"] == self.node:
            return ""
        node = next((n for n in self.store.nodes() if n["name"] == placement["node"]), None)
        if placement["state"] == LOST:
            why = placement.get("note") or f"node {placement['node']} stopped"
        elif node is None or node["state"] == DOWN or time.time() - node["heartbeat"] > SILENT:
            why = f"node {placement['node']} stopped answering"
        else:
            return ""   # still there: the learner came here another way (without HAProxy's cookie)
        return (f"Your lab host on node {placement['node']} was lost ({why}); a new one is being made for you "
                f"here. Your notebook is whole: every recorded run is kept. What that lab host held "
                f"(containers, namespaces, files) is gone: run this lab's steps again from the first.")
