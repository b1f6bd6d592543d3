"""A terminal on another node: the terminal panel's events of a tab on this
node about a learner whose lab host another node holds (the instructor on
node A watching a learner of node B) go to that node over the bus, which
opens the terminal there for the tab's sid; what the terminal prints is then
emitted on B to that sid, and Socket.IO's message queue (LABNB_REDIS_URL)
brings it to the tab on A. The rules stay where the terminal is: B's
ShellManager refuses a watcher's keys and sizes as it does its own tabs'.

``NodeShells`` stands where the ShellManager stands for the Socket.IO
handlers (webapp/shells/handlers.py): the events of a learner of this node's
go to this node's ShellManager, as on one machine.
"""
from __future__ import annotations

import threading

from ..errors import LabnbError
from ..shells.manager import ShellError, ShellManager
from .bus import Bus


class NodeShells:
    def __init__(self, shells: ShellManager, bus: Bus, store, node: str, learners):
        self.shells, self.bus, self.store, self.node, self.learners = shells, bus, store, node, learners
        self._remote: dict[str, dict[str, str]] = {}   # a tab's sid: {learner: the node their terminals are on}
        self._lock = threading.Lock()
        bus.on("shell_open", self._open_here)
        bus.on("shell_input", lambda origin, sid, learner, term, data:
               shells.input(sid, learner, data.encode(), term or ""))
        bus.on("shell_resize", lambda origin, sid, learner, term, rows, cols:
               shells.resize(sid, learner, rows, cols, term or ""))
        bus.on("shell_ack", lambda origin, sid, learner, term, end: shells.ack(sid, learner, end, term or ""))
        bus.on("shell_detach", lambda origin, sid: shells.detach(sid))

    # -- a tab of this node's ----------------------------------------------------------
    def open(self, sid: str, learner_id: str, lab_id: str, rows: int = 24, cols: int = 80, term: str = "",
             watching: bool = False) -> None:
        node = self._node_of(learner_id, watching)
        if not node:
            return self.shells.open(sid, learner_id, lab_id, rows, cols, term, watching)
        self._ask(node, "shell_open", sid=sid, learner=learner_id, lab=lab_id, term=term or None, rows=rows,
                  cols=cols, watching=watching)
        with self._lock:
            self._remote.setdefault(sid, {})[learner_id] = node

    def input(self, sid: str, learner_id: str, data: bytes, term: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.input(sid, learner_id, data, term)
        self._ask(node, "shell_input", sid=sid, learner=learner_id, term=term or None, data=data.decode())

    def resize(self, sid: str, learner_id: str, rows: int, cols: int, term: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.resize(sid, learner_id, rows, cols, term)
        self._ask(node, "shell_resize", sid=sid, learner=learner_id, term=term or None, rows=rows, cols=cols)

    def ack(self, sid: str, learner_id: str, position: int, term: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.ack(sid, learner_id, position, term)
        self._send(node, "shell_ack", sid=sid, learner=learner_id, term=term or None, end=position)

    def detach(self, sid: str) -> None:
        self.shells.detach(sid)
        with self._lock:
            nodes = set(self._remote.pop(sid, {}).values())
        for node in nodes:
            try:
                self.bus.send(node, "shell_detach", sid=sid)
            except LabnbError:   # that node keeps the tab's place until its terminal ends: no more than that
                pass

    # -- a tab of another node's ----------------------------------------------------------
    def _open_here(self, origin: str, sid: str, learner: str, lab: str, term: str | None, rows: int, cols: int,
                   watching: bool) -> None:
        self.shells.open(sid, learner, lab, rows, cols, term or "", watching)

    # -- where ---------------------------------------------------------------------------
    def _node_of(self, learner_id: str, watching: bool) -> str:
        """The node that holds the learner's lab host, if another ("": this one)."""
        if self.learners.peek(learner_id) is not None:
            return ""
        placed = self.store.placement(learner_id)
        if placed is None and watching:   # opened here, it would make them a lab host on this node
            raise ShellError("the learner has no lab host yet: one is made when they open a lab")
        return placed["node"] if placed is not None and placed["node"] != self.node else ""

    def _remote_of(self, sid: str, learner_id: str) -> str:
        """Where tab ``sid``'s events about ``learner_id`` go: the node it opened their terminal on. A tab's
        keys and sizes name its own learner (the instructor's, for a watcher): they go where the tab's
        terminal is, whose node's rules refuse them."""
        with self._lock:
            opened = self._remote.get(sid, {})
            return opened.get(learner_id) or next(iter(opened.values()), "")

    def _ask(self, node: str, verb: str, **args) -> None:
        try:
            self.bus.ask(node, verb, **args)
        except LabnbError as e:   # said to the tab as the terminal's own errors are
            raise ShellError(str(e)) from None

    def _send(self, node: str, verb: str, **args) -> None:
        try:
            self.bus.send(node, verb, **args)
        except LabnbError as e:
            raise ShellError(str(e)) from None
