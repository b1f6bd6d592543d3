"""The Socket.IO events of runs, checked (webapp/events.py), then handed to
the RunManager. A run id must name one of the learner's own runs.

    open   {lab}                          -> {"running": [{run, step}]}   joins the lab's room
    run    {lab, step}                    -> {"run": id}                  starts a run, this tab attached
    attach {run, after: seq, end: pos}    -> {"status": ...}              replay after seq, then live
    ack    {run, end: pos}                                                taken in up to pos
    stop   {run}                          -> {"ok": true}
"""
from __future__ import annotations

from flask import request, session
from flask_socketio import join_room

from ..events import POSITION, SEQ, BadEvent, Events, Name, RunId
from .manager import RunError, RunManager, lab_room


def register(events: Events, manager: RunManager, labs: dict) -> None:
    expected = (RunError,)
    events.on_disconnect(manager.detach)

    @events.on("open", expected, lab=Name())
    def open_lab(lab_id):
        if lab_id not in labs:
            raise BadEvent(f"there is no lab {lab_id!r}")
        learner = session["learner"]
        join_room(lab_room(learner, lab_id))
        return {"running": manager.running(learner, lab_id)}

    @events.on("run", expected, lab=Name(), step=Name())
    def run(lab_id, step_id):
        return {"run": manager.start(session["learner"], lab_id, step_id, request.sid)}

    @events.on("attach", expected, run=RunId(), after=SEQ, end=POSITION)
    def attach(run_id, after, end):
        return manager.attach(request.sid, session["learner"], run_id, after, end)

    @events.on("ack", expected, run=RunId(), end=POSITION)
    def ack(run_id, end):
        manager.ack(request.sid, session["learner"], run_id, end)

    @events.on("stop", expected, run=RunId())
    def stop(run_id):
        manager.stop(session["learner"], run_id)
        return {"ok": True}
