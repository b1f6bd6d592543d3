"""The Socket.IO protocol has one list, webapp/stream/protocol.py: docs/protocol.md
is made from it, every event the server emits or handles and every event the
pages send or listen to is in it, in the right direction, and the server's
emits go through its check. Reads the sources; no lab host, no root."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask, session

from webapp.learners.registry import TAB_EVENTS
from webapp.runs.manager import end_payload
from webapp.stream import protocol
from webapp.stream.fields import BadEvent

ROOT = Path(__file__).resolve().parents[2]
EMIT = re.compile(r"""\bemit\(\s*(?:[\w.]+\s*,\s*)?["']([^"']+)["']""")   # emit("x", ... or emit(socketio, "x", ...
HANDLER = re.compile(r"""\bevents\.on\(\s*["']([^"']+)["']""")
JS = re.compile(r"""\bsocket\.(emit|on)\(\s*["']([^"']+)["']""")


def sources(folder: str, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / folder).glob(pattern))}


def found(regex: re.Pattern, files: dict[str, str], group: int = 1) -> dict[str, set[str]]:
    """{event name: the files that name it}."""
    names: dict[str, set[str]] = {}
    for path, text in files.items():
        for m in regex.finditer(text):
            names.setdefault(m.group(group), set()).add(path)
    return names


PY = sources("webapp", "**/*.py")
PAGES = sources("static", "*.js")   # the vendored libraries are in static/vendor/


def test_docs_protocol_md_is_current():
    doc = ROOT / "docs" / "protocol.md"
    assert doc.read_text() == protocol.markdown(), (
        "docs/protocol.md is not what webapp/stream/protocol.py declares: "
        "run `python -m webapp.stream.protocol > docs/protocol.md`")


def test_every_event_the_server_emits_is_declared_and_goes_through_the_check():
    emitted = found(EMIT, PY)
    undeclared = {name: files for name, files in emitted.items() if name not in protocol.TO_TAB}
    assert not undeclared, f"emitted, not declared in protocol.TO_TAB: {undeclared}"
    assert emitted.keys() == protocol.TO_TAB.keys(), "declared in protocol.TO_TAB, never emitted"
    direct = [path for path, text in PY.items() if "socketio.emit(" in text and path != "webapp/stream/protocol.py"]
    assert not direct, f"Socket.IO emits that bypass protocol.emit: {direct}"


def test_every_event_a_tab_sends_has_one_handler_as_declared():
    handled = found(HANDLER, PY)
    assert handled.keys() == protocol.TO_SERVER.keys()
    assert all(len(files) == 1 for files in handled.values()), handled
    assert TAB_EVENTS <= protocol.TO_SERVER.keys(), "learners.registry.TAB_EVENTS names an undeclared event"


def test_the_pages_send_and_listen_to_declared_events_in_the_right_direction():
    sent = {m.group(2): path for path, text in PAGES.items() for m in JS.finditer(text) if m.group(1) == "emit"}
    heard = {m.group(2): path for path, text in PAGES.items() for m in JS.finditer(text) if m.group(1) == "on"}
    assert {"run", "attach", "shell_input"} <= sent.keys() and {"output", "end", "shell_output"} <= heard.keys()
    assert not {n: p for n, p in sent.items() if n not in protocol.TO_SERVER}, "a page sends an undeclared event"
    wrong = {n: p for n, p in heard.items() if n not in protocol.TO_TAB and n not in protocol.RESERVED}
    assert not wrong, f"a page listens to an event the server does not send: {wrong}"


class SocketIO:
    def __init__(self):
        self.sent: list[tuple] = []

    def emit(self, event, payload, to):
        self.sent.append((event, payload, to))


def test_emit_sends_a_declared_event_and_refuses_what_is_not():
    socketio = SocketIO()
    protocol.emit(socketio, "shell_exit", {"term": ""}, "sid1")
    assert socketio.sent == [("shell_exit", {"term": ""}, "sid1")]
    for event, payload in (("shell_exited", {"term": ""}),     # not declared
                           ("shell_exit", {}),                   # a required field missing
                           ("shell_exit", {"term": "", "code": 0})):   # a field not declared
        with pytest.raises(protocol.ProtocolError):
            protocol.emit(socketio, event, payload, "sid1")
    assert len(socketio.sent) == 1
    with pytest.raises(protocol.ProtocolError, match="term: expected a string"):
        protocol.TO_TAB["shell_exit"].check({"term": None})


def test_a_runs_end_as_the_server_builds_it_is_as_declared():
    run = {"id": "0" * 32, "step": "count", "status": "done", "exit_code": 0, "signal": None, "duration": 1.5,
           "checks": [{"idx": 0, "kind": "check", "passed": True, "hint": "", "detail": ""}], "last_seq": None}
    protocol.TO_TAB["end"].check(end_payload(run))


class Guard:
    def __init__(self, operator: bool):
        self.operator = operator

    def is_operator(self) -> bool:
        return self.operator


@pytest.mark.parametrize("operator", [False, True])
def test_a_tabs_payload_is_read_in_declared_order_with_the_whose_rule(operator):
    app = Flask(__name__)
    app.secret_key = "test"
    app.extensions["labnb.guard"] = Guard(operator)
    shell_open = protocol.TO_SERVER["shell_open"]
    with app.test_request_context():
        session["learner"] = "ada"
        assert shell_open.read({"lab": "l1"}) == ["l1", None, 24, 80, "ada", None]
        assert shell_open.read({"lab": "l1", "term": "b1", "rows": 30, "cols": 100, "learner": "ada",
                                "host": "node2"}) == ["l1", "b1", 30, 100, "ada", "node2"]
        if operator:
            assert shell_open.read({"lab": "l1", "learner": "bob"})[-2] == "bob"
        else:
            with pytest.raises(BadEvent, match="only the instructor"):
                shell_open.read({"lab": "l1", "learner": "bob"})
        with pytest.raises(BadEvent, match="rows: expected an integer from 2 to 500"):
            shell_open.read({"lab": "l1", "rows": 1})
        with pytest.raises(BadEvent, match="expected an object"):
            shell_open.read(["l1"])
