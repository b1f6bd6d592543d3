"""Watching a learner of another node: the Socket.IO events of a tab on this
node about a learner whose lab host another node holds (the instructor on
node A watching a learner of node B) go to that node over the bus, which
opens the terminal, or attaches the run, there for the tab's sid; what it
prints is then emitted on B to that sid, and Socket.IO's message queue
(LABNB_REDIS_URL) brings it to the tab on A. The rules stay where the lab
host is: B's ShellManager refuses a watcher's keys and sizes as it does its
own tabs', B's RunManager reads only the learner's own runs.

``NodeShells`` and ``NodeRuns`` stand where the ShellManager and the
RunManager stand for the Socket.IO handlers (webapp/shells/handlers.py,
webapp/runs/handlers.py): the events about a learner of this node's go to
this node's managers, as on one machine, and so do a run's start and stop,
which only a learner's own tab (on their node) sends.
"""
from __future__ import annotations

import threading

from ..errors import LabnbError
from ..runs import RunError
from ..shells.manager import ShellError, ShellManager
from ..store import is_run_id
from .bus import Bus

HOLDING = frozenset({"starting", "ready"})   # a placement's states whose node holds the lab host


class _Elsewhere:
    """What both have: where a learner's lab host is, and which tab opened what on which node."""

    error = LabnbError   # what a failure on the other node is, for the handlers here
    verb_detach = ""

    def __init__(self, bus: Bus, store, node: str, learners):
        self.bus, self.store, self.node, self.learners = bus, store, node, learners
        self._remote: dict[str, dict[str, str]] = {}   # a tab's sid: {learner: the node it opened theirs on}
        self._lock = threading.Lock()

    def _node_of(self, learner_id: str) -> str:
        """The node that holds the learner's lab host, if another ("": this one)."""
        if self.learners.peek(learner_id) is not None:
            return ""
        placed = self.store.placement(learner_id)
        return placed["node"] if placed and placed["node"] != self.node and placed["state"] in HOLDING else ""

    def _opened(self, sid: str, learner_id: str, node: str) -> None:
        with self._lock:
            self._remote.setdefault(sid, {})[learner_id] = node

    def _remote_of(self, sid: str, learner_id: str) -> str:
        """Where tab ``sid``'s events about ``learner_id`` go: the node it opened theirs on. A tab's keys and
        sizes name its own learner (the instructor's, for a watcher): they go where the tab's terminal is,
        whose node's rules refuse them."""
        with self._lock:
            opened = self._remote.get(sid, {})
            return opened.get(learner_id) or next(iter(opened.values()), "")

    def _detach_elsewhere(self, sid: str) -> None:
        with self._lock:
            nodes = set(self._remote.pop(sid, {}).values())
        for node in nodes:
            try:
                self.bus.send(node, self.verb_detach, sid=sid)
            except LabnbError:   # that node keeps the tab's place until the terminal or run ends: no more
                pass

    def _ask(self, node: str, verb: str, **args) -> dict:
        try:
            return self.bus.ask(node, verb, **args)
        except LabnbError as e:   # said to the tab as this node's own errors are
            raise self.error(str(e)) from None

    def _send(self, node: str, verb: str, **args) -> None:
        try:
            self.bus.send(node, verb, **args)
        except LabnbError as e:
            raise self.error(str(e)) from None


class NodeShells(_Elsewhere):
    error, verb_detach = ShellError, "shell_detach"

    def __init__(self, shells: ShellManager, bus: Bus, store, node: str, learners):
        super().__init__(bus, store, node, learners)
        self.shells = shells
        bus.on("shell_open", lambda origin, sid, learner, lab, term, rows, cols, watching, host=None:
               shells.open(sid, learner, lab, rows, cols, term or "", watching, host or ""))
        bus.on("shell_input", lambda origin, sid, learner, term, data, host=None:
               shells.input(sid, learner, data.encode(), term or "", host or ""))
        bus.on("shell_resize", lambda origin, sid, learner, term, rows, cols, host=None:
               shells.resize(sid, learner, rows, cols, term or "", host or ""))
        bus.on("shell_ack", lambda origin, sid, learner, term, end, host=None:
               shells.ack(sid, learner, end, term or "", host or ""))
        bus.on("shell_detach", lambda origin, sid: shells.detach(sid))

    def open(self, sid: str, learner_id: str, lab_id: str, rows: int = 24, cols: int = 80, term: str = "",
             watching: bool = False, host_name: str = "") -> None:
        node = self._node_of(learner_id)
        if not node and watching and self.learners.peek(learner_id) is None:
            # opened here, it would make them a lab host on this node, beside the one their node makes
            raise ShellError("the learner has no lab host now: one is made when they open a lab")
        if not node:
            return self.shells.open(sid, learner_id, lab_id, rows, cols, term, watching, host_name)
        self._ask(node, "shell_open", sid=sid, learner=learner_id, lab=lab_id, term=term or None, rows=rows,
                  cols=cols, watching=watching, host=host_name or None)
        self._opened(sid, learner_id, node)

    def input(self, sid: str, learner_id: str, data: bytes, term: str = "", host_name: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.input(sid, learner_id, data, term, host_name)
        self._ask(node, "shell_input", sid=sid, learner=learner_id, term=term or None, data=data.decode(),
                  host=host_name or None)

    def resize(self, sid: str, learner_id: str, rows: int, cols: int, term: str = "", host_name: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.resize(sid, learner_id, rows, cols, term, host_name)
        self._ask(node, "shell_resize", sid=sid, learner=learner_id, term=term or None, rows=rows, cols=cols,
                  host=host_name or None)

    def ack(self, sid: str, learner_id: str, position: int, term: str = "", host_name: str = "") -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.shells.ack(sid, learner_id, position, term, host_name)
        self._send(node, "shell_ack", sid=sid, learner=learner_id, term=term or None, end=position,
                   host=host_name or None)

    def detach(self, sid: str) -> None:
        self.shells.detach(sid)
        self._detach_elsewhere(sid)


class NodeRuns(_Elsewhere):
    error, verb_detach = RunError, "run_detach"

    def __init__(self, runs, bus: Bus, store, node: str, learners):
        super().__init__(bus, store, node, learners)
        self.runs = runs
        bus.on("run_running", lambda origin, learner, lab: {"running": runs.running(learner, lab)})
        bus.on("run_attach", lambda origin, sid, learner, run, after, end: runs.attach(sid, learner, run, after, end))
        bus.on("run_ack", lambda origin, sid, learner, run, end: runs.ack(sid, learner, run, end))
        bus.on("run_detach", lambda origin, sid: runs.detach(sid))

    def running(self, learner_id: str, lab_id: str) -> list[dict]:
        node = self._node_of(learner_id)
        if not node:
            return self.runs.running(learner_id, lab_id)
        running = self._ask(node, "run_running", learner=learner_id, lab=lab_id).get("running")
        if not isinstance(running, list) or not all(
                isinstance(r, dict) and r.keys() == {"run", "step"} and is_run_id(r["run"])
                and isinstance(r["step"], str) for r in running):
            raise RunError(f"node {node} answered what its runs are with something else: see its log")
        return running

    def attach(self, sid: str, learner_id: str, run_id: str, after: int, position: int) -> dict:
        node = self._node_of(learner_id)
        if not node:
            return self.runs.attach(sid, learner_id, run_id, after, position)
        self._opened(sid, learner_id, node)   # before: its output may come before the answer
        status = self._ask(node, "run_attach", sid=sid, learner=learner_id, run=run_id, after=after,
                           end=position).get("status")
        return {"status": status if isinstance(status, str) else ""}

    def ack(self, sid: str, learner_id: str, run_id: str, position: int) -> None:
        node = self._remote_of(sid, learner_id)
        if not node:
            return self.runs.ack(sid, learner_id, run_id, position)
        self._send(node, "run_ack", sid=sid, learner=learner_id, run=run_id, end=position)

    def start(self, *args, **kwargs) -> str:
        return self.runs.start(*args, **kwargs)

    def stop(self, learner_id: str, run_id: str) -> None:
        self.runs.stop(learner_id, run_id)

    def detach(self, sid: str) -> None:
        self.runs.detach(sid)
        self._detach_elsewhere(sid)
