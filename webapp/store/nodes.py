"""The cluster's nodes as the store knows them (docs/cluster.md): each node's
heartbeat, where it is reached, its state and what it reports of itself, so
that every node sees the others and a live one can tell a dead one."""

from __future__ import annotations

import json
import time

from . import fields
from .schema import Database

NODE_STATES = ("up", "draining", "down")


class Nodes:
    """Mixed into Store: the nodes' table."""

    _sql: Database

    def node_beat(self, name: str, address: str, agent: str, image_id: str, facts: dict) -> None:
        """A node's heartbeat (now): made if new (``up``), else its address, agent, image and facts
        replaced; its state stays what it was (a drained node stays drained)."""
        row = (fields.text("name", name), fields.text("address", address), fields.text("agent", agent, empty=True),
               fields.text("image_id", image_id, empty=True), time.time(),
               fields.text("facts", json.dumps(facts, sort_keys=True), fields.MAX_TEXT))
        with self._sql.write() as db:
            db.execute("INSERT INTO nodes (name, address, agent, image_id, heartbeat, facts, state)"
                       " VALUES (?, ?, ?, ?, ?, ?, 'up') ON CONFLICT (name) DO UPDATE SET address = excluded.address,"
                       " agent = excluded.agent, image_id = excluded.image_id, heartbeat = excluded.heartbeat,"
                       " facts = excluded.facts", row)

    def nodes(self) -> list[dict]:
        """Every node: name, address, agent, state, image_id, heartbeat (epoch seconds), facts (a dict)."""
        with self._sql.read() as db:
            rows = db.execute("SELECT name, address, agent, state, image_id, heartbeat, facts FROM nodes"
                              " ORDER BY name").fetchall()
        return [{"name": n, "address": a, "agent": g, "state": s, "image_id": i, "heartbeat": h,
                 "facts": json.loads(f)} for n, a, g, s, i, h, f in rows]

    def set_node_state(self, name: str, state: str) -> None:
        """Mark a node up, draining or down."""
        if state not in NODE_STATES:
            raise ValueError(f"state: expected one of {', '.join(NODE_STATES)}, got {str(state)[:40]!r}")
        with self._sql.write() as db:
            if db.execute("UPDATE nodes SET state = ? WHERE name = ?",
                          (state, fields.text("name", name))).rowcount == 0:
                raise LookupError(f"node {name}: no such node (it has never sent a heartbeat)")
