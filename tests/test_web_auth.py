"""Only holders of the server token get in; the token becomes a cookie; POSTs
need the CSRF token; Host and Origin must be the server's own; the operator's
pages are the operator's."""
from __future__ import annotations

import email.utils
import re
import time

import pytest
import requests
import socketio

from web_support import TEST_LAB

PAGES = ["/", f"/labs/{TEST_LAB}", f"/labs/{TEST_LAB}/host", f"/labs/{TEST_LAB}/export.md",
         "/static/labnb.js", "/lab-hosts", "/ports", "/proxy/80/", "/network.json"]


@pytest.mark.parametrize("path", PAGES)
def test_no_token_refused(web_server, path):
    r = requests.get(web_server.url + path, timeout=10)
    assert r.status_code == 403
    assert "labnb serve printed" in r.text


def test_wrong_token_refused(web_server):
    r = requests.get(f"{web_server.url}/?token=not-{web_server.token}", timeout=10, allow_redirects=False)
    assert r.status_code == 403 and "wrong token" in r.text
    assert not r.cookies


def test_token_becomes_a_cookie_and_leaves_the_address(web_server):
    http = requests.Session()
    r = http.get(f"{web_server.url}/labs/{TEST_LAB}?token={web_server.token}&x=1", timeout=10,
                 allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == f"/labs/{TEST_LAB}?x=1"
    cookie = r.headers["Set-Cookie"]
    # named for the port: a second labnb server on this machine keeps its own
    assert cookie.startswith(f"labnb-{web_server.port}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/;" in cookie
    assert web_server.token not in cookie
    # a week after the last request (the default LABNB_SESSION_DAYS), not months
    expires = email.utils.parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1)).timestamp()
    assert time.time() + 6 * 86400 < expires < time.time() + 8 * 86400
    assert http.get(web_server.url + "/", timeout=10).status_code == 200


def test_lab_hosts_are_for_the_operator_only(web_server):
    learner = web_server.learner()
    r = learner.get(web_server.url + "/lab-hosts", timeout=10)
    assert r.status_code == 403 and "operator" in r.text
    assert "<table" not in r.text
    operator = web_server.operator()
    page = operator.get(web_server.url + "/lab-hosts", timeout=10)
    assert page.status_code == 200 and "<table" in page.text
    # the operator is also a learner of their own
    assert operator.get(f"{web_server.url}/labs/{TEST_LAB}/progress", timeout=10).status_code == 200
    # a learner who shows the learners' token again stays a learner
    assert learner.get(f"{web_server.url}/lab-hosts?token={web_server.token}", timeout=10).status_code == 403


def test_cookie_of_another_server_is_worthless(web_server):
    """A cookie is only good with the token it came with (a restart with a new token ends it)."""
    http = web_server.learner()
    forged = requests.Session()
    for c in http.cookies:
        forged.cookies.set(c.name, c.value[:-4] + "AAAA")
    assert forged.get(web_server.url + "/", timeout=10).status_code == 403


def test_post_needs_the_csrf_token(web_server):
    http = web_server.learner()
    token = web_server.csrf(http)
    url = f"{web_server.url}/labs/{TEST_LAB}/host/retry"
    assert http.post(url, timeout=10).status_code == 403
    assert http.post(url, headers={"X-CSRF-Token": "wrong"}, timeout=10).status_code == 403
    assert http.post(url, headers={"X-CSRF-Token": token}, timeout=10).status_code == 200


def test_wrong_origin_refused(web_server):
    http = web_server.learner()
    token = web_server.csrf(http)
    url = f"{web_server.url}/labs/{TEST_LAB}/host/retry"
    r = http.post(url, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}, timeout=10)
    assert r.status_code == 403 and "evil.example" in r.text
    ok = http.post(url, headers={"X-CSRF-Token": token, "Origin": web_server.url}, timeout=10)
    assert ok.status_code == 200


def test_wrong_host_refused(web_server):
    """DNS rebinding: a name that resolves to 127.0.0.1 but is not the server's."""
    http = web_server.learner()
    # requests picks cookies by the Host header: send the cookie by hand
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    r = requests.get(web_server.url + "/", headers={"Host": f"evil.example:{web_server.port}", "Cookie": cookie},
                     timeout=10)
    assert r.status_code == 403 and "Host" in r.text
    assert requests.get(web_server.url + "/", headers={"Host": f"localhost:{web_server.port}", "Cookie": cookie},
                        timeout=10).status_code == 200


def _connect(server, headers: dict) -> None:
    # websocket-client sends the server's own Origin unless told not to
    client = socketio.Client(reconnection=False, serializer="msgpack",
                             websocket_extra_options={"suppress_origin": True})
    try:
        client.connect(server.url, headers=headers, transports=["websocket"], wait_timeout=10)
    finally:
        client.disconnect()


def test_socketio_refused_without_cookie_or_from_another_origin(web_server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        _connect(web_server, {})
    http = web_server.learner()
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    with pytest.raises(socketio.exceptions.ConnectionError):
        _connect(web_server, {"Cookie": cookie, "Origin": "http://evil.example"})
    _connect(web_server, {"Cookie": cookie, "Origin": web_server.url})
