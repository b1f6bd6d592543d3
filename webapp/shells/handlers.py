"""The Socket.IO side of shells: events from the lab page's terminal panel,
checked, then handed to the ShellManager. Like the run events (runs/handlers.py),
every payload is untrusted; a tab reaches only its own learner's shell, and
only after ``shell_open``. Anything else gets an ``error`` event and
``{"error": ...}`` as the acknowledgement.

    shell_open   {lab, rows?, cols?}  -> {"ok": true}   starts the shell if need be; sends the backlog
    shell_input  {data: str}          (at most 64 KiB in UTF-8)
    shell_resize {rows: 2..500, cols: 2..1000}
    shell_ack    {bytes: n}           the tab has written n more bytes of output to xterm

    server -> tab: shell_output {data: str, bytes: n, replay?: true}, shell_exit {}

Events are handled each in a thread of their own, so a tab sends its next
``shell_input`` (and ``shell_resize``) only once the last is acknowledged:
keystrokes would otherwise reach the shell out of order.

``bytes`` counts the raw output (before decoding) that a ``shell_output``
stands for: the tab acknowledges exactly that. The first ``shell_output``
after ``shell_open`` is the backlog (``replay``): the tab clears its screen
and shows it.
"""
from __future__ import annotations

from flask import request, session
from flask_socketio import SocketIO

from ..runs.handlers import BadEvent, on_event
from .manager import MAX_INPUT, ShellError, ShellManager

MAX_NAME = 200
ROWS, COLS = (2, 500), (2, 1000)


def _object(data, *names: str) -> dict:
    if not isinstance(data, dict):
        raise BadEvent(f"expected an object with {', '.join(names)}, got {type(data).__name__}")
    return data


def _int(data: dict, name: str, low: int, high: int, default: int | None = None) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadEvent(f"{name}: expected an integer from {low} to {high}")
    return value


def register(socketio: SocketIO, manager: ShellManager) -> None:
    def event(name):
        return on_event(socketio, name, (BadEvent, ShellError))

    @event("shell_open")
    def shell_open(data):
        data = _object(data, "lab")
        lab_id = data.get("lab")
        if not isinstance(lab_id, str) or not 0 < len(lab_id) <= MAX_NAME:
            raise BadEvent(f"lab: expected a name of 1 to {MAX_NAME} characters")
        rows, cols = _int(data, "rows", *ROWS, default=24), _int(data, "cols", *COLS, default=80)
        manager.open(request.sid, session["learner"], lab_id, rows, cols)
        return {"ok": True}

    @event("shell_input")
    def shell_input(data):
        text = _object(data, "data").get("data")
        if not isinstance(text, str):
            raise BadEvent("data: expected a string")
        if len(text) > MAX_INPUT:
            raise BadEvent(f"data: at most {MAX_INPUT} bytes per event; send a long paste in parts")
        raw = text.encode(errors="replace")   # a lone surrogate becomes '?'
        if len(raw) > MAX_INPUT:
            raise BadEvent(f"data: at most {MAX_INPUT} bytes per event; send a long paste in parts")
        manager.input(request.sid, session["learner"], raw)

    @event("shell_resize")
    def shell_resize(data):
        data = _object(data, "rows", "cols")
        rows, cols = _int(data, "rows", *ROWS), _int(data, "cols", *COLS)
        manager.resize(request.sid, session["learner"], rows, cols)

    @event("shell_ack")
    def shell_ack(data):
        nbytes = _int(_object(data, "bytes"), "bytes", 0, 1 << 30)
        manager.ack(request.sid, session["learner"], nbytes)
