"""The Socket.IO side of shells: events from the lab page's terminal panel,
checked (webapp/events.py), then handed to the ShellManager. A tab reaches
only its own learner's shell, and only after ``shell_open``.

    shell_open   {lab, rows?, cols?}  -> {"ok": true}   starts the shell if need be; sends the backlog
    shell_input  {data: str}          (at most 64 KiB in UTF-8)
    shell_resize {rows: 2..500, cols: 2..1000}
    shell_ack    {end: pos}           the tab has written the output up to pos to xterm

    server -> tab: shell_output {data: bytes, end: pos, replay?: true}, shell_exit {}

Events are handled each in a thread of their own, so a tab sends its next
``shell_input`` (and ``shell_resize``) only once the last is acknowledged:
keystrokes would otherwise reach the shell out of order.

``end`` is the position in the shell's raw output (before decoding) after
what a ``shell_output`` stands for: the tab acknowledges it once written,
as a run's tab does (webapp/flow.py). The first ``shell_output``
after ``shell_open`` is the backlog (``replay``): the tab clears its screen
and shows it.
"""
from __future__ import annotations

from flask import request, session

from ..events import POSITION, Events, Int, Name, Text
from .manager import MAX_INPUT, ShellError, ShellManager

ROWS, COLS = (2, 500), (2, 1000)


def register(events: Events, manager: ShellManager) -> None:
    expected = (ShellError,)
    events.on_disconnect(manager.detach)

    @events.on("shell_open", expected, lab=Name(), rows=Int(*ROWS, default=24), cols=Int(*COLS, default=80))
    def shell_open(lab_id, rows, cols):
        manager.open(request.sid, session["learner"], lab_id, rows, cols)
        return {"ok": True}

    @events.on("shell_input", expected, data=Text(MAX_INPUT))
    def shell_input(raw):
        manager.input(request.sid, session["learner"], raw)

    @events.on("shell_resize", expected, rows=Int(*ROWS), cols=Int(*COLS))
    def shell_resize(rows, cols):
        manager.resize(request.sid, session["learner"], rows, cols)

    @events.on("shell_ack", expected, end=POSITION)
    def shell_ack(end):
        manager.ack(request.sid, session["learner"], end)
