"""A workshop started without an access code (``labnb serve --workshop``) makes one: learners who join
with it get in, and an empty or a wrong code does not. In process, with Flask's test client and the plain
backend: no lab host is made (a join only gives the learner a place)."""
from __future__ import annotations

import html
import re

import pytest

from webapp import create_app
from webapp.config import Settings

from web_support import FIXTURE_LABS, TEST_LAB


@pytest.fixture
def workshop(tmp_path):
    """The app and its services as ``labnb serve --workshop --lab 90-web-test`` makes them: no access code."""
    app = create_app(Settings(state_dir=str(tmp_path), labs_dir=FIXTURE_LABS, backend="plain", workshop=1,
                              capacity=2, workshop_labs=TEST_LAB))
    services = app.extensions["labnb"].start()
    yield app, services
    services.close()


def join(app, code: str):
    """A new browser that opens the join page and sends the form with ``code``."""
    browser = app.test_client()
    page = browser.get(f"/join?code={code}")
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return browser.post("/join", data={"csrf": csrf, "code": code, "name": "Ada"})


def test_the_code_the_server_holds_admits_a_learner(workshop):
    app, services = workshop
    code = app.config["LABNB"].access_code
    assert re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code), code
    r = join(app, code)
    assert r.status_code == 303, r.text
    assert services.workshop.room.counts()["seated"] == 1


@pytest.mark.parametrize("code", ["", "wrong-code0"])
def test_an_empty_or_wrong_code_is_refused(workshop, code):
    app, services = workshop
    r = join(app, code)
    assert r.status_code == 403 and "not this workshop's access code" in html.unescape(r.text), r.text
    assert services.workshop.room.counts()["seated"] == 0
