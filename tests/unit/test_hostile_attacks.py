"""Issue 29's new surfaces under attack, in process: a learner (root on their lab host, crafting any request
with their own session) and an anonymous client against the learner's catch-up, the versioned static files,
the reset notice and the dashboard's facts. Each test is an attack that must keep failing."""
from __future__ import annotations

import html
import re
import threading

import pytest
from flask import Flask

from apps import LAB, OPERATOR, WAIT, browser, csrf, ready, serving, services, session_value
from test_lab_host_states import held  # noqa: F401 (a fixture)
from test_workshop_app import CODE, join, seated
from web_support import wait_for

from webapp.web.assets import KEEP, Assets

MARKUP = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def room(tmp_path):
    with serving(tmp_path, workshop=1, capacity=1, access_code=CODE, workshop_labs=LAB, memory_mb=64) as app:
        yield app


# -- the learner's catch-up ------------------------------------------------------------------------------
def test_a_learner_waiting_for_a_place_or_whose_place_ended_catches_nothing_up(room):
    first = seated(room, "Ada")
    second, _ = join(room, "Barbara")   # the room is full: she waits
    instructor = browser(room, OPERATOR)
    ada, barbara = session_value(first, "learner"), session_value(second, "learner")
    r = second.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(second))
    assert r.status_code == 303 and r.headers["Location"] == "/join"
    assert instructor.post(f"/workshop/learners/{ada}/end", headers=csrf(instructor)).get_json() == {"ok": True}
    r = first.post(f"/labs/{LAB}/catch-up", data={"step": "count"}, headers=csrf(first))
    assert r.status_code == 303 and r.headers["Location"] == "/join"
    assert services(room).catch_ups.state(ada) is None and services(room).catch_ups.state(barbara) is None
    assert services(room).store.last_runs(ada, LAB) == {}


def test_a_catch_up_under_way_when_the_place_ends_runs_nothing_more(tmp_path, held):
    """The learner's catch-up waits for their lab host; the instructor ends the place meanwhile: no step of
    it runs on any lab host after, though the learner's endpoint gives the catch-up no refusal of its own."""
    with serving(tmp_path, backend="fake-held", ready_timeout=WAIT, workshop=1, capacity=1, access_code=CODE,
                 workshop_labs=LAB, memory_mb=64) as app:
        http = seated(app, "Ada")
        learner = session_value(http, "learner")
        http.get(f"/labs/{LAB}")
        assert "Catching up" in html.unescape(
            http.post(f"/labs/{LAB}/catch-up", data={"step": "failing"}, headers=csrf(http)).text)
        instructor = browser(app, OPERATOR)
        assert instructor.post(f"/workshop/learners/{learner}/end", headers=csrf(instructor)).get_json() == {"ok": True}
        held.set()
        state = wait_for(lambda: (c := services(app).catch_ups.state(learner)) and c["state"] != "running" and c,
                         WAIT, what="the catch-up to end")
        assert state["state"] == "failed" and "no place in this workshop" in state["error"], state
        assert services(app).store.last_runs(learner, LAB) == {}
        assert services(app).learners.peek(learner) is None


def test_a_hostile_step_id_comes_back_as_text(tmp_path):
    with serving(tmp_path, runs_per_minute=1000) as app:
        http = browser(app)
        for step in (MARKUP, "__proto__", "../../etc/passwd", "x" * 10000):
            r = http.post(f"/labs/{LAB}/catch-up", data={"step": step}, headers=csrf(http))
            assert r.status_code == 200 and "<img" not in r.text, r.text
            assert f"has no step {step!r}" in html.unescape(r.text)
        assert services(app).catch_ups.state(session_value(http, "learner")) is None


def test_a_lab_not_served_has_no_catch_up_and_an_anonymous_client_none_at_all(room):
    http = seated(room, "Ada")
    r = http.post("/labs/01-not-in-this-workshop/catch-up", data={"step": "count"}, headers=csrf(http))
    assert r.status_code == 404
    anonymous = room.test_client()
    r = anonymous.post(f"/labs/{LAB}/catch-up", data={"step": "count"})
    assert r.status_code == 403
    assert services(room).catch_ups._states == {}


# -- the reset notice and the dashboard's facts ----------------------------------------------------------
def test_a_learner_neither_sees_nor_dismisses_nor_causes_anothers_reset_notice_or_facts(tmp_path):
    with serving(tmp_path, workshop=1, capacity=2, access_code=CODE, workshop_labs=LAB, memory_mb=64) as app:
        ada, eve = seated(app, "Ada"), seated(app, "Eve")
        ready(ada)
        instructor = browser(app, OPERATOR)
        ada_id = session_value(ada, "learner")
        assert instructor.post(f"/workshop/learners/{ada_id}/reset", headers=csrf(instructor)).get_json() == {"ok": True}
        assert "reset your lab host" not in eve.get("/workshop/me").text
        eve.post("/workshop/reset-notice/dismiss", data={"learner": ada_id}, headers=csrf(eve))
        assert "reset your lab host" in ada.get("/workshop/me").text
        for method, path in (("post", f"/workshop/learners/{ada_id}/reset"), ("get", "/api/workshop"),
                             ("post", f"/workshop/learners/{ada_id}/catch-up"), ("get", "/workshop")):
            r = getattr(eve, method)(path, data={"lab": LAB, "step": "count"}, headers=csrf(eve))
            assert r.status_code == 403, (path, r.status_code)
        assert services(app).workshop.room.get(session_value(eve, "learner")).reset is None
        assert services(app).catch_ups.state(ada_id) is None


# -- versioned static files ------------------------------------------------------------------------------
def hashes(app) -> dict:
    return app.extensions["labnb.assets"].hashes


@pytest.mark.parametrize("path", ["/static/../webapp/app.py", "/static/%2e%2e/webapp/app.py",
                                  "/static/..%2fwebapp/app.py", "/static//etc/passwd", "/static/%2fetc/passwd",
                                  "/static/vendor/../../README.md"])
def test_no_file_outside_static_is_served_or_kept(tmp_path, path):
    with serving(tmp_path) as app:
        http = browser(app)
        r = http.get(f"{path}?v={hashes(app)['labnb.js']}")
        assert r.status_code in (308, 404), (r.status_code, r.text[:200])
        assert r.headers.get("Cache-Control") != KEEP


def test_only_a_static_files_own_hash_keeps_it_and_only_a_static_file(tmp_path):
    with serving(tmp_path) as app:
        http = browser(app)
        labnb = hashes(app)["labnb.js"]
        assert http.get(f"/static/labnb.js?v={labnb}").headers["Cache-Control"] == KEEP
        for url in (f"/static/cells.js?v={labnb}",          # another file's version
                    f"/static/vendor/../labnb.js?v={labnb}",   # the same file by another name
                    f"/static/labnb.js?v={labnb}x", f"/static/labnb.js?v={labnb.upper()}",
                    f"/?v={labnb}", f"/labs/{LAB}?v={labnb}", f"/labs/{LAB}/progress?v={labnb}"):
            r = http.get(url)
            assert r.headers.get("Cache-Control") != KEEP and "immutable" not in r.headers.get("Cache-Control", ""), url
        page = http.get(f"/labs/{LAB}")   # a private page renews the session cookie as before
        assert "immutable" not in page.headers.get("Cache-Control", "") and page.headers.get("Set-Cookie")


def test_an_anonymous_client_keeps_only_public_static_files_and_never_a_cookie(room):
    anonymous = room.test_client()
    labnb = hashes(room)["labnb.js"]
    r = anonymous.get(f"/static/labnb.js?v={labnb}")   # the join page's files are open to anyone
    assert r.status_code == 200 and r.headers["Cache-Control"] == KEEP and "Set-Cookie" not in r.headers
    r = anonymous.get(f"/labs/{LAB}?v={labnb}")
    assert r.status_code in (303, 403) and r.headers.get("Cache-Control") != KEEP
    assert not [name for name in hashes(room) if re.search(r"\.(py|md|toml|key|db)$|(^|/)\.", name)]


def test_a_file_changed_while_the_server_runs_is_not_kept_under_its_old_hash(tmp_path):
    """The old hash names the old content: the new content under it, kept a year, would outlive a restart
    that brings the old content back (its URL again, the browser's copy of the other)."""
    (tmp_path / "page.js").write_bytes(b"var old;\n")
    app = Flask(__name__, static_folder=str(tmp_path), static_url_path="/static")
    Assets(str(tmp_path)).init_app(app)
    old = app.extensions["labnb.assets"].hashes["page.js"]
    assert app.test_client().get(f"/static/page.js?v={old}").headers["Cache-Control"] == KEEP
    (tmp_path / "page.js").write_bytes(b"var new_content;\n")
    r = app.test_client().get(f"/static/page.js?v={old}")
    assert r.data == b"var new_content;\n" and r.headers.get("Cache-Control") != KEEP


def test_a_burst_of_catch_ups_starts_one_thread_and_at_most_the_runs_a_minute_allows(tmp_path, held):
    with serving(tmp_path, backend="fake-held", ready_timeout=WAIT, runs_per_minute=3) as app:
        http = browser(app)
        learner = session_value(http, "learner")
        http.get(f"/labs/{LAB}")
        answers = [html.unescape(http.post(f"/labs/{LAB}/catch-up", data={"step": "failing"},
                                           headers=csrf(http)).text) for _ in range(20)]
        assert sum("Catching up" in a for a in answers) == 20   # the one under way, each time
        assert sum("under way already" in a for a in answers) == 19
        assert [t.name for t in threading.enumerate()].count(f"catch-up-{learner[:8]}") == 1
        held.set()
        wait_for(lambda: services(app).catch_ups.state(learner)["state"] != "running", WAIT, what="its end")
        for _ in range(5):   # to the first step: nothing to run, each one ends at once, and counts
            r = html.unescape(http.post(f"/labs/{LAB}/catch-up", data={"step": "echo"}, headers=csrf(http)).text)
        assert "runs were started in the last minute" in r


def test_the_instructors_own_catch_up_gets_their_lab_host_though_its_thread_has_no_request(room):
    """The instructor has no place: only a request of theirs says a lab host is theirs (RoomAdmission.admits),
    and a catch-up's runs start in its thread."""
    instructor = browser(room, OPERATOR)
    me = session_value(instructor, "learner")
    r = instructor.post(f"/labs/{LAB}/catch-up", data={"step": "failing"}, headers=csrf(instructor))
    assert r.status_code == 200 and "Catching up" in html.unescape(r.text)
    state = wait_for(lambda: (c := services(room).catch_ups.state(me)) and c["state"] != "running" and c,
                     WAIT, what="the catch-up to end")
    assert state["state"] == "done", state
    assert set(services(room).store.last_runs(me, LAB)) == {"echo", "count"}


def test_a_catch_up_asked_before_any_lab_host_counts_against_the_askers_address(tmp_path):
    """A learner who never opened a lab page asks for a catch-up: the lab host its runs need is claimed for
    the address that asked, so another learner at an address that holds its most gets none (the catch-up's
    thread has no address: its claims were counted apart)."""
    with serving(tmp_path, lab_hosts_per_address=1, runs_per_minute=1000) as app:
        first = browser(app)
        ready(first)
        second = browser(app)
        other = session_value(second, "learner")
        second.post(f"/labs/{LAB}/catch-up", data={"step": "failing"}, headers=csrf(second))
        state = wait_for(lambda: (c := services(app).catch_ups.state(other)) and c["state"] != "running" and c,
                         WAIT, what="the catch-up to end")
        assert state["state"] == "failed" and "LABNB_LAB_HOSTS_PER_ADDRESS" in state["error"], state
        assert services(app).learners.peek(other).host is None
        assert services(app).store.last_runs(other, LAB) == {}
