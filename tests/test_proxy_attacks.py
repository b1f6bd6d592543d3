"""A hostile learner against the lab hosts' web services (webapp/proxy/, docs/web-services.md), for real: the
real server (gunicorn), real lab hosts, the learner root in theirs (a shell of the terminal panel runs what
they type: a hostile app, a fake dockerd), and clients that send what a browser would, or worse.

Each found by attacking the first version (0b81db5), where it worked; each test states what holds now.

The server is this module's own (uid slots 54 to 59; its room 60 to 62), with small connection limits so that
a few learners can try to take them all.
"""
from __future__ import annotations

import base64
import re
import socket
import time
from urllib.parse import quote, urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

import websocket

from test_network_attacks import FAKE_DOCKERD
from test_proxy import LAB, PORT, Browser, _ws, enter
from web_support import CHROMIUM_ARGS, Server, ShellTab, _state_dir, serving, wait_for

IN_ALL, PER_OWNER = 12, 4   # this server's LABNB_PROXY_CONNECTIONS and LABNB_PROXY_PER_LEARNER

HOSTILE_PORT = 8081

# The learner's own "web app": a raw socket server that answers what each path names, as no honest server does.
HOSTILE_APP = r'''
import base64, hashlib, socket, sys, threading, time

cookie = sys.argv[2]   # labnb's cookie prefix: labnb-<server port>
SEEN = []
ORIGIN_HEADERS = ("HTTP/1.1 200 OK\r\n"
                  'Clear-Site-Data: "cookies", "storage", "executionContexts"\r\n'
                  "Set-Cookie: fixed=1; Path=/\r\n"
                  "Service-Worker-Allowed: /\r\n"
                  "Refresh: 0; url=/\r\n"
                  "Link: </sw.js>; rel=serviceworker, </evil.js>; rel=preload; as=script\r\n"
                  "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
                  "Origin-Agent-Cluster: ?0\r\n"
                  "Content-Security-Policy: script-src *\r\n"
                  "Permissions-Policy: camera=*\r\n"
                  "Access-Control-Allow-Origin: *\r\n"
                  "Access-Control-Allow-Credentials: true\r\n"
                  'WWW-Authenticate: Basic realm="labnb"\r\n'
                  "X-App: own\r\n"
                  "Cache-Control: no-cache\r\n")

def answer(c):
    data = b""
    while b"\r\n\r\n" not in data:
        part = c.recv(65536)
        if not part:
            return
        data += part
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    path = head.split(" ")[1]
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in head.split("\r\n")[1:])}
    SEEN.append(path)
    if path == "/control-character":     # a header value gunicorn refuses to send
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Evil: a\x01b\r\nContent-Length: 2\r\n\r\nok")
    elif path == "/bad-length":          # a Content-Length http.client ignores and gunicorn int()s
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok")
    elif path == "/domain-cookie":       # a cookie for every host under the domain: labnb's, other learners'
        c.sendall(b"HTTP/1.1 200 OK\r\nSet-Cookie: tossed=1; Domain=localhost; Path=/\r\nContent-Length: 2\r\n\r\nok")
    elif path == "/ws-cookies":          # labnb's cookies, and one of its own, in the answer to a WebSocket upgrade
        accept = base64.b64encode(hashlib.sha1((headers.get("sec-websocket-key", "") +
                                                "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                  b"Set-Cookie: " + cookie.encode() + b"-proxy=planted; Path=/\r\n"
                  b"Set-Cookie: " + cookie.encode() + b"=planted; Path=/\r\n"
                  b"Set-Cookie: own=1; Path=/\r\n\r\n")
        time.sleep(30)
    elif path == "/cookie-attributes":   # Domain as browsers read it, and cookies with no name
        cookies = ["tossed=1; Domain =localhost; Path=/", "tabbed=1;domain\t=\t.localhost",
                   "cased=1; Path=/; DOMAIN=localhost; Secure", "=" + cookie + "-proxy=planted", "=__Host-x=1"]
        c.sendall(("HTTP/1.1 200 OK\r\n" + "".join("Set-Cookie: %s\r\n" % v for v in cookies) +
                   "Content-Length: 2\r\n\r\nok").encode())
    elif path == "/origin-headers":      # what acts on the origin the answer comes from
        body = b"<p>headers</p>"
        c.sendall(ORIGIN_HEADERS.encode() + b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
    elif path == "/clear-site-data":     # a page that signs its viewer out of the origin it comes from
        body = b"<p>cleared</p>"
        c.sendall(b'HTTP/1.1 200 OK\r\nClear-Site-Data: "cookies", "storage"\r\nContent-Type: text/html\r\n'
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif path == "/evil.js":             # the learner's bytes, as a script
        body = b"window.pwned = 1; document.title = 'pwned';"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif path == "/seen":                # the paths asked of the app
        body = "\n".join(SEEN).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    conn, _ = s.accept()
    threading.Thread(target=answer, args=(conn,), daemon=True).start()
'''

# A dockerd of the learner's that lists one container publishing port 8080, its answer gzip-encoded ("gzip"),
# or with a PrivatePort that is terminal escapes ("escapes"). The drip and bomb modes are test_network_attacks'.
NAMED_DOCKERD = FAKE_DOCKERD.replace('''            if mode == "bomb":''', '''            if mode in ("gzip", "escapes"):
                private = "\\x1b]8;;http://evil.example/\\x07click me\\x1b]8;;\\x07" if mode == "escapes" else 80
                body = json.dumps([{"Id": "1" * 64, "Names": ["/inflated"],
                                    "Ports": [{"Type": "tcp", "PublicPort": 8080, "PrivatePort": private}]}]).encode()
                if mode == "gzip":
                    return self.answer(gzip.compress(body), [("Content-Encoding", "gzip")])
                return self.answer(body)
            if mode == "bomb":''')
assert NAMED_DOCKERD != FAKE_DOCKERD


@pytest.fixture(scope="module")
def web_server():
    yield from serving(Server(_state_dir("proxy-attacks"), uid_slot=54, pool_size=1, env={
        "LABNB_MAX_LAB_HOSTS": "6", "LABNB_PROXY_CONNECTIONS": str(IN_ALL),
        "LABNB_PROXY_PER_LEARNER": str(PER_OWNER)}))


class Shell:
    """The learner's terminal panel: type commands into their lab host, as root there."""

    def __init__(self, server, http):
        self.tab = ShellTab(server, http, lab=LAB)
        assert self.tab.open() == {"ok": True}
        self.n = 0

    def run(self, command: str, timeout: float = 60) -> str:
        self.n += 1
        self.tab.type(f"{command}; echo done-{self.n}-$((6*7))\n")
        return self.tab.wait_text(f"done-{self.n}-42", timeout)

    def write(self, path: str, text: str) -> None:
        """A file in the lab host, typed in base64 lines short enough for the terminal's line discipline."""
        data = base64.b64encode(text.encode()).decode()
        self.run(f"rm -f {path}.b64")
        for i in range(0, len(data), 600):
            self.run(f"echo {data[i:i + 600]} >> {path}.b64")
        self.run(f"python3 -c 'import base64; open(\"{path}\", \"wb\").write(base64.b64decode(open(\"{path}.b64\").read()))'")

    def close(self):
        self.tab.close()


@pytest.fixture(scope="module")
def owner(web_server):
    """A learner whose lab host runs the test lab's app on 8080, and their hostile app on 8081."""
    http = web_server.learner_who_ran(LAB, "app")
    shell = Shell(web_server, http)
    try:
        shell.write("/tmp/hostile.py", HOSTILE_APP)
        cookie = f"labnb-{web_server.port}"
        shell.run(f"setsid -f python3 /tmp/hostile.py {HOSTILE_PORT} {cookie} </dev/null >/tmp/hostile.log 2>&1")
        wait_for(lambda: f":{HOSTILE_PORT} " in shell.run("ss -ltn"), 20, 0.5, "the hostile app to listen")
    finally:
        shell.close()
    return http


@pytest.fixture(scope="module")
def hostile(web_server, owner) -> Browser:
    return enter(web_server, owner, f"/proxy/{HOSTILE_PORT}/")


@pytest.fixture(scope="module")
def inside(web_server, owner) -> Browser:
    return enter(web_server, owner)


def _log_since(web_server, offset: int) -> str:
    return web_server.log.read_bytes()[offset:].decode(errors="replace")


# -- (d) the app makes the gateway answer 500, with a traceback in the log ----------------------------------------
@pytest.mark.parametrize("path", ["/control-character", "/bad-length"])
def test_an_answer_gunicorn_cannot_send_loses_its_bad_header_not_a_500(web_server, hostile, path):
    """The app's head was passed to gunicorn unchecked: a header value with a control character (gunicorn's
    InvalidResponseHeader) or a Content-Length that is not a number (int() in gunicorn) became gunicorn's 500
    page with a traceback logged. Such a header is left out now."""
    before = web_server.log.stat().st_size
    r = hostile.get(path)
    assert r.status_code == 200 and r.text == "ok", (r.status_code, r.text)
    assert "X-Evil" not in r.headers and r.headers.get("Content-Length") != "2x"
    assert "Traceback" not in _log_since(web_server, before)


@pytest.mark.parametrize("bad", ["/\t/evil.example", "/x\r\nSet-Cookie: a=b", "/\u2028"])
def test_enter_sends_the_browser_only_to_a_path_of_the_service(web_server, owner, bad):
    """/.labnb/enter put ``next`` (decoded) into Location after checking only its first characters: a tab
    passes gunicorn and a browser strips it, "/<TAB>/evil.example" was an open redirect; CR/LF made a 500.
    It always sends the browser to the service's "/" now."""
    r = owner.get(f"{web_server.url}/proxy/{PORT}/", allow_redirects=False, timeout=10)
    url = urlsplit(r.headers["Location"])
    before = web_server.log.stat().st_size
    r = Browser(web_server, url.netloc).get(f"{url.path}?{url.query}&next={quote(bad)}")
    assert r.status_code != 500, r.text
    if r.status_code == 302:
        assert r.headers["Location"] == "/", r.headers["Location"]
    assert "Traceback" not in _log_since(web_server, before)


# -- cookies the app sets ---------------------------------------------------------------------------------------
def test_the_answer_to_a_websocket_upgrade_cannot_set_labnbs_cookies(web_server, hostile):
    """The app's answer to an upgrade was relayed as raw bytes: its Set-Cookie headers for labnb's session
    cookie and the service's pass reached the browser. It is filtered as a plain answer is."""
    cookie = "; ".join(f"{k}={v}" for k, v in hostile.cookies.items())
    with socket.create_connection(("127.0.0.1", web_server.port), timeout=30) as s:
        s.sendall((f"GET /ws-cookies HTTP/1.1\r\nHost: {hostile.host}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nOrigin: http://{hostile.host}\r\nCookie: {cookie}\r\n\r\n").encode())
        head = s.makefile("rb")
        lines = iter(head.readline, b"\r\n")   # the answer's head, up to its blank line
        text = b"".join(line for line, _ in zip(lines, range(100))).decode("latin-1")
    assert text.startswith("HTTP/1.1 101"), text
    planted = re.findall(rf"(?im)^set-cookie:\s*(labnb-{web_server.port}(?:-proxy)?)=", text)
    assert not planted, text


def test_an_app_cookie_is_for_its_own_host_only(hostile):
    """A Set-Cookie with Domain passed: under a wildcard LABNB_PROXY_DOMAIN (labs.example.org) a learner's
    app set cookies for every other learner's services (Chromium takes Domain=labs.example.org from
    p80-x.labs.example.org): session fixation in another learner's app, or a cookie bomb. Domain= is cut."""
    r = hostile.get("/domain-cookie")
    assert r.status_code == 200
    for c in r.raw.headers.getlist("Set-Cookie"):
        assert "domain=" not in c.lower(), c


def _attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    """A Set-Cookie's name and attributes as a browser reads them (RFC 6265 section 5.2, 6265bis for no '=')."""
    pair, *parts = set_cookie.split(";")
    name = pair.partition("=")[0].strip(" \t") if "=" in pair else ""
    return name, {k.strip(" \t").lower(): v.strip(" \t") for k, _, v in (p.partition("=") for p in parts)}


def test_domain_is_cut_as_a_browser_reads_it_and_a_cookie_needs_a_name(web_server, hostile):
    """``Domain =localhost`` passed: the pattern that cut Domain wanted '=' right after the name, a browser trims
    the space (and tabs, and reads any case). Under a wildcard LABNB_PROXY_DOMAIN, learner A's app set a cookie
    that learner B's app received (Chromium does, with --host-resolver-rules mapping *.labs.test). A cookie with
    no name passed too: a browser sends ``=labnb-<port>-proxy=planted`` back as a cookie of labnb's name, and
    ``=__Host-x=1`` as a prefixed one. Each cookie is read as a browser reads it and written back now."""
    r = hostile.get("/cookie-attributes")
    assert r.status_code == 200
    passed = [_attributes(c) for c in r.raw.headers.getlist("Set-Cookie")]
    assert sorted(name for name, _ in passed) == ["cased", "tabbed", "tossed"], passed
    for name, attributes in passed:
        assert "domain" not in attributes, (name, attributes)
    assert dict(passed)["cased"] == {"path": "/", "secure": ""}


@pytest.fixture(scope="module")
def under(web_server, owner) -> str:
    """The path-based way into the hostile app, on labnb's own origin."""
    r = owner.get(f"{web_server.url}/proxy/{HOSTILE_PORT}/?via=path", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/.labnb/p/"), r.headers
    return r.headers["Location"]


# -- by the path-based way the app is served from labnb's own origin -----------------------------------------------
def test_headers_that_act_on_the_origin_do_not_pass_from_an_app(web_server, hostile, under):
    """By the path-based way every header of the app's passed but Set-Cookie: ``Clear-Site-Data: "cookies"``
    signed the viewer (the instructor) out of labnb (test_an_apps_page_cannot_sign_its_viewer_out, in Chromium),
    ``Service-Worker-Allowed: /`` would let a service worker of the app's take labnb's whole origin, and so on.
    Only what describes the content passes there now (an allow list), with labnb's sandbox as the only policy.
    By its own host name the app's origin is its own: its headers pass, but Clear-Site-Data, whose "cookies"
    clears the whole registrable domain (every learner's service under LABNB_PROXY_DOMAIN)."""
    r = requests.get(f"{web_server.url}{under}origin-headers", timeout=30)
    assert r.status_code == 200 and r.text == "<p>headers</p>"
    passed = {k.lower() for k in r.headers} - {"date", "server", "connection"}
    assert passed == {"content-type", "content-length", "cache-control", "access-control-allow-origin",
                      "content-security-policy"}, passed
    assert r.raw.headers.getlist("Content-Security-Policy") == [
        "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"]
    own = hostile.get("/origin-headers")
    assert "Clear-Site-Data" not in own.headers
    assert own.headers["Service-Worker-Allowed"] == "/" and own.headers["X-App"] == "own"


def test_an_upgrades_answer_sets_no_cookie_on_labnbs_origin(web_server, under):
    """The answer to a WebSocket upgrade by the path-based way kept the app's own cookies (only labnb's names
    were dropped): they were set on labnb's own origin. It passes what a plain answer there passes now."""
    with socket.create_connection(("127.0.0.1", web_server.port), timeout=30) as s:
        s.sendall((f"GET {under}ws-cookies HTTP/1.1\r\nHost: 127.0.0.1:{web_server.port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nOrigin: null\r\n\r\n").encode())
        lines = iter(s.makefile("rb").readline, b"\r\n")
        text = b"".join(line for line, _ in zip(lines, range(100))).decode("latin-1")
    assert text.startswith("HTTP/1.1 101"), text
    assert not re.findall(r"(?im)^set-cookie:", text), text


@pytest.mark.parametrize("fetch", [
    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"},
    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "same-origin", "Sec-Fetch-Dest": "serviceworker",
     "Service-Worker": "script"},
    {"Service-Worker": "script"},
], ids=["script", "image", "fetch", "service-worker", "service-worker-unlabelled"])
def test_labnbs_own_pages_cannot_load_a_learners_bytes(web_server, hostile, under, fetch):
    """By the path-based way the learner's bytes are served from labnb's own origin: a labnb page with a tag
    injected into it would run them as a script (``script-src 'self'``), register them as a service worker,
    read them, or send the page's secrets to the app in an image's URL. What one of labnb's own pages asks
    there (``Sec-Fetch-Site: same-origin``, as Chromium sends it) is refused before the app sees it, but the
    opening of a page (test_the_app_opens_by_the_path_based_way_from_labnbs_page)."""
    marker = f"/leak-{fetch.get('Sec-Fetch-Dest', 'sw')}"
    r = requests.get(f"{web_server.url}{under}{marker[1:]}", headers=fetch, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text)
    assert marker not in hostile.get("/seen").text


def test_the_app_opens_by_the_path_based_way_from_labnbs_page(web_server, under):
    """What still passes: the lab page's link (a same-origin navigation to a page), and the app's own requests
    from its sandboxed page (an opaque origin: ``cross-site``, ``Origin: null``)."""
    navigate = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert requests.get(f"{web_server.url}{under}evil.js", headers=navigate, timeout=30).status_code == 200
    own = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"}
    assert requests.get(f"{web_server.url}{under}evil.js", headers=own, timeout=30).status_code == 200


def _admits(policy: str, directive: str, url: str) -> bool:
    """Whether a CSP (as labnb writes it: 'self', 'none', host sources with a path) admits ``url`` for
    ``directive`` on a page of ``url``'s origin."""
    sources = dict((d.split()[0], d.split()[1:]) for d in policy.split(";") if d.strip())
    fallback = {"worker-src": ["child-src", "script-src"]}.get(directive, []) + ["default-src"]
    directive = next(d for d in [directive] + fallback if d in sources)
    parts = urlsplit(url)
    for source in sources[directive]:
        if source == "'self'":
            return True
        s = urlsplit(source)
        if s.scheme and s.netloc == parts.netloc and parts.path.startswith(s.path or "/"):
            return True
    return False


def test_labnbs_pages_name_their_own_static_files_not_its_origin(web_server, owner, under):
    """labnb's pages took scripts (styles, images, fonts, workers) from 'self': all of labnb's origin, where the
    path-based way serves every learner's bytes, so that an HTML injection into a labnb page could run them as
    labnb. They name labnb's static files' path now (Chromium refuses the rest: test_an_injected_script_...)."""
    for r in (owner.get(f"{web_server.url}/labs/93-proxy-test", timeout=10),
              requests.get(f"{web_server.url}/", timeout=10)):
        policy = r.headers["Content-Security-Policy"]
        for directive in ("script-src", "style-src", "img-src", "font-src", "worker-src"):
            assert not _admits(policy, directive, f"{web_server.url}{under}evil.js"), (directive, policy)
        for directive in ("script-src", "style-src"):
            assert _admits(policy, directive, f"{web_server.url}/static/labnb.js"), (directive, policy)
        assert not _admits(policy, "worker-src", f"{web_server.url}/static/labnb.js"), policy


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.slow
def test_an_apps_page_cannot_sign_its_viewer_out(web_server, chromium, under):
    """By the path-based way, an app's page with ``Clear-Site-Data: "cookies"`` (Chromium honours it on
    loopback and over HTTPS) took labnb's session cookie from whoever opened it: the instructor, from the
    dashboard, was signed out of the workshop. Nothing of the kind passes now."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{web_server.url}/?token={web_server.token}")
        session = f"labnb-{web_server.port}"
        assert session in [c["name"] for c in context.cookies()]
        page.goto(f"{web_server.url}{under}clear-site-data")
        assert page.text_content("p") == "cleared"
        assert session in [c["name"] for c in context.cookies()]
        assert page.goto(f"{web_server.url}/").status == 200
    finally:
        context.close()


@pytest.mark.slow
def test_an_injected_tag_cannot_run_or_reach_a_learners_bytes_from_labnbs_page(web_server, chromium, hostile, under):
    """A labnb page as the server sends it (its headers, its policy) with tags injected into it, as an HTML
    injection would: its ``<script src>`` of the learner's bytes by the path-based way ran as labnb (script-src
    'self'), and its ``<img src>`` sent the app what the URL carried. Neither is loaded now."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{web_server.url}/?token={web_server.token}")

        def inject(route):
            response = route.fetch()
            tags = f'<script src="{under}evil.js"></script><img src="{under}leak-injected?secret">'
            route.fulfill(response=response, body=response.text().replace("</body>", tags + "</body>"))
        page.route(f"{web_server.url}/", inject)
        page.goto(f"{web_server.url}/")
        assert page.locator("script[src$='evil.js']").count() == 1   # the tag is there
        assert page.evaluate("window.pwned") is None and page.title() != "pwned"
        assert "/leak-injected" not in hostile.get("/seen").text
    finally:
        context.close()


# -- (b) another learner's page, in the same site ---------------------------------------------------------------
def test_a_post_from_another_services_page_is_refused(web_server, inside):
    """Services under a wildcard LABNB_PROXY_DOMAIN are one site: a learner's page, opened by the instructor,
    sent POSTs to another learner's service with that service's SameSite=Lax pass (Chromium does, with an
    Origin header: this request is what it sends). A request naming another origin is refused now."""
    elsewhere = f"http://p{PORT}-lh-000000-000000.localhost:{web_server.port}"
    r = inside.request("POST", "/upload", data=b"x" * 10, headers={"Origin": elsewhere})
    assert r.status_code == 403, (r.status_code, r.text)


# -- (c) exhaustion ---------------------------------------------------------------------------------------------
def test_a_few_learners_cannot_take_every_connection_to_every_service(web_server, owner, inside):
    """Learners (or one person with several browser identities) holding as many idle WebSockets as they may
    to their own echo apps took every connection (4 x 12 was all 48): every other learner's services
    answered 429 meanwhile. The last connections are kept for owners who hold fewer than two."""
    sockets, refused = [], 0
    try:
        for _ in range(IN_ALL // PER_OWNER):
            hog = web_server.learner_who_ran(LAB, "app")
            browser = enter(web_server, hog)
            for _ in range(PER_OWNER):
                try:
                    sockets.append(_ws(web_server, browser))
                except websocket.WebSocketBadStatusException as e:
                    assert e.status_code == 429
                    refused += 1
        assert refused and len(sockets) < IN_ALL
        r = inside.get("/")
        assert r.status_code == 200, (r.status_code, r.text)
    finally:
        for ws in sockets:
            ws.close()


# -- the ports list and the learner's dockerd -------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_dockerd(web_server):
    """A learner with the test lab's app running, who can replace their lab host's dockerd."""
    http = web_server.learner_who_ran(LAB, "app")
    shell = Shell(web_server, http)

    def fake(mode: str, n: int = 0) -> None:
        shell.write("/tmp/fake.py", NAMED_DOCKERD)
        out = shell.run('[ -e /tmp/fake.pid ] && kill -9 "$(cat /tmp/fake.pid)"; rm -f /tmp/fake.pid; '
                        '[ -e /run/docker.pid ] && kill "$(cat /run/docker.pid)"; '
                        'while [ -e /run/docker.pid ]; do sleep 0.05; done; rm -f /run/docker.sock; '
                        f'setsid -f python3 /tmp/fake.py {mode} {n} </dev/null >/tmp/fake.log 2>&1; '
                        'for i in $(seq 100); do [ -S /run/docker.sock ] && break; sleep 0.1; done; '
                        '[ -S /run/docker.sock ] && echo fake-$((2+3)) || cat /tmp/fake.log')
        assert "fake-5" in out, out
        time.sleep(1.1)   # past the last list of the ports (one a second at most)
    try:
        yield http, fake
    finally:
        shell.run('kill -9 "$(cat /tmp/fake.pid)"')   # frees a server thread still reading from it
        shell.close()


def test_the_ports_list_takes_no_gzip_answer_from_the_learners_dockerd(web_server, own_dockerd):
    """The ports list asked the learner's dockerd with the docker SDK, which inflates a gzip answer whole
    (test_network_attacks' bomb). It asks through engine.py, which refuses an encoded answer."""
    http, fake = own_dockerd
    fake("gzip")
    fragment = http.get(f"{web_server.url}/ports", timeout=30).text
    assert f'href="/proxy/{PORT}/"' in fragment                 # the port still shows
    assert "inflated" not in fragment, fragment


def test_the_ports_list_does_not_wait_on_a_dripping_dockerd(web_server, own_dockerd):
    """The SDK's timeout bounds each read, not the answer: a dockerd that sends a byte every 2 s held the
    request (and a server thread) for as long as it liked. engine.py's deadline holds."""
    http, fake = own_dockerd
    fake("drip")
    start = time.monotonic()
    try:
        r = http.get(f"{web_server.url}/ports", timeout=20)
    except requests.ReadTimeout:
        pytest.fail("the ports list waited 20 s for the learner's dockerd")
    assert time.monotonic() - start < 10 and f'href="/proxy/{PORT}/"' in r.text


def test_the_ports_list_cleans_what_the_learners_dockerd_names(web_server, own_dockerd):
    """The container's name was cleaned, its PrivatePort not: terminal escapes (an OSC 8 link here) from the
    learner's dockerd landed in the lab page (and the instructor's view of it). Every field is cleaned."""
    http, fake = own_dockerd
    fake("escapes")
    fragment = http.get(f"{web_server.url}/ports", timeout=30).text
    assert "published by inflated" in fragment
    assert "\x1b" not in fragment and "\x07" not in fragment, repr(fragment[-600:])


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])


def test_a_gzip_bomb_from_the_learners_dockerd_does_not_inflate_in_the_server(web_server, own_dockerd):
    """The same, measured: 64 MiB of JSON sent as about 64 KiB of gzip raised the peak memory of the server's
    one worker by well over 64 MiB; a few GiB would kill it, and every learner's terminals and runs."""
    http, fake = own_dockerd
    fake("bomb", 64)
    worker = web_server.worker_pid()
    before = _peak_kib(worker)
    http.get(f"{web_server.url}/ports", timeout=60)
    grown = (_peak_kib(worker) - before) >> 10
    assert grown < 32, f"the worker's peak memory grew by {grown} MiB"


# -- (b) the instructor opens a learner's service: a top-level navigation from it ----------------------------------
@pytest.fixture(scope="module")
def room():
    from workshop_support import workshop_server
    yield from serving(workshop_server("proxy-attacks-room", uid_slot=60, capacity=1))


def test_a_learners_page_cannot_sign_the_instructor_in_as_the_learner(room):
    """GET /join/resume/<token> replaced whatever session the browser had: a learner's service page, which
    the instructor opens from the dashboard, navigated the instructor's tab to the learner's own resume
    link, and the instructor's cookie became the learner's. The link now asks first (a POST does it)."""
    from workshop_support import seated
    mallory = seated(room, "Mallory")
    page = mallory.get(f"{room.url}/workshop/resume-link", timeout=10).text
    resume = re.search(r"<code>(http[^<]+)</code>", page).group(1)
    instructor = room.operator()
    assert instructor.get(f"{room.url}/api/workshop", timeout=10).status_code == 200
    # what the browser sends for `location = resume` from http://p8080-<mallory's lab host>.localhost:<port>/
    instructor.get(resume, timeout=10, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                                "Sec-Fetch-Dest": "document"})
    assert instructor.get(f"{room.url}/api/workshop", timeout=10).status_code == 200
