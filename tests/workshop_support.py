"""Helpers of the workshop tests: a workshop server, and a learner's and
the instructor's moves, as their browsers make them."""
from __future__ import annotations

import html
import re

import pytest
import requests
from playwright.sync_api import sync_playwright

from web_support import CHROMIUM_ARGS, TEST_LAB, Server, _state_dir

CODE = "abcde-23456"
# seconds a join may take to answer: long enough for a burst of joins at once on an emulated VM
# (test_wrong_codes_are_limited_per_address)
JOIN_TIMEOUT = 60


def workshop_server(name: str, uid_slot: int, capacity: int, **env) -> Server:
    """A workshop of the test lab for ``capacity`` learners at once (uid slots from ``uid_slot``)."""
    return Server(_state_dir(name), uid_slot=uid_slot, pool_size=capacity, env={
        "LABNB_WORKSHOP": "1", "LABNB_CAPACITY": str(capacity), "LABNB_ACCESS_CODE": CODE,
        "LABNB_WORKSHOP_LABS": TEST_LAB, "LABNB_MAX_LAB_HOSTS": str(capacity + 2),
        **{f"LABNB_{k.upper()}": str(v) for k, v in env.items()},
    })


def join(room, name: str, code: str = CODE) -> tuple[requests.Session, requests.Response]:
    """A new browser that opens the join URL and sends the form, as a learner does."""
    http = requests.Session()
    page = http.get(f"{room.url}/join?code={code}", timeout=JOIN_TIMEOUT)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = http.post(f"{room.url}/join", data={"csrf": csrf, "code": code, "name": name}, timeout=JOIN_TIMEOUT)
    r.page = html.unescape(r.text)
    return http, r


def seated(room, name: str) -> requests.Session:
    http, r = join(room, name)
    assert r.status_code == 200 and r.url.endswith(f"/labs/{TEST_LAB}"), (r.url, r.text[-500:])
    return http


def csrf(room, http) -> dict:
    return {"X-CSRF-Token": room.csrf(http)}


def api(room, http) -> dict:
    r = http.get(f"{room.url}/api/workshop", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def me(room, http, name: str) -> dict:
    return next(learner for learner in api(room, http)["learners"] if learner["name"] == name)


def act(room, http, learner_id: str, action: str, headers: dict | None = None) -> requests.Response:
    headers = headers if headers is not None else csrf(room, http)
    return http.post(f"{room.url}/workshop/learners/{learner_id}/{action}", headers=headers, timeout=60)


def running_lab_hosts(room, instructor) -> list[str]:
    """The ids of the lab hosts running on the server's state dir, as its /lab-hosts page lists them."""
    return lab_hosts(room, instructor)[0]


def lab_hosts(room, instructor) -> tuple[list[str], int]:
    """The running lab hosts' ids and how many of them wait ready in the warm pool, from one /lab-hosts
    page: a count alone also matches a moment when one is still going and its replacement is coming."""
    page = instructor.get(f"{room.url}/lab-hosts", timeout=10).text
    return (re.findall(r"<tr><td>([^<]+)</td><td>[^<]*</td><td>[^<]*</td><td>running</td></tr>", page),
            int(re.search(r'data-waiting="(\d+)"', page).group(1)))


def end_every_place(room, instructor) -> None:
    """What a test leaves in the room goes: the instructor ends every place and wait."""
    for learner in api(room, instructor)["learners"]:
        if learner["place"] != "ended":
            act(room, instructor, learner["id"], "end").raise_for_status()


@pytest.fixture
def browser():
    """Debian's chromium, for several browser contexts at once (an instructor and learners); one per test, so
    that a failed test's pages close with it rather than load the server for the tests after it."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def new_page(browser, errors: list, context=None):
    """A page in a browser context of its own (a person's own browser) or in ``context``, its dialogs
    accepted (the confirmations of Leave, Reset and End), its script errors collected in ``errors``."""
    page = (context or browser.new_context()).new_page()
    page.set_default_timeout(30_000)
    # a lab page loads about 1.3 MB of scripts: in an emulated VM, beside other pages, that took over 30 s
    page.set_default_navigation_timeout(120_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def join_in_browser(page, room, name: str) -> None:
    page.goto(f"{room.url}/join?code={CODE}")
    page.fill("input[name=name]", name)
    page.click(".join-form button[type=submit]")
