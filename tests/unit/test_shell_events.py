"""The terminal panel's Socket.IO events (shell_open, shell_input, shell_resize, shell_ack; shell_output and
shell_exit back), in process on a fake lab host, whose shell is a bash of this machine. The slow tier's
tests/test_web_shell.py says the same against the real server."""
from __future__ import annotations

import pytest

from apps import LAB, Tab, browser, ready, serving, services, session_value

from webapp.shells.manager import SHELL_WINDOW


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("shells"), new_learners_per_address=1000) as app:
        yield app


@pytest.fixture
def http(app):
    http = browser(app)
    ready(http)
    yield http
    services(app).learners.end(session_value(http, "learner"))   # its lab host goes: the next test's may come


def typed(tab: Tab, line: str, shows: str, term: str = "") -> None:
    tab.send("shell_input", {"data": line + "\n", **({"term": term} if term else {})})
    tab.wait(lambda: shows in tab.screen(term), f"{shows!r} in terminal {term or 'the shell'}")


def test_a_shell_opens_and_answers(tab):
    assert tab.call("shell_open", {"lab": LAB, "rows": 30, "cols": 100}) == {"ok": True}
    typed(tab, "echo hi-$((6*7)); stty size", "hi-42")
    tab.wait(lambda: "30 100" in tab.screen(), "the terminal's size")
    first = tab.named("shell_output")[0]
    assert first["term"] == "" and first["replay"] is True   # the backlog comes first, to be shown whole
    assert tab.call("shell_resize", {"rows": 20, "cols": 60}) == []
    typed(tab, "stty size", "20 60")


def test_a_second_tab_gets_the_backlog_and_the_same_shell(app, http, tab):
    tab.call("shell_open", {"lab": LAB})
    typed(tab, "export MARK=one-$((1+1))", "")
    typed(tab, "echo $MARK", "one-2\r\n")
    other = Tab(app, http)
    try:
        assert other.call("shell_open", {"lab": LAB}) == {"ok": True}
        other.wait(lambda: "one-2" in other.screen(), "the backlog")
        typed(other, "echo $MARK-again", "one-2-again")
        tab.wait(lambda: "one-2-again" in tab.screen(), "the first tab to see what the second typed")
    finally:
        other.close()


def test_input_before_open_and_bad_sizes_are_refused(tab):
    assert tab.call("shell_input", {"data": "ls\n"}) == {"error": "shell_input: open the terminal first (shell_open)"}
    assert "rows" in tab.call("shell_open", {"lab": LAB, "rows": 1})["error"]
    assert tab.call("shell_open", {"lab": LAB, "term": "t9"}) == {
        "error": "shell_open: lab 80-unit has no terminal 't9'"}
    assert "there is no lab" in tab.call("shell_open", {"lab": "no-such-lab"})["error"]


def test_another_learners_tab_reaches_only_its_own_shell(app, tab):
    tab.call("shell_open", {"lab": LAB})
    typed(tab, "echo mine-$((3*3))", "mine-9")
    stranger_http = browser(app)
    ready(stranger_http)
    stranger = Tab(app, stranger_http)
    try:
        assert stranger.call("shell_input", {"data": "echo theirs\n"})["error"].endswith("open the terminal first "
                                                                                         "(shell_open)")
        assert stranger.call("shell_open", {"lab": LAB}) == {"ok": True}
        stranger.wait(lambda: stranger.named("shell_output"), "the stranger's own shell")
        assert "mine-9" not in stranger.screen()
    finally:
        stranger.close()
        services(app).learners.end(session_value(stranger_http, "learner"))


def test_a_named_terminal_is_a_stream_of_its_own(tab):
    assert tab.call("shell_open", {"lab": LAB, "term": "t1"}) == {"ok": True}
    typed(tab, "echo in-t1-$((5*5))", "in-t1-25", term="t1")
    assert "in-t1-25" not in tab.screen()


def test_a_shell_that_ends_says_so(tab):
    tab.call("shell_open", {"lab": LAB})
    tab.send("shell_input", {"data": "exit\n"})
    tab.wait(lambda: tab.named("shell_exit"), "shell_exit")
    assert tab.named("shell_exit")[0] == {"term": ""}
    reply = tab.call("shell_input", {"data": "ls\n"})
    assert "the shell has ended" in reply["error"]
    assert tab.call("shell_open", {"lab": LAB}) == {"ok": True}   # a new one
    typed(tab, "echo again-$((2+2))", "again-4")


def test_a_tab_that_does_not_acknowledge_holds_the_shell_within_its_window(app, http):
    """The shell's PTY is read only a window ahead of the furthest tab: a flood waits in the kernel."""
    tab = Tab(app, http, ack=False)
    try:
        tab.call("shell_open", {"lab": LAB})
        joined = tab.wait(lambda: tab.named("shell_output"), "the backlog")[0]["end"]
        fanout = services(app).shells.shells[session_value(http, "learner"), ""].fanout
        tab.send("shell_input", {"data": "head -c 3000000 /dev/zero | tr '\\0' y; echo; echo END-$((6*7))\n"})
        tab.wait(lambda: fanout.total >= SHELL_WINDOW, "a window's worth of output")
        assert fanout.total <= joined + SHELL_WINDOW and "END-42" not in tab.screen()
        tab.ack = True
        tab.send("shell_ack", {"end": tab.named("shell_output")[-1]["end"]})
        tab.wait(lambda: "END-42" in tab.screen(), "the rest once acknowledged")
    finally:
        tab.close()
