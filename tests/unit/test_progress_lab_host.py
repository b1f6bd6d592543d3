"""A learner's progress against their lab host now (webapp/store/steps.py, the lab page's progress) and the
learner's own catch-up (runs/catchup.py through ``POST /labs/<lab>/catch-up``): after a reset their recorded
runs do not count as passed on the fresh lab host, the page says so and offers the catch-up, which only ever
acts on the session's own lab host. In process, on fake lab hosts; tests/test_ui_guide.py says the same in
Chromium against the real server."""
from __future__ import annotations

import html
import re
import types

import pytest

from apps import LAB, OPERATOR, WAIT, Tab, browser, csrf, lab_host, ready, serving, services, session_value
from test_lab_host_states import held  # noqa: F401 (a fixture)
from test_workshop_app import CODE, seated
from web_support import wait_for

from webapp.store import Progress, on_lab_host

STEPS = ["echo", "count", "failing", "endless", "big"]   # tests/unit/labs/80-unit.md


def run(step: str, lab_host: str, started: float, status: str = "done", passed: bool = True) -> dict:
    return {"step": step, "lab_host": lab_host, "started": started, "status": status,
            "checks": [{"passed": passed}]}


def host(host_id: str, created: float):
    return types.SimpleNamespace(id=host_id, created=created)


def test_a_run_is_on_a_lab_host_made_before_it_with_its_id():
    assert on_lab_host(run("echo", "lh-1", 10.0), host("lh-1", 5.0))
    assert not on_lab_host(run("echo", "lh-0", 10.0), host("lh-1", 5.0))     # another, though made after it
    assert not on_lab_host(run("echo", "plain", 4.0), host("plain", 5.0))   # the same id, made afresh after it
    assert not on_lab_host(run("echo", "lh-1", 10.0), None)                  # none now (one being made)
    assert not on_lab_host(None, host("lh-1", 5.0))


def test_progress_counts_what_passed_on_the_lab_host_now_and_names_the_steps_run_on_an_earlier_one():
    last = {"echo": run("echo", "lh-0", 1.0), "count": run("count", "lh-0", 2.0),
            "failing": run("failing", "lh-0", 3.0, passed=False), "endless": run("endless", "lh-1", 9.0)}
    p = Progress.of(last, STEPS, host("lh-1", 5.0))
    assert (p.total, p.passed, p.here, p.earlier) == (5, 3, 1, ("echo", "count", "failing"))
    assert Progress.of(last, STEPS, None).earlier == ("echo", "count", "failing", "endless")
    assert Progress.of({}, STEPS, host("lh-1", 5.0)) == Progress(5, 0, 0, ())


def text(r) -> str:
    return html.unescape(re.sub(r"\s+", " ", r.get_data(as_text=True)))


def caught_up(app, learner: str) -> dict:
    return wait_for(lambda: (c := services(app).catch_ups.state(learner)) and c["state"] != "running" and c,
                    WAIT, what="the catch-up to end")


def test_after_a_reset_the_progress_says_the_runs_were_on_an_earlier_lab_host_and_the_learner_catches_up(app):
    http = browser(app)
    ready(http)
    learner = session_value(http, "learner")
    tab = Tab(app, http)
    try:
        assert tab.wait_end(tab.run("echo"))["status"] == "done"
    finally:
        tab.close()
    page = text(http.get(f"/labs/{LAB}/progress"))
    assert "1 of 5 steps passed" in page and "earlier lab host" not in page and 'data-earlier=""' in page
    before = lab_host(app, http)
    assert http.post(f"/labs/{LAB}/host/reset", headers=csrf(http)).status_code == 200
    ready(http)
    page = text(http.get(f"/labs/{LAB}/progress"))
    assert "0 of 5 steps passed on this lab host" in page
    assert "The latest runs of 1 step (1 passed) are recorded from an earlier lab host" in page
    assert 'data-earlier="echo"' in page and 'hx-post="/labs/80-unit/catch-up"' in page
    assert "0 of 5 passed on your lab host now (1 more in runs on an earlier one)" in text(http.get("/"))
    lab_page = text(http.get(f"/labs/{LAB}"))
    assert 'data-step="echo" data-state="passed"' in lab_page and 'data-earlier="echo"' in lab_page

    r = http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(http))
    assert r.status_code == 200 and "Catching up" in text(r) and 'hx-trigger="every 1s"' in text(r)
    assert caught_up(app, learner)["state"] == "done"
    echo = services(app).store.last_runs(learner, LAB)["echo"]
    assert echo["lab_host"] == lab_host(app, http).id != before.id   # run again, on the fresh lab host
    page = text(http.get(f"/labs/{LAB}/progress"))
    assert "1 of 5 steps passed</span>" in page and 'data-earlier=""' in page and "Caught up" in page


def test_the_learners_catch_up_needs_the_csrf_header_a_step_of_the_lab_and_one_at_a_time(tmp_path, held):
    """While the lab host starts, a catch-up waits for it: a second one is refused meanwhile."""
    with serving(tmp_path, backend="fake-held", ready_timeout=WAIT, runs_per_minute=1000) as app:
        http = browser(app)
        learner = session_value(http, "learner")
        http.get(f"/labs/{LAB}")
        assert http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}).status_code == 403
        assert services(app).catch_ups.state(learner) is None
        r = http.post(f"/labs/{LAB}/catch-up", data={"step": "nope"}, headers=csrf(http))
        assert "lab '80-unit' has no step 'nope'" in text(r) and services(app).catch_ups.state(learner) is None
        assert "Catching up" in text(http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(http)))
        r = http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(http))
        assert "a catch-up is under way already: wait for it to end" in text(r)
        held.set()
        assert caught_up(app, learner)["state"] == "done"
        assert services(app).store.last_runs(learner, LAB)["echo"]["lab_host"] == lab_host(app, http).id


def test_the_learners_catch_up_counts_against_the_runs_they_may_start(tmp_path):
    with serving(tmp_path, runs_per_minute=1) as app:
        http = browser(app)
        ready(http)
        assert "Catching up" in text(http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(http)))
        caught_up(app, session_value(http, "learner"))
        r = http.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(http))
        assert "runs were started in the last minute" in text(r)


@pytest.fixture
def room(tmp_path):
    with serving(tmp_path, workshop=1, capacity=2, access_code=CODE, workshop_labs=LAB, memory_mb=64) as app:
        yield app


def test_a_watcher_gets_no_catch_up_of_the_learner_watched_and_the_dashboards_runs_again_after_a_reset(room):
    """The instructor watching a learner's notebook sees the progress but no catch-up form; the learner's
    endpoint names no learner, so theirs acts on the instructor's own lab host. The dashboard's catch-up
    after a reset runs again the steps passed on the earlier lab host."""
    app, instructor = room, browser(room, OPERATOR)
    http = seated(app, "Grace")
    ready(http)
    grace = session_value(http, "learner")
    tab = Tab(app, http)
    try:
        assert tab.wait_end(tab.run("echo"))["status"] == "done"
    finally:
        tab.close()
    assert instructor.post(f"/workshop/learners/{grace}/reset", headers=csrf(instructor)).get_json() == {"ok": True}
    ready(http)
    watch = text(instructor.get(f"/workshop/learners/{grace}/labs/{LAB}"))
    assert "recorded from an earlier lab host" in watch and "/catch-up" not in watch
    ready(instructor)
    r = instructor.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(instructor))
    assert r.status_code == 200
    caught_up(app, session_value(instructor, "learner"))
    assert services(app).catch_ups.state(grace) is None
    assert services(app).store.last_runs(grace, LAB)["echo"]["lab_host"] != lab_host(app, http).id

    r = instructor.post(f"/workshop/learners/{grace}/catch-up", data={"lab": LAB, "step": "count"},
                        headers=csrf(instructor))
    assert r.get_json() == {"ok": True}
    assert caught_up(app, grace)["state"] == "done"
    assert services(app).store.last_runs(grace, LAB)["echo"]["lab_host"] == lab_host(app, http).id
