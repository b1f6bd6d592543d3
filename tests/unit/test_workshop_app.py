"""A workshop's rules through the app (webapp/workshop/views.py, RoomSeating, the events' gate), in process on
fake lab hosts: joining with the access code and a name, the full room's queue, what a learner without a
place may not reach (pages, WebSockets, events), the instructor's pages and actions, watching a learner's
terminal, the dashboard pushed. The slow tier's tests/test_workshop.py says the same against the real server."""
from __future__ import annotations

import html
import re

import pytest

from apps import LAB, OPERATOR, Tab, browser, csrf, lab_host, ready, serving, services, session_value, upgrade

CODE = "unit0-code0"


@pytest.fixture
def app(tmp_path):
    with serving(tmp_path, workshop=1, capacity=2, access_code=CODE, workshop_labs=LAB, join_attempts=3,
                 memory_mb=64) as app:
        yield app


@pytest.fixture
def instructor(app):
    return browser(app, OPERATOR)


def join(app, name: str, code: str = CODE, http=None):
    """A browser (new, or ``http``) that opens the join page and sends its form; and the answer."""
    http = http or app.test_client()
    page = http.get(f"/join?code={code}")
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return http, http.post("/join", data={"csrf": token, "code": code, "name": name})


def seated(app, name: str):
    http, r = join(app, name)
    assert r.status_code == 303 and http.get("/join").headers["Location"] == f"/labs/{LAB}", r.text
    return http


def text(r) -> str:
    return html.unescape(r.text)


def place(app, http) -> str:
    return services(app).workshop.room.get(session_value(http, "learner")).state


def test_join_takes_the_code_and_a_name(app):
    http, r = join(app, "x" * 41)
    assert r.status_code == 400 and "at most 40 characters" in text(r)
    assert r.headers["Referrer-Policy"] == "same-origin" and "frame-ancestors 'none'" in r.headers[
        "Content-Security-Policy"]
    assert join(app, "   ")[1].status_code == 400 and "type a name" in text(join(app, "   ")[1])
    for code in ("wrong-code1", ""):
        http, r = join(app, "Ada", code=code)
        assert r.status_code == 403 and "not this workshop's access code" in text(r)
        assert http.get("/").status_code == 403   # no session from a wrong code
    http = seated(app, "Ada <b>Lovelace</b>")
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in http.get(f"/labs/{LAB}").text
    assert place(app, http) == "seated"
    assert http.get(f"/join?code={CODE}").headers["Location"] == f"/labs/{LAB}"   # this browser stays Ada


def test_wrong_codes_are_limited_per_address(app):
    statuses = [join(app, "Mallory", code=f"guess-{n:05d}")[1].status_code for n in range(4)]
    assert statuses == [403, 403, 403, 429]
    _, r = join(app, "Mallory")
    assert r.status_code == 429 and "wrong access codes" in text(r)
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert join(app, "Grace", http=elsewhere)[1].status_code == 303


def test_a_learner_without_a_place_reaches_no_lab_page_websocket_or_lab_host(app):
    """The server token signs a browser in, but it must still join with the access code and a name."""
    http = browser(app)
    r = http.get(f"/labs/{LAB}")
    assert r.status_code == 303 and r.headers["Location"] == "/join"
    refused = upgrade(http)
    assert refused.status_code == 403 and "have not joined this workshop" in refused.text
    assert services(app).learners.peek(session_value(http, "learner")) is None
    assert 'name="code"' in http.get("/join").text   # the token is not this workshop's access code: it is asked


def test_a_full_room_queues_and_seats_the_next_when_one_leaves(app):
    first, second = seated(app, "Frances"), seated(app, "Edsger")
    ready(first)
    tab = Tab(app, first)   # a tab Frances leaves open
    third, r = join(app, "Niklaus")
    assert r.status_code == 303 and "number 1</strong> in the queue" in third.get("/join").text
    fourth, _ = join(app, "Tony")
    assert "number 2</strong> in the queue" in fourth.get("/join").text
    assert third.get(f"/labs/{LAB}").status_code == 303
    assert upgrade(third).status_code == 403 and "in the queue" in upgrade(third).text
    counts = services(app).workshop.room.counts()
    assert (counts["seated"], counts["waiting"]) == (2, 2)
    try:
        r = first.post("/workshop/leave", headers={**csrf(first), "HX-Request": "true"})
        assert r.headers["HX-Redirect"] == "/join"
        assert third.get("/join/wait", headers={"HX-Request": "true"}).headers["HX-Redirect"] == f"/labs/{LAB}"
        ready(third)
        assert "number 1</strong> in the queue" in fourth.get("/join").text
        # Frances's place has ended: her notebook is kept, her lab pages and her open tab start nothing
        assert "Your place in this workshop has ended" in first.get("/join").text
        assert first.get(f"/labs/{LAB}/export.md").status_code == 200
        assert first.get(f"/labs/{LAB}").status_code == 303
        reply = tab.call("run", {"lab": LAB, "step": "echo"})
        assert "your place in this workshop has ended: you left the workshop" in reply["error"], reply
        assert "has ended" in first.get(f"/join?code={CODE}").text   # and joining again from it does not seat her
    finally:
        tab.close()


INSTRUCTOR_ONLY = [("GET", "/workshop"), ("GET", "/api/workshop"), ("GET", "/workshop/export.zip"),
                   ("GET", f"/workshop/learners/{{other}}/labs/{LAB}"), ("POST", "/workshop/broadcast"),
                   ("POST", "/workshop/banner/clear"), ("POST", "/workshop/end")] + [
                  ("POST", f"/workshop/learners/{{other}}/{a}") for a in ("reset", "end", "hand-seen", "extend")]


def test_instructor_actions_are_the_instructors(app, instructor):
    grace, alan = seated(app, "Grace"), seated(app, "Alan")
    alan_id = session_value(alan, "learner")
    for method, path in INSTRUCTOR_ONLY:
        url = path.format(other=alan_id)
        anonymous = app.test_client().open(url, method=method, data={"text": "hi"})
        assert anonymous.status_code == 403, (path, anonymous.text)
        as_learner = grace.open(url, method=method, data={"text": "pwned"}, headers=csrf(grace))
        assert as_learner.status_code == 403 and "for the operator" in as_learner.text, (path, as_learner.text)
    assert place(app, alan) == "seated" and services(app).workshop.room.banner is None
    state = instructor.get("/api/workshop").get_json()
    assert sorted(m["name"] for m in state["learners"]) == ["Alan", "Grace"]
    # the instructor's own actions need the CSRF header too
    assert instructor.post(f"/workshop/learners/{alan_id}/end").status_code == 403
    assert instructor.post("/workshop/learners/no-such-learner/end", headers=csrf(instructor)).get_json() == {
        "error": "there is no such learner in this workshop"}
    assert alan.get(f"/labs/{LAB}").status_code == 200


def test_a_tab_left_open_after_the_instructor_ends_a_place_starts_nothing(app, instructor):
    http = seated(app, "Ken")
    ready(http)
    tab = Tab(app, http)
    try:
        run = tab.run("echo")
        assert tab.wait_end(run)["status"] == "done"
        ended = instructor.post(f"/workshop/learners/{session_value(http, 'learner')}/end", headers=csrf(instructor))
        assert ended.get_json() == {"ok": True}
        for event, payload in (("run", {"lab": LAB, "step": "echo"}), ("open", {"lab": LAB}),
                               ("shell_open", {"lab": LAB})):
            reply = tab.call(event, payload)
            assert reply == {"error": f"{event}: your place in this workshop has ended: the instructor ended it "
                                      f"(your notebook is kept)"}, reply
        assert upgrade(http).status_code == 403
    finally:
        tab.close()


def test_the_instructor_watches_a_learners_terminal_read_only(app, instructor):
    http, other = seated(app, "Lin"), seated(app, "Max")
    ready(http)
    lin = session_value(http, "learner")
    mine, watcher, spy = Tab(app, http), Tab(app, instructor, lab=None), Tab(app, other, lab=None)
    try:
        assert "the learner has no shell open now" in watcher.call("shell_open", {"lab": LAB, "learner": lin})["error"]
        assert mine.call("shell_open", {"lab": LAB}) == {"ok": True}
        mine.send("shell_input", {"data": "echo lin-$((6*7))\n"})
        mine.wait(lambda: "lin-42" in mine.screen(), "the learner's shell to answer")
        assert watcher.call("shell_open", {"lab": LAB, "learner": lin}) == {"ok": True}
        watcher.wait(lambda: "lin-42" in watcher.screen(), "what the learner's screen showed")
        refused = watcher.call("shell_input", {"data": "rm -rf x\n"})
        assert "watching is reading" in refused["error"]
        assert "watching is reading" in watcher.call("shell_resize", {"rows": 5, "cols": 5})["error"]
        mine.send("shell_input", {"data": "echo more-$((2*2))\n"})
        watcher.wait(lambda: "more-4" in watcher.screen(), "the learner's output, live")
        assert "only the instructor" in spy.call("shell_open", {"lab": LAB, "learner": lin})["error"]
    finally:
        for tab in (mine, watcher, spy):
            tab.close()


def test_the_dashboard_is_pushed_a_learners_passed_step(app, instructor):
    http = seated(app, "Barbara")
    ready(http)
    dashboard = Tab(app, instructor, lab=None)
    tab = Tab(app, http)
    try:
        assert tab.wait_end(tab.run("echo"))["status"] == "done"

        def shown():
            for state in dashboard.named("workshop"):
                for learner in state["learners"]:
                    if learner["name"] == "Barbara" and learner["steps"][LAB]["echo"]["state"] == "passed":
                        return learner
        learner = dashboard.wait(shown, "the dashboard to show Barbara's passed step")
        assert learner["current"] == {"lab": LAB, "step": "echo"} and learner["passed"] == 1
        assert learner["steps"][LAB]["count"] == {"state": "not_started"} and learner["host"]["state"] == "ready"
    finally:
        tab.close()
        dashboard.close()


def test_a_raised_hand_is_seen_and_the_learners_tab_hears_of_it(app, instructor):
    http = seated(app, "Katherine")
    ready(http)
    tab = Tab(app, http)
    try:
        r = http.post("/workshop/hand", data={"message": "my step hangs"}, headers=csrf(http))
        assert "the instructor sees it in their queue" in r.text
        katherine = session_value(http, "learner")
        heard = len(tab.named("place"))   # of the hand it raised
        assert instructor.post(f"/workshop/learners/{katherine}/hand-seen", headers=csrf(instructor)).get_json() == {
            "ok": True}
        tab.wait(lambda: len(tab.named("place")) > heard, "the learner's tab to hear of it")
        assert "has seen your hand" in http.get("/workshop/me").text
    finally:
        tab.close()


def test_a_reset_gives_the_learner_a_fresh_lab_host_and_their_tab_hears_of_it(app, instructor):
    http = seated(app, "Ken")
    ready(http)
    before = lab_host(app, http)
    tab = Tab(app, http)
    try:
        learner = session_value(http, "learner")
        assert instructor.post(f"/workshop/learners/{learner}/reset", headers=csrf(instructor)).get_json() == {
            "ok": True}
        tab.wait(lambda: {"host": True} in tab.named("place"), "the tab to hear of the reset")
        ready(http)
        assert lab_host(app, http) is not before and before.destroyed
    finally:
        tab.close()


def test_the_instructor_follows_a_learners_runs_but_cannot_run_or_stop_them(app, instructor):
    http = seated(app, "Hedy")
    ready(http)
    hedy = session_value(http, "learner")
    mine, watcher = Tab(app, http), Tab(app, instructor, lab=None)
    try:
        assert watcher.call("open", {"lab": LAB, "learner": hedy}) == {"running": []}
        run = mine.run("endless")
        watcher.wait(lambda: watcher.named("run_started"), "the learner's run to start on the instructor's page")
        assert watcher.call("attach", {"run": run, "after": -1, "end": 0, "learner": hedy}) == {"status": "running"}
        watcher.wait(lambda: "waiting" in watcher.text(run), "the learner's output, live")
        assert watcher.call("stop", {"run": run}) == {"error": f"stop: you have no run {run}"}
        assert mine.call("stop", {"run": run}) == {"ok": True}
        assert watcher.wait_end(run)["status"] == "done"
    finally:
        mine.close()
        watcher.close()
