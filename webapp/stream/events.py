"""Socket.IO events from browser tabs: the one place that registers them,
checks their payloads and owns connect-time plumbing.

Every payload is untrusted. A service (runs, shells) declares each event's
fields with the kinds below; ``Events.on`` checks them before its handler
runs, and turns a ``BadEvent``, the service's own expected errors, or a bug
into an ``error`` event and the ``{"error": ...}`` acknowledgement, never a
crash. Each service registers its own connect and disconnect
(``on_connect``, ``on_disconnect``); an unknown event gets an error too. A
``gate`` (Learners.event_refusal: the seating's say) may refuse every event of a tab whose learner
has no place now: a tab left open after their time ended starts nothing. Who may connect is checked before the
WebSocket opens (limits.SocketLimits, with the Guard).

A tab's events are handled one at a time, in order, in its WebSocket's own
thread (webapp/websocket.py): a handler starts what takes long (a run, a
lab host's claim) in the background and returns, and never waits on a lab
host for what it does not start, or it holds every other event of its tab.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Callable

from flask import request
from flask_socketio import SocketIO

from ..store import is_run_id

log = logging.getLogger(__name__)

MAX_NAME = 200
MAX_POSITION = 1 << 50


class BadEvent(ValueError):
    """The payload is not what the event takes; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class Name:
    """A lab, step or learner id: text of 1 to MAX_NAME characters (or absent, if ``optional``)."""
    optional: bool = False

    def check(self, field: str, value):
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            raise BadEvent(f"{field}: expected a name of 1 to {MAX_NAME} characters")
        return value


@dataclasses.dataclass(frozen=True)
class RunId:
    def check(self, field: str, value):
        if not is_run_id(value):
            raise BadEvent(f"{field}: expected a run id (32 hex digits)")
        return value


@dataclasses.dataclass(frozen=True)
class Int:
    low: int
    high: int
    default: int | None = None

    def check(self, field: str, value):
        value = self.default if value is None else value
        if not isinstance(value, int) or isinstance(value, bool) or not self.low <= value <= self.high:
            raise BadEvent(f"{field}: expected an integer from {self.low} to {self.high}")
        return value


@dataclasses.dataclass(frozen=True)
class Text:
    """A string, sent on as its UTF-8 bytes (a lone surrogate becomes '?')."""
    max_bytes: int

    def check(self, field: str, value):
        if not isinstance(value, str):
            raise BadEvent(f"{field}: expected a string")
        raw = value.encode(errors="replace")
        if len(raw) > self.max_bytes:
            raise BadEvent(f"{field}: at most {self.max_bytes} bytes per event; send a long paste in parts")
        return raw


SEQ = Int(-1, MAX_POSITION)        # a chunk's sequence number; -1: none yet
POSITION = Int(0, MAX_POSITION)    # a byte position in a run's output


def fields(data, spec: dict) -> list:
    """The payload's fields in the order of ``spec`` (name: kind), checked."""
    if not isinstance(data, dict):
        raise BadEvent(f"expected an object with {', '.join(spec)}, got {type(data).__name__}")
    return [kind.check(name, data.get(name)) for name, kind in spec.items()]


class Events:
    """The server's Socket.IO events, registered once per server."""

    def __init__(self, socketio: SocketIO, gate: Callable[[str], str | None] = lambda event: None):
        self.socketio, self.gate = socketio, gate
        self._connects: list[Callable[[], None]] = []
        self._disconnects: list[Callable[[str], None]] = []
        socketio.on("connect")(self._connect)
        socketio.on("disconnect")(self._disconnect)
        socketio.on("*")(self._unknown)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` in the request context of every new tab (to join it to rooms)."""
        self._connects.append(callback)

    def on_disconnect(self, callback: Callable[[str], None]) -> None:
        """Tell ``callback(sid)`` when a tab goes away."""
        self._disconnects.append(callback)

    def on(self, name: str, expected: tuple[type[Exception], ...] = (), **spec):
        """Register ``fn(*fields)`` for event ``name``, its payload checked against ``spec``."""
        def wrap(fn):
            @functools.wraps(fn)
            def handler(data=None):
                try:
                    shut = self.gate(name)
                    if shut:
                        raise BadEvent(shut)
                    return fn(*fields(data, spec)) if spec else fn()
                except (BadEvent, *expected) as e:
                    message = f"{name}: {e}"
                except Exception:
                    log.exception("Socket.IO event %s", name)
                    message = f"{name}: the server failed to handle it (see its log)"
                self.socketio.emit("error", {"event": name, "message": message}, to=request.sid)
                return {"error": message}
            self.socketio.on(name)(handler)
            return fn
        return wrap

    def _connect(self, auth=None) -> None:
        for callback in self._connects:
            callback()

    def _disconnect(self, reason=None) -> None:
        for callback in self._disconnects:
            try:
                callback(request.sid)
            except Exception:
                log.exception("a tab's disconnect")

    def _unknown(self, name, data=None):
        message = f"unknown event {str(name)[:40]!r}"
        self.socketio.emit("error", {"event": str(name)[:40], "message": message}, to=request.sid)
        return {"error": message}
