"""labnb apps in this process, on fake lab hosts, for the fast tier's tests of what needs the app: the
guard, the Socket.IO protocol, runs' flow control, shells and workshops.

``serving`` makes an app as ``labnb serve`` does (``create_app``, then its services started) with a fake
backend (fakes.py) and the labs in tests/unit/labs; Flask's test client is a browser (``browser``), and
Flask-SocketIO's a tab (``Tab``). The test client speaks JSON Socket.IO packets only, while the server
speaks MessagePack (bytes as bytes): ``Tab`` has it use the server's packets. It calls the server's
handlers in the test's thread, and past the WSGI layers: who may open a WebSocket (limits.SocketLimits)
is tested with a request to /socket.io/ (``upgrade``). Output sent from the server's threads (a run's
flusher, a shell's reader) arrives while a test waits (``Tab.wait``), never by a deadline.
"""
from __future__ import annotations

import contextlib
import re
import types
from pathlib import Path

import flask_socketio.test_client
from socketio import msgpack_packet, packet

import fakes
from web_support import wait_for
from webapp import create_app

LABS = str(Path(__file__).with_name("labs"))
LAB, SLOW_SETUP, FAILING_SETUP = "80-unit", "81-slow-setup", "82-failing-setup"
TOKEN, OPERATOR = "the-learners-token", "the-operators-token"
WAIT = 120.0   # seconds to wait for what the server does in its threads: generous (an emulated VM is 10-20x
              # slower), never a measure


@contextlib.contextmanager
def serving(state_dir, backend: str = "fake", port: int | None = None, **settings):
    """The app of a server whose lab hosts are fakes of ``backend`` ("fake", "fake-slow", "fake-never"),
    its services started, closed at the end. ``port``: the one it would listen on (its cookie's name). The
    fakes stay registered while any such app lives (a module's app, and a test's own beside it)."""
    global _serving
    fakes.register()
    _serving += 1
    try:
        settings = {"labs_dir": LABS, "token": TOKEN, "operator_token": OPERATOR, **settings}
        app = create_app(fakes.settings(str(state_dir), backend, **settings), port=port)
        services = app.extensions["labnb"].start()
        try:
            yield app
        finally:
            services.close()
    finally:
        _serving -= 1
        if not _serving:
            fakes.unregister()


_serving = 0


def services(app):
    return app.extensions["labnb"]


def browser(app, token: str = TOKEN):
    """A new browser signed in with ``token`` (the operator's makes it the operator's)."""
    http = app.test_client()
    r = http.get(f"/?token={token}")
    assert r.status_code == 303, r.text
    return http


def session_value(http, key: str):
    with http.session_transaction() as s:
        return s.get(key)


def csrf(http) -> dict:
    """The header a POST of this browser needs."""
    return {"X-CSRF-Token": session_value(http, "csrf")}


def host_state(http, lab: str = LAB) -> str:
    """What the lab page's lab host part says: starting, ready or failed (``data-state``)."""
    page = http.get(f"/labs/{lab}/host").text
    return re.search(r'data-state="(\w+)"', page).group(1)


def ready(http, lab: str = LAB) -> None:
    """Open the lab, and wait for its lab host and the lab's setup."""
    wait_for(lambda: host_state(http, lab) == "ready", WAIT, what=f"lab {lab} to be ready")


def lab_host(app, http) -> fakes.FakeLabHost:
    return services(app).learners.peek(session_value(http, "learner")).host


def upgrade(http, **headers):
    """The request a tab's WebSocket starts with, through the app's WSGI layers (SocketLimits)."""
    return http.get("/socket.io/?EIO=4&transport=websocket", headers=headers)


# The test client's packets: MessagePack, as the server's (serializer="msgpack").
flask_socketio.test_client.packet = types.SimpleNamespace(
    **{name: getattr(packet, name) for name in dir(packet) if name.isupper()}, Packet=msgpack_packet.MsgPackPacket)


class Tab:
    """A browser tab's Socket.IO connection: what it heard, in order; each run's chunks by seq, ends,
    snapshots; each terminal's output. It acknowledges what it takes in, as the page does, while ``ack``."""

    def __init__(self, app, http, ack: bool = True, lab: str | None = LAB, headers: dict | None = None):
        self.client = services(app).socketio.test_client(app, flask_test_client=http, headers=headers)
        self.ack = ack
        self.heard: list[tuple[str, dict]] = []
        self.chunks: dict[str, dict[int, dict]] = {}
        self.ends: dict[str, dict] = {}
        self.snapshots: dict[str, dict] = {}
        self.screens: dict[str, bytearray] = {}
        if lab is not None:
            assert "running" in self.call("open", {"lab": lab})

    def call(self, event: str, *payload):
        """Send an event; its acknowledgement (handled in this thread, as one tab's events are in order)."""
        return self.client.emit(event, *payload, callback=True)

    def send(self, event: str, payload: dict) -> None:
        self.client.emit(event, payload)

    def take(self) -> list[tuple[str, dict]]:
        """What the server sent since the last take (appended by its threads meanwhile: taken by count)."""
        queue = self.client.queue
        got = queue[:len(queue)]
        del queue[:len(got)]
        events = [(p["name"], p["args"][0] if p["args"] else None) for p in got]
        for name, payload in events:
            self.heard.append((name, payload))
            self._took(name, payload)
        return events

    def _took(self, name: str, m: dict) -> None:
        if name == "output":
            run = self.chunks.setdefault(m["run"], {})
            assert m["seq"] not in run, f"seq {m['seq']} of run {m['run']} sent twice"
            run[m["seq"]] = m
        elif name == "snapshot":
            self.snapshots[m["run"]] = m
        elif name == "end":
            self.ends[m["run"]] = m
        elif name == "shell_output":
            screen = self.screens.setdefault(m["term"], bytearray())
            if m.get("replay"):
                screen.clear()
            screen += m["data"]
            if self.ack:
                self.send("shell_ack", {"term": m["term"] or None, "end": m["end"]})
        if name in ("output", "snapshot") and self.ack:
            self.send("ack", {"run": m["run"], "end": m["end"]})

    def named(self, name: str) -> list[dict]:
        self.take()
        return [payload for n, payload in self.heard if n == name]

    def wait(self, condition, what: str, timeout: float = WAIT):
        """``condition()``'s first true value, taking what the server sends meanwhile."""
        return wait_for(lambda: (self.take(), condition())[1], timeout, what=what)

    def run(self, step: str, lab: str = LAB) -> str:
        reply = self.call("run", {"lab": lab, "step": step})
        assert "run" in reply, reply
        return reply["run"]

    def wait_end(self, run: str) -> dict:
        """The run's end, once every chunk it says was sent has come (or a snapshot that holds it)."""
        end = self.wait(lambda: self.ends.get(run), f"the end of run {run}")
        held = self.snapshots.get(run, {"seq": -1})["seq"]
        assert end["seq"] in self.chunks.get(run, {}) or held >= end["seq"], (end, sorted(self.chunks.get(run, {})))
        return end

    def text(self, run: str) -> str:
        chunks = self.chunks.get(run, {})
        return b"".join(chunks[s]["data"] for s in sorted(chunks)).decode()

    def screen(self, term: str = "") -> str:
        return self.screens.get(term, b"").decode(errors="replace")

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        flask_socketio.test_client.SocketIOTestClient.clients.pop(self.client.eio_sid, None)
