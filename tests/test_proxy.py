"""Lab hosts' web services through labnb (webapp/proxy/): the real server, a real app in a real lab host
(tests/fixtures/labs/93-proxy-test.md: Python's http.server with a WebSocket echo), clients that name the
service's host as a browser does (``p<port>-<lab host>.localhost``, connected to 127.0.0.1)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests
import websocket


LAB = "93-proxy-test"
PORT = 8080
ENTER_PATH = "/.labnb/enter"


class Browser:
    """A browser's cookie jar for one service host, as a real one keeps it: host-only cookies of that host."""

    def __init__(self, server, host: str):
        self.server, self.host, self.cookies = server, host, {}

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def request(self, method: str, path: str, headers: dict | None = None, **kw) -> requests.Response:
        headers = {"Host": self.host, **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = requests.request(method, f"http://127.0.0.1:{self.server.port}{path}", headers=headers,
                             allow_redirects=False, timeout=30, **kw)
        for c in r.raw.headers.getlist("Set-Cookie"):
            name, value = c.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return r


def enter(server, http, path: str = f"/proxy/{PORT}/") -> Browser:
    """Follow a lab page's link to the service as the browser ``http`` (a labnb session) does."""
    r = http.get(server.url + path, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    url = urlsplit(r.headers["Location"])
    assert url.hostname.endswith(".localhost") and url.port == server.port
    browser = Browser(server, url.netloc)
    r = browser.get(f"{url.path}?{url.query}")
    assert r.status_code == 302 and r.headers["Location"] == "/", r.text
    return browser


@pytest.fixture(scope="module")
def owner(web_server):
    """A learner whose lab host runs the app on port 8080."""
    return web_server.learner_who_ran(LAB, "app")


@pytest.fixture(scope="module")
def inside(web_server, owner) -> Browser:
    return enter(web_server, owner)


def test_the_lab_page_lists_the_port_with_a_link(web_server, owner):
    page = owner.get(f"{web_server.url}/labs/{LAB}", timeout=10).text
    assert 'hx-get="/ports"' in page
    fragment = owner.get(f"{web_server.url}/ports", timeout=30).text
    assert f'href="/proxy/{PORT}/"' in fragment and "on 0.0.0.0" in fragment


def test_the_app_answers_through_its_own_host_name(inside):
    r = inside.get("/")
    assert r.status_code == 200 and "hello from the app" in r.text
    assert inside.get("/redirect").headers["Location"] == "/target"      # relative: the app's whole path space
    absolute = inside.get("/absolute").headers["Location"]
    assert absolute == f"http://{inside.host}/target"                     # the Host it was sent is the browser's
    assert inside.get("/target").text == "you were redirected"
    assert inside.request("POST", "/upload", data=b"x" * 100_000).text == "got 100000 bytes"


def test_the_app_never_sees_labnb_credentials_and_cannot_set_them(web_server, owner, inside):
    labnb_cookie = next(iter(owner.cookies.keys()))                        # labnb's session cookie's name
    proxy_cookie = next(iter(inside.cookies))
    inside.cookies[labnb_cookie] = owner.cookies[labnb_cookie]            # as if the browser sent it too
    try:
        seen = dict(inside.get("/headers", headers={"X-CSRF-Token": "secret"}).json())
    finally:
        del inside.cookies[labnb_cookie]
    assert labnb_cookie not in seen.get("Cookie", "") and proxy_cookie not in seen.get("Cookie", "")
    assert "X-Csrf-Token" not in seen and "X-CSRF-Token" not in seen
    planted = inside.get(f"/setcookie?{proxy_cookie},{labnb_cookie}")
    cookies = planted.raw.headers.getlist("Set-Cookie")
    assert cookies == ["app=kept; Path=/"], cookies                      # the app's own pass, labnb's do not
    assert dict(inside.get("/headers").json())["Cookie"] == "app=kept"


def test_others_are_refused(web_server, owner, inside):
    anonymous = Browser(web_server, inside.host)
    r = anonymous.get("/")
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("text/plain")
    assert "not signed in to this lab host's service" in r.text
    other = web_server.learner()
    web_server.open_lab(other, LAB)
    theirs = enter(web_server, other)                                     # their own lab host: allowed
    assert theirs.host != inside.host and theirs.get("/").status_code == 502   # nothing listens in theirs
    stolen = Browser(web_server, inside.host)
    stolen.cookies = dict(theirs.cookies)                                  # their pass, on the owner's host
    assert stolen.get("/").status_code == 403
    other_port = Browser(web_server, inside.host.replace(f"p{PORT}-", "p22-", 1))
    other_port.cookies = dict(inside.cookies)                              # the owner's pass, on another port
    assert other_port.get("/").status_code == 403


def test_a_ticket_is_good_once_and_only_for_its_port(web_server, owner):
    r = owner.get(f"{web_server.url}/proxy/{PORT}/", allow_redirects=False, timeout=10)
    url = urlsplit(r.headers["Location"])
    first = Browser(web_server, url.netloc)
    assert first.get(f"{url.path}?{url.query}").status_code == 302
    again = Browser(web_server, url.netloc)
    assert again.get(f"{url.path}?{url.query}").status_code == 403        # used already
    elsewhere = Browser(web_server, url.netloc.replace(f"p{PORT}-", "p8081-", 1))
    ticket = owner.get(f"{web_server.url}/proxy/{PORT}/", allow_redirects=False, timeout=10).headers["Location"]
    assert elsewhere.get(ENTER_PATH + "?" + urlsplit(ticket).query).status_code == 403
    forged = re.sub(r"ticket=[^&]+", "ticket=eyJvIjoieCJ9.forged", url.query)
    assert Browser(web_server, url.netloc).get(f"{url.path}?{forged}").status_code == 403


def _ws(web_server, inside: Browser, origin: str | None = None) -> websocket.WebSocket:
    cookie = "; ".join(f"{k}={v}" for k, v in inside.cookies.items())
    ws = websocket.WebSocket()
    ws.connect(f"ws://127.0.0.1:{web_server.port}/ws", host=inside.host, cookie=cookie,
               origin=origin or f"http://{inside.host}", timeout=30)
    return ws


def test_a_websocket_echoes_through_the_proxy(web_server, inside):
    ws = _ws(web_server, inside)
    try:
        for text in ("hello", "x" * 1000):
            ws.send(text)
            assert ws.recv() == f"echo: {text}"
    finally:
        ws.close()


def test_a_websocket_from_another_origin_or_without_a_pass_is_refused(web_server, inside):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _ws(web_server, inside, origin="http://p8080-elsewhere.localhost")
    assert refused.value.status_code == 403
    anonymous = Browser(web_server, inside.host)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _ws(web_server, anonymous)
    assert refused.value.status_code == 403


def test_a_learner_cannot_open_another_learners_port_from_the_lab_page(web_server, owner, inside):
    """The link names a port, never a lab host: it is always the asker's own."""
    other = web_server.learner()
    web_server.open_lab(other, LAB)
    r = other.get(f"{web_server.url}/proxy/{PORT}/", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).netloc != inside.host


@pytest.fixture(scope="module")
def under(web_server, owner) -> str:
    """The path-based way into the app, on labnb's own host, for a browser that cannot reach host names."""
    r = owner.get(f"{web_server.url}/proxy/{PORT}/?via=path", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/.labnb/p/"), r.headers
    return r.headers["Location"]


def test_the_path_based_way_needs_only_its_link_and_sandboxes_the_app(web_server, under):
    plain = requests.Session()   # no cookie at all: a sandboxed page's requests carry none
    page = plain.get(f"{web_server.url}{under}", timeout=30)
    assert page.status_code == 200 and "hello from the app" in page.text
    assert page.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")   # an origin of its own
    assert plain.get(f"{web_server.url}{under}redirect", allow_redirects=False, timeout=30).headers[
        "Location"] == f"{under}target"                                    # kept under the prefix
    assert plain.get(f"{web_server.url}{under}absolute", allow_redirects=False, timeout=30).headers[
        "Location"] == f"{under}target"
    assert plain.get(f"{web_server.url}{under}target", timeout=30).text == "you were redirected"
    planted = plain.get(f"{web_server.url}{under}setcookie?labnb", timeout=30)
    assert planted.text == "cookies set" and "Set-Cookie" not in planted.headers   # none on labnb's own host
    assert plain.get(f"{web_server.url}{under[:-1]}", allow_redirects=False, timeout=30).headers[
        "Location"] == under
    forged = under.replace("/.labnb/p/", "/.labnb/p/x", 1)
    assert plain.get(f"{web_server.url}{forged}", timeout=30).status_code == 403


def test_a_websocket_echoes_by_the_path_based_way(web_server, under):
    ws = websocket.WebSocket()
    ws.connect(f"ws://127.0.0.1:{web_server.port}{under}ws", origin="null", timeout=30)
    try:
        ws.send("by the path")
        assert ws.recv() == "echo: by the path"
    finally:
        ws.close()
