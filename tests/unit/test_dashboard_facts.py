"""What the instructor's dashboard tells of a learner beside their grid (webapp/workshop/facts.py): the step
that fails now and why, and an early end of their place only once it is near; and the same in the
workshop's state, through the app on fake lab hosts."""
from __future__ import annotations

import pytest

from apps import LAB, OPERATOR, Tab, browser, ready, serving, session_value
from webapp.workshop import room as room_module
from webapp.workshop.facts import early_end, failing, why_failed
from webapp.workshop.room import Room, Times

ADA = "a" * 32


def run(step: str, started: float, status: str = "done", checks=(), exit_code: int | None = 0) -> dict:
    return {"lab": "lab", "step": step, "started": started, "ended": started + 1, "status": status,
            "exit_code": exit_code, "checks": [{"idx": i, "kind": "check", "passed": passed, "hint": hint,
                                                "detail": ""} for i, (passed, hint) in enumerate(checks)]}


def test_the_failing_step_is_the_last_that_failed_and_has_not_passed_since():
    runs = [run("one", 10, "failed", checks=[(False, "make the file")]), run("two", 20, "failed", exit_code=2),
            run("three", 30), run("four", 40, "running", exit_code=None)]
    assert failing(runs) == {"lab": "lab", "step": "two", "why": "failed (exit code 2)", "at": 21}
    assert failing(runs[:1]) == {"lab": "lab", "step": "one", "why": "make the file", "at": 11}
    assert failing(runs[2:]) is None   # passed, or still running: nothing fails


@pytest.mark.parametrize("failed, why", [
    (run("s", 1, "failed", checks=[(True, "first"), (False, "the second check's hint")]), "the second check's hint"),
    (run("s", 1, "failed", checks=[(False, "")]), "its check 1 failed"),
    (run("s", 1, "timed_out", exit_code=None), "timed out"),
    (run("s", 1, "interrupted", exit_code=None), "stopped"),
    (run("s", 1, "failed", exit_code=127), "failed (exit code 127)"),
])
def test_a_failure_is_said_in_a_line(failed, why):
    assert why_failed(failed) == why


def test_an_early_end_is_told_once_the_learner_is_warned_of_it(clock):
    """A tab open and polling moved the end for "no tab open" on each poll: it was always ten minutes away
    and was shown as the learner's end ("gone in 10 min"). It is told once near, as the learner hears of it."""
    clock.into(room_module)
    room = Room(1, Times(duration=4 * 3600, idle=1800, gone=600, warn=300))
    place = room.join(ADA, "Ada")
    for _ in range(20):   # 20 min with a tab open but hidden: it polls
        clock.advance(60)
        room.touch(ADA, active=False)
    left = room.time_left(place, busy=False)
    assert left["why"] == "gone" and left["ends_in_s"] == 600 and early_end(left) is None
    assert left["time_left_s"] == 4 * 3600 - 1200
    clock.advance(360)   # idle for 26 min, a tab still open: the place ends in 4 min for it
    room.touch(ADA, active=False)
    assert early_end(room.time_left(place, busy=False)) == {"why": "idle", "in_s": 240}
    assert early_end(room.time_left(place, busy=True)) is None   # a running command: only the time is up
    room.touch(ADA)   # back at a visible tab, which is then closed: no tab open for 6 min
    clock.advance(360)
    assert early_end(room.time_left(place, busy=False)) == {"why": "gone", "in_s": 240}


def test_the_workshops_state_names_the_failing_step_and_the_current_one(tmp_path):
    with serving(tmp_path, workshop=1, capacity=1, access_code="unit0-code0", workshop_labs=LAB) as app:
        instructor, http = browser(app, OPERATOR), app.test_client()
        page = http.get("/join?code=unit0-code0").text
        token = page.split('name="csrf" value="')[1].split('"')[0]
        http.post("/join", data={"csrf": token, "code": "unit0-code0", "name": "Ada"})
        ready(http)
        tab = Tab(app, http)
        try:
            assert tab.wait_end(tab.run("failing"))["status"] == "failed"
            assert tab.wait_end(tab.run("echo"))["status"] == "done"
        finally:
            tab.close()
        ada = next(l for l in instructor.get("/api/workshop").get_json()["learners"]
                   if l["id"] == session_value(http, "learner"))
        assert ada["current"] == {"lab": LAB, "step": "echo"}
        assert ada["failing"]["step"] == "failing" and ada["failing"]["why"] == (
            "The file nonexistent must exist: create it with touch.")
        assert ada["early_end"] is None and ada["time_left_s"] > 0
