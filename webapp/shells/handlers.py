"""The Socket.IO side of shells: events from the lab page's terminal panel
(``shell_open``, ``shell_input``, ``shell_resize``, ``shell_ack``; the
server sends ``shell_output`` and ``shell_exit``: webapp/stream/protocol.py
declares them and their fields), read and checked
(webapp/stream/events.py), then handed to the ShellManager. A tab reaches
only its own learner's shell, and only after ``shell_open``.

``term`` names one of the lab's named terminals (b1 in lab 1); without it,
the event is about the learner's free shell, on the lab's host ``host`` (a
lab of several hosts has a shell per host; none: its first). Each is a
stream of its own.
``learner`` (``shell_open``, ``shell_ack``): the instructor watching a
learner's page names them, and sees their shell and terminals read-only:
nothing is started for a watcher, and its input and sizes are refused.

A tab's events are handled in order, in its WebSocket's thread
(webapp/stream/websocket.py). ``shell_input`` goes into the terminal's input pipe
whole, or, while the terminal leaves INPUT_PENDING bytes unread (a program
there does not read its input), is refused with an error, never waited for
(webapp/labhost/handle.py); the tab shows why and drops what was typed.
Only ``shell_open`` may wait on the lab host, as it starts a shell or a
terminal (the spawner's and the terminal's deadlines bound it), and only
this tab's events wait with it.

``end`` is the position in the shell's raw output (before decoding) after
what a ``shell_output`` stands for: the tab acknowledges it once written,
as a run's tab does (webapp/stream/flow.py). The first ``shell_output``
after ``shell_open`` is the backlog (``replay``): the tab clears its xterm
and shows it.
"""
from __future__ import annotations

from flask import request, session

from ..stream.events import Events
from .manager import ShellError, ShellManager


def register(events: Events, manager: ShellManager) -> None:
    expected = (ShellError,)
    events.on_disconnect(manager.detach)

    @events.on("shell_open", expected)
    def shell_open(lab_id, term, rows, cols, owner, host):
        manager.open(request.sid, owner, lab_id, rows, cols, term or "", watching=owner != session["learner"],
                     host_name=host or "")
        return {"ok": True}

    @events.on("shell_input", expected)
    def shell_input(term, raw, host):
        manager.input(request.sid, session["learner"], raw, term or "", host or "")

    @events.on("shell_resize", expected)
    def shell_resize(term, rows, cols, host):
        manager.resize(request.sid, session["learner"], rows, cols, term or "", host or "")

    @events.on("shell_ack", expected)
    def shell_ack(term, end, owner, host):
        manager.ack(request.sid, owner, end, term or "", host or "")
