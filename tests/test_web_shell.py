"""The terminal panel's shell over Socket.IO, with a real python-socketio
client against the real server (gunicorn, sandbox lab hosts): typing, resize,
the backlog for a second tab, flow control, one shell per learner, hostile
events, and a lab host reset ending the shell.

python-socketio's client may handle events out of order (a thread each), so
tests look for markers that only the shell's output can contain (the typed
line shows ``$((6*7))``, the output ``42``)."""
from __future__ import annotations

import threading
import time

import pytest

from web_support import SHELL_IDLE_TIMEOUT, TEST_LAB, ShellTab, wait_for

from webapp.executor.process import DEFAULT_WINDOW, READ_SIZE
from webapp.executor.terminal import RECENT
from webapp.shells.manager import SHELL_WINDOW
from webapp.stream.protocol import MAX_INPUT
from webapp.shells.fanout import BACKLOG, TAB_WINDOW


@pytest.fixture
def tab(web_server, learner):
    t = ShellTab(web_server, learner)
    assert t.open() == {"ok": True}
    yield t
    t.close()


def test_type_and_see_the_output_then_resize(tab):
    tab.type("echo labnb-$((6*7))\n")
    tab.wait_text("labnb-42")
    assert tab.client.call("shell_resize", {"rows": 30, "cols": 100}, timeout=10) is None
    tab.type("echo size-$(stty size | tr ' ' x)\n")
    tab.wait_text("size-30x100")


def test_a_second_tab_gets_the_backlog_then_shares_the_shell(web_server, learner, tab):
    tab.type("echo before-$((2*3))\n")
    tab.wait_text("before-6")
    other = ShellTab(web_server, learner)
    try:
        assert other.open() == {"ok": True}
        first = wait_for(lambda: other.messages, 10, what="the backlog")[0]
        assert first.get("replay") is True and b"before-6" in first["data"]
        other.type("echo from-other-$((3*3))\n")
        tab.wait_text("from-other-9")      # the same shell, seen by both tabs
        other.wait_text("from-other-9")
    finally:
        other.close()


def test_a_tab_that_does_not_acknowledge_holds_the_shell(web_server, learner):
    slow = ShellTab(web_server, learner, ack=False)
    try:
        assert slow.open() == {"ok": True}
        slow.type("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo flood-$((5*5))\n")
        wait_for(lambda: slow.unacked >= SHELL_WINDOW // 2, 20, what="some of the flood")
        threading.Event().wait(1.0)      # time for more, were it not held
        with slow.lock:
            sent = slow.unacked
        # what was read from the PTY beyond the window is one read at most, plus the backlog
        assert sent <= SHELL_WINDOW + READ_SIZE + (64 << 10), sent
        assert "flood-25" not in slow.text()
        slow.ack = True
        slow.ack_all()
        slow.wait_text("flood-25", 60)
    finally:
        slow.close()


def test_a_slow_tab_skips_ahead_and_does_not_hold_a_fast_one(web_server, learner, tab):
    slow = ShellTab(web_server, learner, ack=False)
    try:
        assert slow.open() == {"ok": True}
        tab.type("head -c 4000000 /dev/zero | tr '\\0' x; echo; echo flood-$((6*6))\n")
        tab.wait_text("flood-36", 60)         # the fast tab sets the pace
        owed = slow.ack_all()
        assert owed <= TAB_WINDOW + READ_SIZE + BACKLOG, owed
        assert "flood-36" not in slow.text()
        slow.ack = True
        text = slow.wait_text("flood-36", 30)  # the rest, from the backlog
        assert "bytes of output skipped: this tab fell behind" in text
    finally:
        slow.close()


def test_each_learner_has_their_own_shell(web_server, learner, tab):
    stranger_http = web_server.learner()
    web_server.open_lab(stranger_http)
    stranger = ShellTab(web_server, stranger_http)
    try:
        # before opening: nothing to type into, least of all someone else's shell
        for event, payload in (("shell_input", {"data": "echo intruder-$((1+1))\n"}),
                               ("shell_resize", {"rows": 10, "cols": 10}), ("shell_ack", {"end": 5})):
            reply = stranger.client.call(event, payload, timeout=10)
            assert reply == {"error": f"{event}: open the terminal first (shell_open)"}
        assert stranger.open() == {"ok": True}
        stranger.type("echo stranger-$((1+1))\n")
        stranger.wait_text("stranger-2")
        tab.type("echo owner-$((2+2))\n")
        tab.wait_text("owner-4")
        assert "stranger-2" not in tab.text() and "intruder-2" not in tab.text()
        assert "owner-4" not in stranger.text()
    finally:
        stranger.close()


HOSTILE = [
    ("shell_open", None), ("shell_open", "90-web-test"), ("shell_open", {"lab": 1}),
    ("shell_open", {"lab": "nope"}), ("shell_open", {"lab": "x" * 1000}),
    ("shell_open", {"lab": TEST_LAB, "rows": 1}), ("shell_open", {"lab": TEST_LAB, "cols": "80"}),
    ("shell_input", None), ("shell_input", {"data": 5}), ("shell_input", {"data": ["ls"]}),
    ("shell_input", {"data": "x" * (MAX_INPUT + 1)}), ("shell_input", {"data": "é" * (MAX_INPUT // 2 + 1)}),
    ("shell_resize", {"rows": 1, "cols": 80}), ("shell_resize", {"rows": 24, "cols": 1001}),
    ("shell_resize", {"rows": True, "cols": 80}), ("shell_resize", [24, 80]), ("shell_resize", {"rows": 24}),
    ("shell_ack", {"end": -1}), ("shell_ack", {"end": "1"}), ("shell_ack", {"end": 1e300}),
    ("shell_ack", {"bytes": 5}),
    ("shell_ack", {}),
    ("shell_open", {"lab": TEST_LAB, "term": 5}), ("shell_open", {"lab": TEST_LAB, "term": "b1"}),
    ("shell_input", {"term": "x" * 1000, "data": "x"}), ("shell_ack", {"term": "b1", "end": 0}),
    ("shell_open", {"lab": TEST_LAB, "learner": "someone-else"}), ("shell_ack", {"learner": "someone", "end": 0}),
]


def test_a_shell_no_tab_shows_is_ended_after_the_idle_timeout(web_server):
    http = web_server.learner()
    web_server.open_lab(http)
    first = ShellTab(web_server, http)
    try:
        assert first.open() == {"ok": True}
        first.type("echo kept-$((4*4))\n")
        first.wait_text("kept-16")
    finally:
        first.close()
    time.sleep(SHELL_IDLE_TIMEOUT / 2)
    back = ShellTab(web_server, http)    # back within the timeout: the same shell, its backlog replayed
    try:
        assert back.open() == {"ok": True}
        back.wait_text("kept-16")
    finally:
        back.close()
    time.sleep(SHELL_IDLE_TIMEOUT * 1.5)
    late = ShellTab(web_server, http)    # after it: a new shell, which says why
    try:
        assert late.open() == {"ok": True}
        text = late.wait_text("this is a new one")
        assert "kept-16" not in text and "ended after" in text
        late.type("echo new-$((5*5))\n")
        late.wait_text("new-25")
    finally:
        late.close()


def test_hostile_events_get_errors_and_the_shell_goes_on(tab):
    for event, payload in HOSTILE:
        args = () if payload is None else (payload,)
        reply = tab.client.call(event, *args, timeout=10)
        assert isinstance(reply, dict) and reply.get("error", "").startswith(event + ": "), (event, payload, reply)
    wait_for(lambda: len(tab.errors) >= len(HOSTILE), 10, what="the error events")
    # input of exactly the limit is taken (a comment line, then ^U clears it)
    assert tab.client.call("shell_input", {"data": "#" + "y" * (MAX_INPUT - 1)}, timeout=30) is None
    tab.type("\x15echo still-$((7+7))\n")
    tab.wait_text("still-14", 30)


def test_a_reset_of_the_lab_host_ends_the_shell(web_server, learner, tab):
    """Last in this module: the learner gets a new lab host, and a new shell on it."""
    tab.type("echo host-$((1+0))ok\n")
    tab.wait_text("host-1ok")
    token = web_server.csrf(learner)
    r = learner.post(f"{web_server.url}/labs/{TEST_LAB}/host/reset", headers={"X-CSRF-Token": token}, timeout=10)
    assert r.status_code == 200
    wait_for(lambda: tab.exits, 20, what="shell_exit")
    reply = tab.client.call("shell_input", {"data": "echo gone\n"}, timeout=10)
    assert "ended" in reply["error"]
    web_server.open_lab(learner)
    assert tab.open() == {"ok": True}
    tab.type("echo again-$((8*8))\n")
    tab.wait_text("again-64")


LAB_1 = "01-network-modes"


@pytest.fixture(scope="module")
def in_lab_1(web_server):
    """A learner with lab 1 open, whose step "two-containers" left container b1's shell in terminal b1."""
    return web_server.learner_who_ran(LAB_1, "two-containers")


def test_a_named_terminal_shows_what_a_step_typed_and_takes_input(web_server, in_lab_1):
    b1 = ShellTab(web_server, in_lab_1, lab=LAB_1, term="b1")
    try:
        assert b1.open(rows=30, cols=100) == {"ok": True}
        first = wait_for(lambda: b1.messages, 10, what="the backlog")[0]
        assert first.get("replay") is True and b"inet addr:172.17.0.2" in first["data"]   # the step's ifconfig
        assert b"\x1b]777" not in first["data"]   # the markers that end a step's commands are not shown
        b1.type("echo typed-$((6*7)); ifconfig eth0\r")
        text = b1.wait_text("typed-42")
        wait_for(lambda: b1.text().count("inet addr:172.17.0.2") == 2, 10, what="ifconfig's output, typed")
        assert "typed-42" in text
    finally:
        b1.close()


def test_only_the_labs_own_terminals_open(web_server, in_lab_1, learner):
    stranger = ShellTab(web_server, learner, term="b1")   # the test lab has no terminal b1
    try:
        assert "has no terminal 'b1'" in stranger.open()["error"]
        assert "open the terminal first" in stranger.client.call("shell_input", {"term": "b1", "data": "x"},
                                                                 timeout=10)["error"]
    finally:
        stranger.close()


def test_a_tab_that_does_not_acknowledge_holds_a_named_terminal(web_server, in_lab_1):
    """Between runs, what the learner makes a named terminal print is held by the kernel as the shell's is."""
    slow = ShellTab(web_server, in_lab_1, ack=False, lab=LAB_1, term="b2")
    try:
        assert slow.open() == {"ok": True}
        wait_for(lambda: "]#" in slow.text(), 20, what="b2's prompt")
        slow.type("head -c 4000000 /dev/zero | tr '\\0' x; echo; echo flood-$((5*5))\r")
        wait_for(lambda: slow.unacked >= DEFAULT_WINDOW // 2, 20, what="some of the flood")
        threading.Event().wait(1.0)      # time for more, were it not held
        with slow.lock:
            sent = slow.unacked
        assert sent <= DEFAULT_WINDOW + READ_SIZE + RECENT, sent
        assert "flood-25" not in slow.text()
        shell = ShellTab(web_server, in_lab_1, lab=LAB_1)   # the free shell, on the same lab host
        try:
            assert shell.open() == {"ok": True}
            shell.type("pgrep -x head >/dev/null && echo still-$((4*4))-writing\n")
            shell.wait_text("still-16-writing")   # the flood's writer is held, not done
        finally:
            shell.close()
        slow.ack = True
        slow.ack_all()
        slow.wait_text("flood-25", 60)
    finally:
        slow.close()
