"""Socket.IO events from browser tabs: the one place that registers them,
checks their payloads and owns connect-time plumbing.

Every payload is untrusted. A service (runs, shells) registers a handler
for each of its events as webapp/stream/protocol.py declares it; ``Events.on``
reads the payload's fields with that declaration before its handler runs,
and turns a ``BadEvent``, a learner's lab host not ready (``NotReady``, the
same for every service), the service's own expected errors, or a bug into
an ``error`` event and the ``{"error": ...}`` acknowledgement, never a
crash. Each service registers its own connect and disconnect
(``on_connect``, ``on_disconnect``); an unknown event gets an error too. A
``gate`` (Learners.event_refusal: the admission's say) may refuse every event of a tab whose learner
has no place now: a tab left open after their time ended starts nothing. Who may connect is checked before the
WebSocket opens (limits.SocketLimits, with the Guard).

A tab's events are handled one at a time, in order, in its WebSocket's own
thread (websocket.py): a handler starts what takes long (a run, a
lab host's claim) in the background and returns, and never waits on a lab
host for what it does not start, or it holds every other event of its tab.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

from flask import request
from flask_socketio import SocketIO

from ..learners.registry import NotReady
from . import protocol
from .fields import BadEvent

log = logging.getLogger(__name__)


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
        """Call ``callback()`` in the request context of every new tab (to join it to channels)."""
        self._connects.append(callback)

    def on_disconnect(self, callback: Callable[[str], None]) -> None:
        """Tell ``callback(sid)`` when a tab goes away."""
        self._disconnects.append(callback)

    def on(self, name: str, expected: tuple[type[Exception], ...] = ()):
        """Register ``fn(*fields)`` for the tab's event ``name``, its fields read as protocol.TO_SERVER declares."""
        declared = protocol.TO_SERVER.get(name)
        if declared is None:
            raise protocol.ProtocolError(f"a handler for {name!r}, which webapp/stream/protocol.py does not declare")

        def wrap(fn):
            @functools.wraps(fn)
            def handler(data=None):
                try:
                    shut = self.gate(name)
                    if shut:
                        raise BadEvent(shut)
                    return fn(*declared.read(data))
                except (BadEvent, NotReady, *expected) as e:
                    message = f"{name}: {e}"
                except Exception:
                    log.exception("Socket.IO event %s", name)
                    message = f"{name}: the server failed to handle it (see its log)"
                protocol.emit(self.socketio, "error", {"event": name, "message": message}, request.sid)
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
        protocol.emit(self.socketio, "error", {"event": str(name)[:40], "message": message}, request.sid)
        return {"error": message}
