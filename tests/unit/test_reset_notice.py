"""The notice of an instructor's reset on the learner's page (webapp/workshop/room.py, Room.note_reset; the
room bar, templates/_room.html): said until the learner dismisses it, and kept across a server's restart.
tests/test_ui_layout.py shows it live in the browser."""
from __future__ import annotations

import json
import re

import pytest

from apps import OPERATOR, browser, csrf, ready, serving, session_value
from test_workshop_app import CODE, seated
from webapp.workshop.room import Room

NOTICE = re.compile(r"Your instructor reset your lab host at <time [^>]+>\d\d:\d\d UTC</time>;\s+its state is new")


@pytest.fixture
def app(tmp_path):
    with serving(tmp_path, workshop=1, capacity=1, access_code=CODE, workshop_labs="80-unit", memory_mb=64) as app:
        yield app


def test_the_learner_is_told_of_the_instructors_reset_until_they_dismiss_it(app):
    http = seated(app, "Ken")
    ready(http)
    assert "reset your lab host" not in http.get("/workshop/me").text
    instructor = browser(app, OPERATOR)
    learner = session_value(http, "learner")
    assert instructor.post(f"/workshop/learners/{learner}/reset", headers=csrf(instructor)).get_json() == {"ok": True}
    assert NOTICE.search(http.get("/workshop/me").text)
    assert NOTICE.search(http.get("/labs/80-unit").text)   # a reload
    dismissed = http.post("/workshop/reset-notice/dismiss", headers=csrf(http))
    assert dismissed.status_code == 200 and "reset your lab host" not in dismissed.text
    assert "reset your lab host" not in http.get("/labs/80-unit").text


def test_the_notice_is_kept_with_the_room():
    old = Room(1)
    old.join("a" * 32, "Ada")
    old.note_reset("a" * 32)
    room = Room(1)
    room.restore(json.loads(json.dumps(old.state())))
    assert room.get("a" * 32).reset == old.get("a" * 32).reset is not None
