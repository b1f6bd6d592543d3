"""The Socket.IO events of runs, checked (webapp/events.py), then handed to
the RunManager. A run id must name one of the learner's own runs.

    open   {lab, learner?}                       -> {"running": [{run, step}]}   joins the lab's room
    run    {lab, step}                           -> {"run": id}                  starts a run, this tab attached
    attach {run, after: seq, end: pos, learner?} -> {"status": ...}              replay after seq, then live
    ack    {run, end: pos, learner?}                                             taken in up to pos
    stop   {run}                                 -> {"ok": true}

``learner``: the instructor (the operator) watching a learner's notebook
names them; for anyone else it must be absent. Watching is reading:
nobody runs or stops another's steps.
"""
from __future__ import annotations

from flask import current_app, request, session
from flask_socketio import join_room

from ..stream.events import POSITION, SEQ, BadEvent, Events, Name, RunId
from ..guard.limits import RunStarts, client_address
from .manager import RunError, RunManager, lab_room


def whose(learner: str | None) -> str:
    """The learner whose runs an event is about: the tab's own, or the one the instructor watches."""
    if learner is None or learner == session["learner"]:
        return session["learner"]
    if not current_app.extensions["labnb.guard"].is_operator():
        raise BadEvent("only the instructor may watch another learner's runs")
    return learner


def register(events: Events, manager: RunManager, labs: dict, starts: RunStarts) -> None:
    expected = (RunError,)
    events.on_disconnect(manager.detach)

    @events.on("open", expected, lab=Name(), learner=Name(optional=True))
    def open_lab(lab_id, learner):
        if lab_id not in labs:
            raise BadEvent(f"there is no lab {lab_id!r}")
        learner = whose(learner)
        join_room(lab_room(learner, lab_id))
        return {"running": manager.running(learner, lab_id)}

    @events.on("run", expected, lab=Name(), step=Name())
    def run(lab_id, step_id):
        refused = starts.refusal(session["learner"], client_address(request.remote_addr))
        if refused:
            raise RunError(refused)
        run_id = manager.start(session["learner"], lab_id, step_id, request.sid)
        starts.count(session["learner"])
        return {"run": run_id}

    @events.on("attach", expected, run=RunId(), after=SEQ, end=POSITION, learner=Name(optional=True))
    def attach(run_id, after, end, learner):
        return manager.attach(request.sid, whose(learner), run_id, after, end)

    @events.on("ack", expected, run=RunId(), end=POSITION, learner=Name(optional=True))
    def ack(run_id, end, learner):
        manager.ack(request.sid, whose(learner), run_id, end)

    @events.on("stop", expected, run=RunId())
    def stop(run_id):
        manager.stop(session["learner"], run_id)
        return {"ok": True}
