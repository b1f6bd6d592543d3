"""The bus's rules (webapp/cluster/bus.py): what a message from Redis must be to reach a handler, what the
node answers, and that a flood is bounded. Redis is not the point here: a fake client records what is
published, and messages are handed to the bus as its subscriber would (test_cluster_room.py uses a real
Redis)."""
from __future__ import annotations

import json
import threading

import pytest

from webapp.cluster import bus as busmod
from webapp.cluster.bus import MAX_MESSAGE, Bus, BusError, channel, read, write
from webapp.errors import LabnbError
from webapp.stream.fields import BadEvent


class FakeRedis:
    def __init__(self):
        self.published: list[tuple[str, dict]] = []
        self.on_publish = lambda to, message: None

    def publish(self, to, data):
        message = json.loads(data)
        self.published.append((to, message))
        self.on_publish(to, message)

    def close(self):
        pass


@pytest.fixture
def node():
    bus = Bus("redis://unused", "a", client=FakeRedis())
    yield bus
    bus.close()


def message(verb="reset", origin="b", message_id=None, **args) -> str:
    return json.dumps({"verb": verb, "from": origin, "id": message_id, "args": args or {"learner": "l1"}})


def test_a_message_is_read_whole_and_checked():
    assert read(message()) == ("reset", "b", None, {"learner": "l1"})
    assert read(write("shell_open", "a", {"sid": "s", "learner": "l", "lab": "x", "rows": 24, "cols": 80,
                                         "watching": True}))[3] == \
        {"sid": "s", "learner": "l", "lab": "x", "term": None, "rows": 24, "cols": 80, "watching": True, "host": None}


@pytest.mark.parametrize("verb, args", [
    ("shell_open", {"lab": "x", "rows": 24, "cols": 80, "watching": True}),
    ("shell_input", {"data": "ls\n"}),
    ("shell_resize", {"rows": 24, "cols": 80}),
    ("shell_ack", {"end": 5}),
])
def test_a_shell_command_to_another_node_names_the_host_of_the_set(verb, args):
    """Watching or typing into a learner's shell on node2 of their set, from another cluster node."""
    args = {"sid": "s", "learner": "l", "host": "node2", **args}
    assert read(write(verb, "a", args))[3]["host"] == "node2"


@pytest.mark.parametrize("raw, why", [
    (b"\xff", "not JSON"),
    ("[1, 2]", "expected an object"),
    ("{" * 100_000, "not JSON"),   # deeply nested: no RecursionError escapes
    (json.dumps({"verb": "reset", "from": "b", "args": {"learner": "l"}, "extra": 1}), "expected an object"),
    (message(verb="shutdown"), "verb: expected one of"),
    (message(verb="reply"), "reply: args"),
    (message(verb="reply", error="", value=[1]), "value: expected an object"),
    (message(verb="run_attach", sid="s", learner="l", run="../etc", after=-1, end=0), "run: expected a run id"),
    (json.dumps({"verb": "reset", "from": "b", "args": []}), "args: expected an object"),
    (message(learner=""), "learner: expected a name"),
    (message(learner=["l"]), "learner: expected a name"),
    (message(learner="l", node="x"), "reset: args"),
    (message(origin=None), "from: expected a name"),
    (message(verb="shell_ack", sid="s", learner="l", end=-1), "end: expected an integer"),
    (message(verb="shell_ack", sid="s", learner="l", end=True), "end: expected an integer"),
    (message(verb="shell_resize", sid="s", learner="l", rows=10 ** 9, cols=80), "rows: expected an integer"),
    (message(verb="shell_input", sid="s", learner="l", data="x", host="n" * 10_000), "host: expected a name"),
    ("x" * (MAX_MESSAGE + 1), "at most"),
    (12, "expected a JSON text"),
])
def test_a_message_that_is_not_well_formed_is_refused(raw, why):
    with pytest.raises(BadEvent, match=why):
        read(raw)


def test_writing_an_undeclared_verb_or_field_or_too_much_is_a_bug():
    with pytest.raises(BadEvent):
        write("shutdown", "a", {})
    with pytest.raises(BadEvent):
        write("reset", "a", {"learner": "l", "why": "x"})
    with pytest.raises(BadEvent, match="larger than"):
        write("shell_input", "a", {"sid": "s", "learner": "l", "data": "\x01" * (MAX_MESSAGE // 4)})


def test_a_handler_gets_checked_fields_and_the_sender(node):
    got = threading.Event()
    seen = []
    node.on("reset", lambda origin, learner: (seen.append((origin, learner)), got.set()))
    node._receive(message(learner="l7").encode())
    assert got.wait(5) and seen == [("b", "l7")]


def test_what_is_not_well_formed_never_reaches_a_handler(node, caplog):
    seen = []
    node.on("reset", lambda **kw: seen.append(kw))
    for raw in [b"nonsense", message(learner=""), message(verb="reset", origin="b", x=1)]:
        node._receive(raw)
    node._workers.shutdown(wait=True)
    assert seen == [] and "not well-formed" in caplog.text


def test_a_node_ignores_its_own_broadcast(node):
    seen = []
    node.on("changed", lambda **kw: seen.append(kw))
    node._receive(message(verb="changed", origin="a", room=True))
    node._workers.shutdown(wait=True)
    assert seen == []


def test_an_ask_gets_the_other_nodes_error_as_its_own(node):
    class Refused(LabnbError):
        pass

    def refuse(origin, learner):
        raise Refused(f"no lab host for {learner} here")
    other = Bus("redis://unused", "b", client=FakeRedis())
    other.on("reset", refuse)
    try:   # a's messages go to b, b's replies to a: the transport both subscribers would be on
        node._redis.on_publish = lambda to, m: other._receive(json.dumps(m)) if to == channel("b") else None
        other._redis.on_publish = lambda to, m: node._receive(json.dumps(m)) if to == channel("a") else None
        with pytest.raises(BusError, match="no lab host for l1 here"):
            node.ask("b", "reset", learner="l1")
        other.on("reset", lambda origin, learner: None)
        assert node.ask("b", "reset", learner="l1") == {}   # done: no error, no answer
        other.on("run_running", lambda origin, learner, lab: {"running": [{"run": "r" * 32, "step": "s"}]})
        assert node.ask("b", "run_running", learner="l1", lab="x") == {"running": [{"run": "r" * 32, "step": "s"}]}
    finally:
        other.close()


def test_an_ask_nobody_answers_says_so(node):
    with pytest.raises(BusError, match="node b did not answer reset within 0.2 s"):
        node.ask("b", "reset", timeout=0.2, learner="l1")
    assert node._waiting == {}


def test_a_flood_is_bounded(node, monkeypatch, caplog):
    release = threading.Event()
    node.on("reset", lambda **kw: release.wait(10))
    for _ in range(busmod.MAX_PENDING + 50):
        node._receive(message())
    assert "messages wait already" in caplog.text
    release.set()


def test_only_declared_verbs_take_handlers(node):
    with pytest.raises(ValueError, match="declare it"):
        node.on("shutdown", lambda **kw: None)
