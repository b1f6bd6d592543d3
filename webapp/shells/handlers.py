"""The Socket.IO side of shells: events from the lab page's terminal panel,
checked (webapp/events.py), then handed to the ShellManager. A tab reaches
only its own learner's shell, and only after ``shell_open``.

    shell_open   {lab, term?, rows?, cols?}  -> {"ok": true}   starts the shell if need be; sends the backlog
    shell_input  {term?, data: str}          (at most 64 KiB in UTF-8)
    shell_resize {term?, rows: 2..500, cols: 2..1000}
    shell_ack    {term?, end: pos}           the tab has written the output up to pos to xterm

    server -> tab: shell_output {term, data: bytes, end: pos, replay?: true}, shell_exit {term}

``term`` names one of the lab's named terminals (b1 in lab 1); without it,
the event is about the learner's free shell. Each is a stream of its own.
``learner`` (``shell_open``, ``shell_ack``): the instructor watching a
learner's page names them, and sees their shell and terminals read-only:
nothing is started for a watcher, and its input and sizes are refused.

A tab's events are handled in order, in its WebSocket's thread
(webapp/websocket.py). ``shell_input`` goes into the terminal's input pipe
whole, or, while the terminal leaves INPUT_PENDING bytes unread (a program
there does not read its input), is refused with an error, never waited for
(webapp/executor/process.py); the tab shows why and drops what was typed.
Only ``shell_open`` may wait on the lab host, as it starts a shell or a
terminal (the spawner's and the terminal's deadlines bound it), and only
this tab's events wait with it.

``end`` is the position in the shell's raw output (before decoding) after
what a ``shell_output`` stands for: the tab acknowledges it once written,
as a run's tab does (webapp/flow.py). The first ``shell_output``
after ``shell_open`` is the backlog (``replay``): the tab clears its screen
and shows it.
"""
from __future__ import annotations

from flask import request, session

from ..stream.events import POSITION, Events, Int, Name, Text
from ..runs.handlers import whose
from .manager import MAX_INPUT, ShellError, ShellManager

ROWS, COLS = (2, 500), (2, 1000)
TERM = Name(optional=True)


def register(events: Events, manager: ShellManager) -> None:
    expected = (ShellError,)
    events.on_disconnect(manager.detach)

    @events.on("shell_open", expected, lab=Name(), term=TERM, rows=Int(*ROWS, default=24),
               cols=Int(*COLS, default=80), learner=Name(optional=True))
    def shell_open(lab_id, term, rows, cols, learner):
        owner = whose(learner)
        manager.open(request.sid, owner, lab_id, rows, cols, term or "", watching=owner != session["learner"])
        return {"ok": True}

    @events.on("shell_input", expected, term=TERM, data=Text(MAX_INPUT))
    def shell_input(term, raw):
        manager.input(request.sid, session["learner"], raw, term or "")

    @events.on("shell_resize", expected, term=TERM, rows=Int(*ROWS), cols=Int(*COLS))
    def shell_resize(term, rows, cols):
        manager.resize(request.sid, session["learner"], rows, cols, term or "")

    @events.on("shell_ack", expected, term=TERM, end=POSITION, learner=Name(optional=True))
    def shell_ack(term, end, learner):
        manager.ack(request.sid, whose(learner), end, term or "")
