"""The Socket.IO events of runs (``open``, ``run``, ``attach``, ``ack``,
``stop``: webapp/stream/protocol.py declares them and their fields), read
and checked (webapp/stream/events.py), then handed to the RunManager. A run
id must name one of the learner's own runs, or of the learner the
instructor watches (``learner``, an ``Owner``): watching is reading, so
nobody runs or stops another's steps.
"""
from __future__ import annotations

from flask import request, session
from flask_socketio import join_room

from ..stream.events import Events
from ..stream.fields import BadEvent
from ..guard.limits import RunStarts, client_address
from .manager import RunError, RunManager, lab_channel


def register(events: Events, manager: RunManager, labs: dict, starts: RunStarts) -> None:
    expected = (RunError,)
    events.on_disconnect(manager.detach)

    @events.on("open", expected)
    def open_lab(lab_id, learner):
        if lab_id not in labs:
            raise BadEvent(f"there is no lab {lab_id!r}")
        join_room(lab_channel(learner, lab_id))
        return {"running": manager.running(learner, lab_id)}

    @events.on("run", expected)
    def run(lab_id, step_id):
        refused = starts.refusal(session["learner"], client_address(request.remote_addr))
        if refused:
            raise RunError(refused)
        run_id = manager.start(session["learner"], lab_id, step_id, request.sid)
        starts.count(session["learner"])
        return {"run": run_id}

    @events.on("attach", expected)
    def attach(run_id, after, end, learner):
        return manager.attach(request.sid, learner, run_id, after, end)

    @events.on("ack", expected)
    def ack(run_id, end, learner):
        manager.ack(request.sid, learner, run_id, end)

    @events.on("stop", expected)
    def stop(run_id):
        manager.stop(session["learner"], run_id)
        return {"ok": True}
