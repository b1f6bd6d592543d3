"""A workshop place's time against the real server, with limits of seconds:
the warning and the learner's extension, the end when time is up (the lab
host goes, the notebook stays, no second place), the early end of an idle
learner (who may come back), a running command that keeps a silent learner
from being idle, and the end of the workshop."""
from __future__ import annotations

import time

import pytest
import requests

from playwright.sync_api import expect

from web_support import TEST_LAB, ShellTab, Tab, serving, wait_for
from workshop_support import (CODE, api, browser, csrf, end_every_place, join_in_browser, me, new_page,
                              running_lab_hosts, seated, workshop_server)

LONG = 120_000   # ms: a lab host starting while other tests run

# minutes: a place lasts 30 s, or 12 s after the learner's last activity; the warning comes 6 s before
TIMES = {"max_minutes": 0.5, "idle_minutes": 0.2, "gone_minutes": 0, "warn_minutes": 0.1,
         "extend_minutes": 0.1, "extend_most_minutes": 0.1}


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("workshop-time", uid_slot=0, capacity=2, **TIMES))


# A page comes alive (its scripts run, its tab says "here") seconds after its request, which was
# the learner's last activity: about 15 s in an emulated VM. The browser's room allows 30 s of that,
# and its place (45 s) is longer than that, so only the tab's beats keep the learner from being idle.
BROWSER_TIMES = {**TIMES, "max_minutes": 0.75, "idle_minutes": 0.5, "warn_minutes": 0.15}


@pytest.fixture(scope="module")
def instructor(room):
    return room.operator()


@pytest.fixture(scope="module")
def browser_room():
    yield from serving(workshop_server("workshop-time-browser", uid_slot=4, capacity=1, **BROWSER_TIMES))


@pytest.fixture(autouse=True)
def empty_room(room, instructor):
    yield
    end_every_place(room, instructor)


def fragment(room, http) -> str:
    """The learner's room bar, as its poll fetches it (a sign of an open tab, not activity)."""
    return http.get(f"{room.url}/workshop/me", timeout=10).text


def test_time_up_after_a_warning_and_one_extension(room, instructor):
    http = seated(room, "Alice")
    room.open_lab(http)
    alice_host = me(room, instructor, "Alice")["host"]["host"]
    headers = csrf(room, http)

    def keep_active():   # a visible tab: what static/workshop.js sends every minute
        http.post(f"{room.url}/workshop/here", headers=headers, timeout=10)
    alice = me(room, instructor, "Alice")
    # less than the 30 s place by as long as joining and the lab host took (over 10 s in an emulated VM)
    assert 0 < alice["time_left_s"] <= 30 and alice["ends_because"] == "idle" and alice["ends_in_s"] <= 12
    page = fragment(room, http)
    assert "Time left" in page and "Extend by" not in page and "away" not in page

    def warned():
        keep_active()
        page = fragment(room, http)
        return "Extend by" in page and page
    page = wait_for(warned, 40, 0.5, what="the warning")
    assert 'class="time warn"' in page and "Time left" in page
    r = http.post(f"{room.url}/workshop/extend", headers=headers, timeout=10)
    assert r.status_code == 200 and me(room, instructor, "Alice")["extended_s"] == 6
    assert http.post(f"{room.url}/workshop/extend", headers=headers, timeout=10).status_code == 400

    def ended():
        keep_active()
        return me(room, instructor, "Alice")["place"] == "ended"
    wait_for(ended, 40, 0.5, what="the end of Alice's time")
    alice = me(room, instructor, "Alice")
    assert alice["ended_because"] == "your time in the workshop is up"
    wait_for(lambda: alice_host not in running_lab_hosts(room, instructor), 30, 0.5, what="Alice's lab host to go")
    page = http.get(f"{room.url}/join", timeout=10).text
    assert "your time in the workshop is up" in page and "Take a place again" not in page
    assert http.get(f"{room.url}/labs/{TEST_LAB}/export.md", timeout=10).status_code == 200


def test_an_idle_learner_is_warned_then_freed_and_may_come_back(room, instructor):
    http = seated(room, "Bob")
    room.open_lab(http)
    page = wait_for(lambda: "You seem to be away" in (p := fragment(room, http)) and p, 30, 0.5,
                    what="the idle warning")
    assert "I'm here" in page
    wait_for(lambda: me(room, instructor, "Bob")["place"] == "ended", 30, 0.5, what="Bob's idle end")
    assert "away too long" in me(room, instructor, "Bob")["ended_because"]
    page = http.get(f"{room.url}/join", timeout=10).text
    assert "Take a place again" in page
    token = page.split('name="csrf" value="')[1].split('"')[0]
    r = http.post(f"{room.url}/join", data={"csrf": token, "name": "Bob"}, timeout=10)
    assert r.url.endswith(f"/labs/{TEST_LAB}")
    room.open_lab(http)   # a fresh lab host
    assert me(room, instructor, "Bob")["place"] == "seated"


def test_a_running_command_is_activity(room, instructor):
    """A long step is work, even held by a tab that takes nothing in (an endless one is not: test_runs_plain.py)."""
    http = seated(room, "Carol")
    room.open_lab(http)
    tab = Tab(room, http, ack=False)   # a silent tab: it does not even take the output in
    try:
        run = tab.run("flood")
        time.sleep(16)   # longer than the idle limit
        carol = me(room, instructor, "Carol")
        assert carol["place"] == "seated" and carol["running"], carol
        tab.client.call("stop", {"run": run}, timeout=10)
    finally:
        tab.close()   # what the stopped flood left unread is no longer held for this tab
    wait_for(lambda: not me(room, instructor, "Carol")["running"], 60, 0.5, what="the stopped flood to end")


def test_a_command_in_the_terminal_panel_is_activity(room, instructor):
    """A learner whose command prints in their terminal panel, with no lab page visible, is not idle."""
    http = seated(room, "Dora")
    room.open_lab(http)
    with ShellTab(room, http) as shell:
        assert shell.open() == {"ok": True}
        shell.type("while sleep 1; do echo tick-$((3*3)); done\n")
        shell.wait_text("tick-9")
        time.sleep(16)   # longer than the idle limit
        assert me(room, instructor, "Dora")["place"] == "seated"


def test_leaving_just_before_the_end_gains_no_time(room, instructor):
    """Found by a hostile review: leaving a second before the end, then taking a place again, gave a fresh one."""
    http = seated(room, "Trudy")
    headers = csrf(room, http)

    def near_the_end():
        http.post(f"{room.url}/workshop/here", headers=headers, timeout=10)   # active: no idle end
        return (me(room, instructor, "Trudy")["time_left_s"] or 99) <= 16
    wait_for(near_the_end, 40, 0.5, what="the end to near")
    http.post(f"{room.url}/workshop/leave", headers=headers, timeout=10)
    page = http.get(f"{room.url}/join", timeout=10).text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    http.post(f"{room.url}/join", data={"csrf": token, "name": "Trudy"}, timeout=10)
    trudy = me(room, instructor, "Trudy")
    assert trudy["place"] == "seated" and trudy["time_left_s"] <= 16, trudy   # back with what she had left

    def ended():
        http.post(f"{room.url}/workshop/here", headers=headers, timeout=10)
        return me(room, instructor, "Trudy")["place"] == "ended"
    wait_for(ended, 30, 0.5, what="the end of Trudy's time")
    assert me(room, instructor, "Trudy")["ended_because"] == "your time in the workshop is up"
    page = http.get(f"{room.url}/join", timeout=10).text
    assert "your time in the workshop is up" in page and "Take a place again" not in page


@pytest.mark.slow
def test_the_end_of_time_in_a_browser(browser_room, browser):
    """A learner on the lab page (a visible tab: never idle) is warned, extends once, and is shown the end."""
    errors = []
    page = new_page(browser, errors)
    join_in_browser(page, browser_room, "Fay")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    expect(page.locator("#room .time")).to_contain_text("Time left")
    page.locator("#room button.extend").click(timeout=60_000)
    expect(page.locator("#room")).to_contain_text("ask the instructor for more time", timeout=40_000)
    expect(page.locator(".ended")).to_contain_text("your time in the workshop is up", timeout=40_000)
    fay = me(browser_room, browser_room.operator(), "Fay")
    assert fay["extended_s"] == 6 and fay["ended_because"] == "your time in the workshop is up"
    assert not errors, errors


def test_the_instructor_ends_the_workshop(room, instructor):
    """Last in this module: nobody may join after it."""
    http = seated(room, "Dave")
    room.open_lab(http)
    dave_host = me(room, instructor, "Dave")["host"]["host"]
    r = instructor.post(f"{room.url}/workshop/end", headers=csrf(room, instructor), timeout=60)
    assert r.json() == {"ok": True}
    state = api(room, instructor)
    assert state["workshop"]["over"] and all(learner["place"] == "ended" for learner in state["learners"])
    wait_for(lambda: dave_host not in running_lab_hosts(room, instructor), 30, 0.5, what="Dave's lab host to go")
    assert "the workshop is over" in http.get(f"{room.url}/join", timeout=10).text
    page = requests.get(f"{room.url}/join?code={CODE}", timeout=10).text
    assert "This workshop is over" in page and "<form" not in page
