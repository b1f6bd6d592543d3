"""The WebSocket under Engine.IO, bounded both ways: what one tab's connection may cost the server.

Socket.IO runs with ``async_handlers=False``: each tab's events are handled in order, one at a time,
in its WebSocket's own thread, not in a thread each (python-socketio's default, which a flood of
events turned into a thread per event). So a WebSocket costs the gunicorn thread it holds, and three
more, however many events it sends: simple-websocket's reader, Engine.IO's writer, and Engine.IO's
ping timer (one at a time; it ends within the ping interval after the tab leaves). Long-polling is
not served (``transports``); a POST to a WebSocket's session runs its events in the request's gunicorn
thread, of a bounded pool.

In: simple-websocket keeps what it reads until the tab's thread takes it, in a list without a bound,
and puts a message of any size together before Engine.IO refuses it. Here its reader stops reading
while QUEUED messages wait (TCP then holds a client that sends faster than its events are handled),
and a message past Engine.IO's ``max_http_buffer_size`` closes the connection as it arrives. Input a
terminal does not read is refused, not waited for (``Handle.write``, webapp/labhost/handle.py): a tab's thread waits
on its lab host only to start a shell or a terminal there (``shell_open``), within their deadlines.

Out: Engine.IO queues what is sent to a tab without a bound (Flask-SocketIO #663), and a tab's
acknowledgements (flow.py) say only what it claims: one that acknowledges what it does not
read, or asks for a run's replay again and again (2 MB each), had the server queue without end. Here
the queue counts its bytes, and while UNSENT of them wait the tab's next event is not handled: a tab
that does not take in what it is sent is not heard either, and what is still sent to it is bounded by
the windows it had opened before. And a tab that has not taken in what TCP holds for it for Engine.IO's
ping interval and timeout loses its connection (TCP_USER_TIMEOUT, which zero-window probes obey too):
Engine.IO's writer would otherwise wait on it for ever. (Not a socket timeout: simple-websocket writes
with ``send``, which under a timeout may write only part of a message.)
"""
from __future__ import annotations

import queue
import socket
import threading

import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from flask_socketio import SocketIO

QUEUED = 16          # messages read from one WebSocket and not yet handled, at most (one read of the socket more)
UNSENT = 8 << 20     # bytes queued for one WebSocket before its tab's next event waits for them to go


class _Held(simple_websocket.Server):
    """simple-websocket's server side, whose reader thread waits while QUEUED messages are unhandled."""

    def __init__(self, environ, **kwargs):
        self._room = threading.Condition()   # before the reader thread starts (in the base's __init__)
        self._closed = False
        super().__init__(environ, **kwargs)

    def _handle_events(self):
        going = super()._handle_events()
        with self._room:
            self._room.wait_for(lambda: len(self.input_buffer) < QUEUED or self._closed)
        return going and not self._closed   # closed meanwhile (by Engine.IO's writer): the reader ends

    def receive(self, timeout=None):
        data = super().receive(timeout)
        with self._room:
            self._room.notify()
        return data

    def close(self, reason=None, message=None):
        with self._room:
            self._closed = True
            self._room.notify()
        super().close(reason, message)


class _Outbox(queue.Queue):
    """Engine.IO's queue of packets for one connection, which counts their bytes. Its writer takes them
    one at a time (Engine.IO's ``poll`` takes all it can without blocking: nothing, here), so what the
    queue holds is all that waits for the tab but the packet being written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bytes = 0
        self.ended = False      # Engine.IO closed the connection (its last packet, None, is in)
        self.room = threading.Condition(self.mutex)

    def get(self, block=True, timeout=None):
        if not block:
            raise queue.Empty
        return super().get(True, timeout)

    def _put(self, packet):
        super()._put(packet)
        self.bytes += _size(packet)
        self.ended = self.ended or packet is None
        if packet is None:
            self.room.notify_all()

    def _get(self):
        packet = super()._get()
        self.bytes -= _size(packet)
        if self.bytes < UNSENT:
            self.room.notify_all()
        return packet

    def wait_for_room(self, timeout: float) -> bool:
        with self.room:
            return self.room.wait_for(lambda: self.bytes < UNSENT or self.ended, timeout)


def _size(packet) -> int:
    data = getattr(packet, "data", None)
    return len(data) if isinstance(data, (bytes, str)) else 0


class _WebSocket(SimpleWebSocketWSGI):
    """Engine.IO's threading WebSocket: a ``_Held`` one that refuses messages past ``max_size``, whose
    next message is taken only once its connection's ``_Outbox`` has room."""

    max_size = 0
    timeout = 0.0

    def __call__(self, environ, start_response):
        self.ws = _Held(environ, max_message_size=self.max_size)
        if self.ws.sock.family in (socket.AF_INET, socket.AF_INET6):
            self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.timeout * 1000))
        self.app(self)
        raise StopIteration()   # gunicorn's way (only gunicorn serves labnb): the response was the WebSocket

    def wait(self):
        outbox = self.app.__self__.queue   # app: the Engine.IO socket's handler, a bound method
        while not outbox.wait_for_room(1.0) and self.ws.connected:
            pass
        return super().wait()


def bound(socketio: SocketIO) -> None:
    """Serve ``socketio``'s WebSockets as ``_WebSocket``s with ``_Outbox``es (its ``async_handlers=False``
    is given where it is made). Engine.IO takes both classes from its async mode's table, which every
    server shares: this one's gets a copy."""
    eio = socketio.server.eio
    websocket = type("WebSocket", (_WebSocket,), {"max_size": eio.max_http_buffer_size,
                                                   "timeout": eio.ping_interval + eio.ping_timeout})
    eio._async = {**eio._async, "websocket": websocket, "queue": _Outbox}
