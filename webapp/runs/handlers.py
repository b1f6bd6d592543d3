"""The Socket.IO side of runs: events from browser tabs, checked, then
handed to the RunManager.

Every event is untrusted: its payload must be an object with the fields
and types below, within size limits; a run id must name one of the
learner's own runs. Anything else gets an ``error`` event (and the same
``{"error": ...}`` as the event's acknowledgement), never a crash.

    open   {lab}                          -> {"running": [{run, step}]}   joins the lab's room
    run    {lab, step}                    -> {"run": id}                  starts a run, this tab attached
    attach {run, after: seq, end: pos}    -> {"status": ...}              replay after seq, then live
    ack    {run, end: pos}                                                rendered up to pos
    stop   {run}                          -> {"ok": true}
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

from flask import request, session
from flask_socketio import SocketIO, join_room

from ..store import is_run_id
from .manager import RunError, RunManager, lab_room

log = logging.getLogger(__name__)

MAX_NAME = 200
MAX_POSITION = 1 << 50


class BadEvent(ValueError):
    pass


def _fields(data, **spec) -> list:
    """The payload's fields in the order of ``spec`` (name=kind), or BadEvent saying what is wrong."""
    if not isinstance(data, dict):
        raise BadEvent(f"expected an object with {', '.join(spec)}, got {type(data).__name__}")
    out = []
    for name, kind in spec.items():
        value = data.get(name)
        if kind == "name":
            if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
                raise BadEvent(f"{name}: expected a name of 1 to {MAX_NAME} characters")
        elif kind == "run":
            if not is_run_id(value):
                raise BadEvent(f"{name}: expected a run id (32 hex digits)")
        elif kind in ("seq", "position"):
            low = -1 if kind == "seq" else 0
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_POSITION:
                raise BadEvent(f"{name}: expected an integer from {low} to {MAX_POSITION}")
        out.append(value)
    return out


def on_event(socketio: SocketIO, name: str, expected: tuple[type[Exception], ...]):
    """Register a handler of event ``name`` whose payload is untrusted: an
    ``expected`` exception (or any bug) becomes an ``error`` event and the
    ``{"error": ...}`` acknowledgement, never a crash."""
    def wrap(fn):
        @functools.wraps(fn)
        def handler(data=None):
            try:
                return fn(data)
            except expected as e:
                message = f"{name}: {e}"
            except Exception:
                log.exception("Socket.IO event %s", name)
                message = f"{name}: the server failed to handle it (see its log)"
            socketio.emit("error", {"event": name, "message": message}, to=request.sid)
            return {"error": message}
        socketio.on(name)(handler)
        return fn
    return wrap


def register(socketio: SocketIO, manager: RunManager, labs: dict,
             also_detach: tuple[Callable[[str], None], ...] = ()) -> None:
    """The run events, and disconnect for every service: ``also_detach`` are
    told (with the sid) when a tab goes away. Who may connect is checked
    before the WebSocket opens (limits.SocketLimits, with the Guard)."""
    def event(name):
        return on_event(socketio, name, (BadEvent, RunError))

    @socketio.on("disconnect")
    def disconnect(reason=None):
        manager.detach(request.sid)
        for detach in also_detach:
            detach(request.sid)

    @socketio.on("*")
    def unknown(name, data=None):
        message = f"unknown event {str(name)[:40]!r}"
        socketio.emit("error", {"event": str(name)[:40], "message": message}, to=request.sid)
        return {"error": message}

    @event("open")
    def open_lab(data):
        (lab_id,) = _fields(data, lab="name")
        if lab_id not in labs:
            raise BadEvent(f"there is no lab {lab_id!r}")
        learner = session["learner"]
        join_room(lab_room(learner, lab_id))
        return {"running": manager.running(learner, lab_id)}

    @event("run")
    def run(data):
        lab_id, step_id = _fields(data, lab="name", step="name")
        return {"run": manager.start(session["learner"], lab_id, step_id, request.sid)}

    @event("attach")
    def attach(data):
        run_id, after, end = _fields(data, run="run", after="seq", end="position")
        return manager.attach(request.sid, session["learner"], run_id, after, end)

    @event("ack")
    def ack(data):
        run_id, end = _fields(data, run="run", end="position")
        manager.ack(request.sid, session["learner"], run_id, end)

    @event("stop")
    def stop(data):
        (run_id,) = _fields(data, run="run")
        manager.stop(session["learner"], run_id)
        return {"ok": True}
