"""The lab host box on the instructor's watch page (templates/_host.html): a place with no lab host (ended, or
waiting) is said so, not as a lab host that "could not start", and never as the instructor's own ("Your")."""
from __future__ import annotations

import html
import re

import pytest

from apps import LAB, OPERATOR, browser, csrf, serving, session_value
from test_workshop_app import CODE, seated


@pytest.fixture
def room(tmp_path):
    with serving(tmp_path, workshop=1, capacity=2, access_code=CODE, workshop_labs=LAB, memory_mb=64) as app:
        yield app


def host_box(page: str) -> str:
    box = re.search(r'<div id="host".*?</div>', page, re.S).group(0)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box)).split())


def test_an_ended_place_is_watched_as_having_no_lab_host(room):
    instructor = browser(room, OPERATOR)
    http = seated(room, "Grace")
    grace = session_value(http, "learner")
    assert instructor.post(f"/workshop/learners/{grace}/end", headers=csrf(instructor)).get_json() == {"ok": True}
    box = host_box(instructor.get(f"/workshop/learners/{grace}/labs/{LAB}").text)
    assert box == "No lab host now: Grace's place has ended.", box
