"""The Socket.IO protocol of runs (open, run, attach, ack, stop and what the server sends back), in
process: Flask-SocketIO's test client against the app on a fake lab host. The slow tier's
tests/test_web_protocol.py says the same against the real server."""
from __future__ import annotations

import uuid

import pytest

from apps import LAB, Tab, browser, ready, serving

from webapp.stream import protocol


def test_output_comes_in_order_stored_and_downloadable(app, http, tab):
    run = tab.run("count")
    end = tab.wait_end(run)
    assert end["status"] == "done" and end["exit_code"] == 0 and end["checks"] == []
    seqs = sorted(tab.chunks[run])
    assert seqs == list(range(end["seq"] + 1))
    text = tab.text(run)
    assert [l for l in text.split("\r\n") if l.startswith("line ")] == [f"line {i}" for i in range(1, 6)]
    ends = [tab.chunks[run][s]["end"] for s in seqs]
    assert ends == sorted(ends) and ends[-1] == len(text.encode())
    log = http.get(f"/runs/{run}/log")
    assert log.status_code == 200 and log.data.decode() == text
    assert tab.named("run_started")[0] == {"run": run, "lab": LAB, "step": "count"}
    assert tab.named("run_ended") == [{"run": run, "step": "count"}]
    order = [name for name, m in tab.heard if m and m.get("run") == run]
    assert order.index("run_started") < order.index("output") and order[-2:] == ["end", "run_ended"]


def test_open_says_which_steps_run(app, http, tab):
    run = tab.run("endless")
    try:
        assert Tab(app, http).call("open", {"lab": LAB}) == {"running": [{"run": run, "step": "endless"}]}
    finally:
        tab.call("stop", {"run": run})
        tab.wait_end(run)
    assert tab.call("open", {"lab": LAB}) == {"running": []}


def test_a_failed_check_has_its_hint(tab):
    run = tab.run("failing")
    end = tab.wait_end(run)
    assert end["status"] == "failed"
    assert end["checks"] == [{"idx": 0, "kind": "check", "passed": False, "detail": "",
                              "hint": "The file nonexistent must exist: create it with touch."}]
    assert tab.named("check") == [{"run": run, "idx": 0, "kind": "check", "passed": False, "detail": "",
                                   "hint": "The file nonexistent must exist: create it with touch."}]


def test_stop_ends_an_endless_command_as_done(tab):
    run = tab.run("endless")
    tab.wait(lambda: "waiting" in tab.text(run), "the command's first line")
    assert tab.call("stop", {"run": run}) == {"ok": True}
    assert tab.call("stop", {"run": run}) == {"ok": True}   # a repeated Stop is no error
    end = tab.wait_end(run)
    assert end["status"] == "done" and "[stopped]" in tab.text(run)


def test_a_second_run_while_one_runs_is_refused(tab):
    run = tab.run("endless")
    try:
        reply = tab.call("run", {"lab": LAB, "step": "echo"})
        assert reply == {"error": "run: step 'Until stopped' is still running; stop it first"}
    finally:
        tab.call("stop", {"run": run})
        tab.wait_end(run)


def test_a_second_tab_sees_the_run_start_and_follows_it(app, http, tab):
    other = Tab(app, http)
    try:
        run = tab.run("count")
        started = other.wait(lambda: other.named("run_started"), "run_started in the other tab")
        assert started == [{"run": run, "lab": LAB, "step": "count"}]
        assert other.call("attach", {"run": run, "after": -1, "end": 0})["status"] in ("running", "done")
        tab.wait_end(run)
        assert other.wait_end(run)["status"] == "done"
        assert other.text(run) == tab.text(run)
    finally:
        other.close()


def test_another_learners_run_is_refused(app, tab):
    run = tab.run("echo")
    tab.wait_end(run)
    stranger_http = browser(app)
    stranger = Tab(app, stranger_http)
    try:
        for event, payload in (("attach", {"run": run, "after": -1, "end": 0}), ("stop", {"run": run}),
                               ("ack", {"run": run, "end": 5})):
            assert stranger.call(event, payload) == {"error": f"{event}: you have no run {run}"}
        assert run not in stranger.chunks and run not in stranger.ends
        assert stranger_http.get(f"/runs/{run}/log").status_code == 404
        # nor may a learner name another to read as the instructor does
        watching = stranger.call("attach", {"run": run, "after": -1, "end": 0, "learner": "0" * 32})
        assert "only the instructor" in watching["error"]
    finally:
        stranger.close()


def test_a_late_ack_of_an_ended_run_is_fine(tab):
    run = tab.run("echo")
    end = tab.wait_end(run)
    assert tab.call("ack", {"run": run, "end": tab.chunks[run][end["seq"]]["end"]}) == []


RUN = uuid.uuid4().hex
HOSTILE = [
    ("run", None), ("run", "echo"), ("run", [1, 2]), ("run", {"lab": 1, "step": "echo"}),
    ("run", {"lab": LAB, "step": "x" * 1000}), ("run", {"lab": "../etc", "step": "echo"}),
    ("run", {"lab": LAB, "step": "no-such-step"}), ("run", {"lab": "no-such-lab", "step": "echo"}),
    ("attach", {"run": "'; drop table runs; --", "after": -1, "end": 0}),
    ("attach", {"run": RUN, "after": -1, "end": 0}), ("attach", {"run": RUN, "after": "0", "end": 0}),
    ("attach", {"run": RUN, "after": -5, "end": 0}), ("attach", {"run": RUN, "after": 0, "end": True}),
    ("ack", {"run": RUN, "end": 10}), ("ack", {"run": RUN, "end": 1e300}),
    ("stop", {"run": RUN}), ("stop", {}), ("open", {"lab": "nope"}), ("no-such-event", {"a": 1}),
    ("shell_input", {"data": "ls\n"}), ("shell_resize", {"rows": 1, "cols": 80}),
]


@pytest.fixture(scope="module")
def one_tab(tmp_path_factory):
    """One tab for the hostile events: each must leave its connection working for the next."""
    with serving(tmp_path_factory.mktemp("hostile")) as app:
        http = browser(app)
        ready(http)
        tab = Tab(app, http)
        yield tab
        tab.close()


@pytest.mark.parametrize("event,payload", HOSTILE, ids=[f"{e}-{i}" for i, (e, _) in enumerate(HOSTILE)])
def test_hostile_events_get_errors(one_tab, event, payload):
    tab = one_tab
    reply = tab.call(event, *(() if payload is None else (payload,)))
    assert isinstance(reply, dict) and reply["error"].startswith(f"{event}: " if event in protocol.TO_SERVER
                                                                 else "unknown event"), reply
    errors = tab.named("error")
    assert errors and errors[-1]["message"] == reply["error"]
    assert tab.call("open", {"lab": LAB}) == {"running": []}   # and the connection still works


def test_runs_per_minute_are_limited(tmp_path):
    with serving(tmp_path, runs_per_minute=2) as app:
        http = browser(app)
        ready(http)
        tab = Tab(app, http)
        for _ in range(2):
            tab.wait_end(tab.run("echo"))
        reply = tab.call("run", {"lab": LAB, "step": "echo"})
        assert "LABNB_RUNS_PER_MINUTE" in reply["error"], reply
        tab.close()

