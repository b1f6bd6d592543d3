"""Who gets in (webapp/guard/auth.py, limits.SocketLimits), in process with Flask's test client: the token
becomes a cookie, POSTs need the CSRF token, Host and Origin must be the server's own, the operator's pages
are the operator's, and a WebSocket opens only for a signed-in browser of this server. The slow tier's
tests/test_web_auth.py says the same against the real server."""
from __future__ import annotations

import email.utils
import re
import time

import pytest

from apps import FAILING_SETUP, LAB, OPERATOR, TOKEN, browser, csrf, serving, upgrade

PAGES = ["/", f"/labs/{LAB}", f"/labs/{LAB}/host", f"/labs/{LAB}/export.md", "/static/labnb.js", "/lab-hosts",
         "/ports", "/network.json", "/runs/" + "0" * 32 + "/log"]
PORT = 8123


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One server for the module: each test is a browser of its own. Made for a port, as labnb serve does."""
    with serving(tmp_path_factory.mktemp("guard"), new_learners_per_address=1000) as app:
        yield app


@pytest.mark.parametrize("path", PAGES)
def test_no_token_is_refused(app, path):
    r = app.test_client().get(path)
    assert r.status_code == 403 and "labnb serve printed" in r.text


def test_a_wrong_token_is_refused_and_gets_no_cookie(app):
    http = app.test_client()
    r = http.get(f"/?token=not-{TOKEN}")
    assert r.status_code == 403 and "wrong token" in r.text
    assert "Set-Cookie" not in r.headers and http.get("/").status_code == 403


def test_the_token_becomes_a_cookie_and_leaves_the_address(tmp_path):
    with serving(tmp_path, port=PORT) as app:   # the cookie is named for the port
        http = app.test_client()
        r = http.get(f"/labs/{LAB}?token={TOKEN}&x=1")
        assert r.status_code == 303 and r.headers["Location"] == f"/labs/{LAB}?x=1"
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith(f"labnb-{PORT}=") and TOKEN not in cookie
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/;" in cookie
        expires = email.utils.parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1)).timestamp()
        assert time.time() + 6 * 86400 < expires < time.time() + 8 * 86400   # a week, renewed by each request
        assert http.get("/").status_code == 200


def test_every_response_keeps_other_pages_out(app):
    r = browser(app).get("/")
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    policy = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert "script-src http://localhost/static/" in policy


def test_the_lab_hosts_page_is_the_operators(app):
    learner = browser(app)
    r = learner.get("/lab-hosts")
    assert r.status_code == 403 and "for the operator" in r.text and "<table" not in r.text
    operator = browser(app, OPERATOR)
    page = operator.get("/lab-hosts")
    assert page.status_code == 200 and "<table" in page.text
    assert operator.get(f"/labs/{LAB}/progress").status_code == 200   # the operator is a learner of their own
    # a learner who shows the learners' token again stays a learner
    learner.get(f"/?token={TOKEN}")
    assert learner.get("/lab-hosts").status_code == 403


def test_a_cookie_of_a_server_with_another_token_is_worthless(app):
    """A cookie is good only with the token it came with: a restart with a new token ends it."""
    http = browser(app)
    with serving(app.config["LABNB"].state_dir, token="another-token") as restarted:
        forged = restarted.test_client()
        forged.set_cookie("labnb", http.get_cookie("labnb").value)
        assert forged.get("/").status_code == 403
        assert "no valid token" in forged.get("/").text


def test_a_post_needs_the_csrf_token(app):
    http = browser(app)
    url = f"/labs/{FAILING_SETUP}/host/retry"
    assert http.post(url).status_code == 403
    assert "X-CSRF-Token" in http.post(url, headers={"X-CSRF-Token": "wrong"}).text
    assert http.post(url, headers=csrf(http)).status_code == 200


def test_a_request_from_another_sites_page_is_refused(app):
    http = browser(app)
    url = f"/labs/{FAILING_SETUP}/host/retry"
    r = http.post(url, headers={**csrf(http), "Origin": "http://evil.example"})
    assert r.status_code == 403 and "evil.example" in r.text
    assert http.post(url, headers={**csrf(http), "Origin": "http://localhost"}).status_code == 200


def test_a_host_that_is_not_the_servers_is_refused(app):
    """DNS rebinding: a name that resolves to 127.0.0.1 but is not the server's."""
    http = browser(app)
    r = http.get("/", headers={"Host": "evil.example"})
    assert r.status_code == 403 and "Host" in r.text
    assert http.get("/", headers={"Host": "localhost:8123"}).status_code == 200   # its cookie is for localhost


def test_new_learners_are_limited_per_address(tmp_path):
    with serving(tmp_path, new_learners_per_address=2) as app:
        browser(app), browser(app)
        r = app.test_client().get(f"/?token={TOKEN}")
        assert r.status_code == 429 and "LABNB_NEW_LEARNERS_PER_ADDRESS" in r.text
        assert app.test_client().get(f"/?token={TOKEN}", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 303


def test_a_websocket_opens_only_for_a_signed_in_browser_of_this_server(app):
    refused = upgrade(app.test_client())
    assert refused.status_code == 403 and "no valid token" in refused.text
    http = browser(app)
    foreign = upgrade(http, Origin="http://evil.example")
    assert foreign.status_code == 403 and "evil.example" in foreign.text
    assert upgrade(http, Origin="http://localhost").status_code not in (403, 429)   # on to Engine.IO
