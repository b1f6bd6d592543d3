"""The gateway to a lab host's web services: ``http://p<port>-<lab host>.<domain>:<server port>/``.

WSGI middleware in front of the whole app. A request whose Host names a
port of a lab host is the gateway's; every other one goes on to Flask. A
host name per port (browsers resolve ``*.localhost`` to loopback) gives the
proxied app the whole path space and an origin of its own: absolute links
and redirects work as on a real host (what breaks behind path prefixes in
jupyter-server-proxy, #42, #114, #574), and its scripts cannot reach labnb's
pages, cookies or another learner's service (another origin, another site).

Who may use it: a learner opens a port from their lab page, which hands a
one-time ticket (signed, 60 s) to ``/.labnb/enter`` on the port's host; that
sets a cookie for that host only, and every request and WebSocket upgrade
after it must carry that cookie, for that host and port, while its lab host
is still that learner's. The instructor gets one the same way from a
learner's watched page. The cookie and labnb's own are taken out of what the
app is sent (it never sees them), and the app cannot set them. The app's own
cookies, for its own host only, and the headers that act on its own origin
pass; by the path-based way, served from labnb's own origin, only those that
describe the content. Refusals are plain text (nothing the app or the
learner wrote is shown as HTML) and logged.

Bounded: connections in flight per owner and in all (each holds a server
thread, counted on top of the WebSockets'), timeouts on the app's answers,
the size of request bodies and of headers.
"""
from __future__ import annotations

import collections
import http.client
import logging
import re
import secrets
import select
import socket
import threading
import time
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..learners.registry import READY
from ..guard.limits import client_address, plain_response as _plain
from ..guard.sharing import Sharing
from . import ports

log = logging.getLogger(__name__)

ENTER = "/.labnb/enter"                    # the one path of a port's host that is labnb's, not the app's
UNDER = "/.labnb/p/"                       # the path-based way in, on labnb's own host: UNDER<pass>/<app's path>
SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
TICKET_SECONDS = 60
CONNECT_TIMEOUT = 5.0
ANSWER_TIMEOUT = 60.0                      # the app's response head, and each read of its body
WEBSOCKET_IDLE = 3600.0                    # a proxied WebSocket with no traffic either way is closed
MAX_BODY = 64 << 20                        # bytes of a request body passed to the app
MAX_HEAD = 64 << 10                        # bytes of the app's response head to a WebSocket upgrade
FEW = 2                                    # connections an owner holding fewer may open from the reserve
CHUNK = 64 << 10
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade"})
NOT_FOR_THE_APP = HOP_BY_HOP | {"host", "content-length", "cookie", "x-csrf-token"}   # or set again below
# By its own host name the app's origin is its own: its headers pass but these, which act past that origin
# ("cookies" clears the cookies of the whole registrable domain: other learners' services', maybe labnb's).
PAST_THE_ORIGIN = frozenset({"clear-site-data"})
# By the path-based way the app's answer comes from labnb's own origin: only what describes this one answer
# passes. Never what acts on the origin (Set-Cookie, Clear-Site-Data, Service-Worker-Allowed, Refresh, Link,
# Strict-Transport-Security, Origin-Agent-Cluster, policies, WWW-Authenticate's prompt), nor a claim to take
# credentials (Access-Control-Allow-Credentials: none ever reach the app).
UNDER_LABNB = frozenset({
    "content-type", "content-length", "content-encoding", "content-language", "content-disposition",
    "content-range", "accept-ranges", "cache-control", "expires", "last-modified", "etag", "age", "vary",
    "location", "retry-after", "allow", "x-content-type-options",
    "access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
    "access-control-expose-headers", "access-control-max-age",
    "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"})
# The cookie attributes a browser knows (RFC 6265bis), as they are written back; Domain is not one of them.
COOKIE_ATTRIBUTES = {"path": "Path", "expires": "Expires", "max-age": "Max-Age", "samesite": "SameSite",
                     "secure": "Secure", "httponly": "HttpOnly", "partitioned": "Partitioned"}
COOKIE_FLAGS = frozenset({"secure", "httponly", "partitioned"})   # their values are ignored
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")     # a header name (RFC 9110)
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
HOST = re.compile(r"p(?P<port>[1-9][0-9]{0,4})-(?P<host>[a-z0-9-]{1,40})\.(?P<domain>[a-z0-9.-]{1,200}?)"
                  r"(?::[0-9]{1,5})?")


def host_name(port: int, lab_host_id: str, domain: str) -> str:
    return f"p{port}-{lab_host_id}.{domain}"


class Refused(Exception):
    def __init__(self, status: str, why: str):
        super().__init__(why)
        self.status, self.why = status, why


class Gateway:
    def __init__(self, wsgi_app, settings, learners, key: bytes, cookie_prefix: str, refusals):
        self.wsgi_app, self.settings, self.learners, self.refusals = wsgi_app, settings, learners, refusals
        self.domain = settings.proxy_domain.lower()
        self.in_all = settings.proxy_connections
        self.per_owner = settings.proxy_per_learner
        self.reserve = max(FEW, self.in_all // 8)   # kept for owners who hold fewer than FEW
        self.cookie = cookie_prefix + "-proxy"
        self.labnb_cookie = cookie_prefix
        self._tickets = URLSafeTimedSerializer(key, salt="labnb-proxy-ticket")
        self._passes = URLSafeTimedSerializer(key, salt="labnb-proxy-pass")
        self._paths = URLSafeTimedSerializer(key, salt="labnb-proxy-path")
        self._used: dict[str, float] = {}   # ticket nonces already used, until they expire
        self._open: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._targets: dict[tuple[str, int], tuple[float, str]] = {}   # (lab host, port): (when, address)
        self._lists = Sharing(1.0)   # the lab hosts' listening ports

    # -- tickets, for the views that link to a port ------------------------------
    def ticket(self, owner: str, lab_host_id: str, port: int) -> str:
        """A one-time pass into ``port`` of ``owner``'s lab host for the browser that follows it (the owner's,
        or the instructor's from the dashboard)."""
        return self._tickets.dumps({"o": owner, "h": lab_host_id, "p": port, "n": secrets.token_urlsafe(12)})

    def listening(self, host) -> tuple[list[ports.Port], bool]:
        """The lab host's listening ports for its page, and whether they were listed just now: at most one
        listing a second per lab host, shared (webapp/guard/sharing.py)."""
        return self._lists.get(host.id, lambda: ports.listening(host),
                               "the ports are being listed just now: try again")

    def path_link(self, owner: str, lab_host_id: str, port: int) -> str:
        """The path-based way into ``port`` of ``owner``'s lab host, on labnb's own host, for a browser that
        cannot reach the services' host names. The link is the pass (a capability: no cookie goes with
        the sandboxed app's requests); its pages run sandboxed, in an origin of their own."""
        return UNDER + self._paths.dumps({"o": owner, "h": lab_host_id, "p": port}) + "/"

    # -- WSGI --------------------------------------------------------------------
    def __call__(self, environ, start_response):
        m = HOST.fullmatch(environ.get("HTTP_HOST", ""))
        by_host = m is not None and m["domain"] == self.domain
        if not by_host and not environ.get("PATH_INFO", "").startswith(UNDER):
            return self.wsgi_app(environ, start_response)
        address = client_address(environ.get("REMOTE_ADDR"))
        try:
            if not by_host:
                return self._under(environ, start_response)
            port, lab_host_id = int(m["port"]), m["host"]
            if not 0 < port < 65536:
                raise Refused("404 Not Found", f"there is no port {port}")
            if environ.get("PATH_INFO") == ENTER:
                return self._enter(environ, start_response, lab_host_id, port)
            owner = self._pass(environ, lab_host_id, port)
            return self._serve(environ, start_response, owner, self._lab_host(owner, lab_host_id), port)
        except Refused as e:
            self.refusals.log("a request to a lab host's web service", f"{address} for "
                              f"{environ.get('HTTP_HOST', '?')[:80]}", e.why)
            return _plain(start_response, e.status, e.why)

    def _serve(self, environ, start_response, owner: str, host, port: int, prefix: str = ""):
        release = self._slot(owner)
        try:
            body = self._forward(environ, start_response, host, port, prefix)
        except BaseException:
            release()
            raise
        body.release = release
        return body

    def _under(self, environ, start_response):
        """A request by the path-based way: ``UNDER<pass>/<the app's path>``. Its answer comes from labnb's own
        origin, so labnb's own pages may only open it as a page (its own sandbox then keeps it out of that
        origin): a script, style, image, worker, fetch or form post that one of them makes there (``Sec-Fetch-Site:
        same-origin``; ``Service-Worker`` names a service worker's script) would run or read the learner's
        bytes as labnb, or carry what is on the page to the learner."""
        fetched = (environ.get("HTTP_SEC_FETCH_MODE"), environ.get("HTTP_SEC_FETCH_DEST"), environ["REQUEST_METHOD"])
        if "HTTP_SERVICE_WORKER" in environ or (environ.get("HTTP_SEC_FETCH_SITE") == "same-origin"
                                                and fetched != ("navigate", "document", "GET")):
            raise Refused("403 Forbidden", "a lab host's service opens as a page of its own, never inside one of "
                                           "labnb's pages: open it from the link beside the port")
        path = environ["PATH_INFO"]
        link, sep, _ = path[len(UNDER):].partition("/")
        try:
            p = self._paths.loads(link, max_age=int(self.settings.session_days * 86400))
        except BadSignature:
            raise Refused("403 Forbidden", "this link to a lab host's service is not valid or has expired: open "
                                           "the port again from the lab page") from None
        prefix = UNDER + link
        if not sep:   # the app's relative links need the slash
            start_response("301 Moved Permanently", [("Location", prefix + "/"), ("Content-Length", "0")])
            return [b""]
        raw = environ.get("RAW_URI") or quote(path) + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING")
                                                      else "")
        if link not in raw:
            raise Refused("400 Bad Request", "this link to a lab host's service is garbled: open the port again")
        inner = {**environ, "PATH_INFO": path[len(prefix):], "RAW_URI": raw[raw.index(link) + len(link):]}
        return self._serve(inner, start_response, p["o"], self._lab_host(p["o"], p["h"]), p["p"], prefix)

    def _enter(self, environ, start_response, lab_host_id: str, port: int):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            t = self._tickets.loads((query.get("ticket") or [""])[0], max_age=TICKET_SECONDS)
        except BadSignature:
            raise Refused("403 Forbidden", "this link to a lab host's service is not valid or has expired: "
                                           "open the port again from the lab page") from None
        now = time.monotonic()
        with self._lock:
            self._used = {n: t0 for n, t0 in self._used.items() if now - t0 < 2 * TICKET_SECONDS}
            used = t["n"] in self._used
            self._used[t["n"]] = now
        if used or t["h"] != lab_host_id or t["p"] != port:
            raise Refused("403 Forbidden", "this link to a lab host's service was used already or is for "
                                           "another one: open the port again from the lab page")
        self._lab_host(t["o"], lab_host_id)
        value = self._passes.dumps({"o": t["o"], "h": lab_host_id, "p": port})
        start_response("302 Found", [
            ("Location", "/"), ("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"),
            ("Set-Cookie", f"{self.cookie}={value}; Path=/; HttpOnly; SameSite=Lax"),
            ("Content-Length", "0")])
        return [b""]

    def _pass(self, environ, lab_host_id: str, port: int) -> str:
        """Whose service the request may reach, from the cookie ``_enter`` set (several may come: one must
        be for this very host and port)."""
        session_days = self.settings.session_days
        for name, value in _cookies(environ.get("HTTP_COOKIE", "")):
            if name != self.cookie:
                continue
            try:
                p = self._passes.loads(value, max_age=int(session_days * 86400))
            except BadSignature:
                continue
            if p["h"] == lab_host_id and p["p"] == port:
                return p["o"]
        raise Refused("403 Forbidden", "you are not signed in to this lab host's service: open it from your "
                                       "lab page (the link beside the port)")

    def _lab_host(self, owner: str, lab_host_id: str):
        learner = self.learners.peek(owner)
        host = learner.host if learner is not None and learner.state == READY else None
        if host is None or host.id != lab_host_id:
            raise Refused("404 Not Found", f"lab host {lab_host_id} is not there any more (it was reset, or its "
                                           "time ended): open the port again from the lab page")
        return host

    def _slot(self, owner: str):
        """Count a connection to ``owner``'s services; the function that stops counting it."""
        with self._lock:
            total, mine = self._open["*"], self._open[owner]
            if total >= self.in_all or (total >= self.in_all - self.reserve and mine >= FEW):
                why = (f"{total} connections to lab hosts' services are open, the most there may be now "
                       "(LABNB_PROXY_CONNECTIONS): close some of this service's tabs, or try again soon")
            elif mine >= self.per_owner:
                why = (f"{self.per_owner} connections to this lab host's services are open, the most "
                       "(LABNB_PROXY_PER_LEARNER): close some of its tabs")
            else:
                self._open.update(("*", owner))
                why = ""
        if why:
            raise Refused("429 Too Many Requests", why)

        def release() -> None:
            with self._lock:
                self._open.subtract(("*", owner))
                if self._open[owner] <= 0:
                    del self._open[owner]
        return release

    # -- forwarding -------------------------------------------------------------
    def _connect(self, host, port: int) -> socket.socket:
        """Connected to the port in the lab host: on loopback, or where its listener is bound."""
        key = (host.id, port)
        known = self._targets.get(key)
        tries = [known[1]] if known and time.monotonic() - known[0] < 10 else ["127.0.0.1"]
        for attempt in range(2):
            for address in tries:
                try:
                    sock = host.connect(address, port, CONNECT_TIMEOUT)
                    self._targets[key] = (time.monotonic(), address)
                    return sock
                except OSError:
                    continue
            if attempt == 0:
                tries = [p.address for p in ports.listening(host, with_containers=False) if p.port == port
                         and p.address not in tries]
        raise Refused("502 Bad Gateway", f"nothing answers on port {port} in lab host {host.id}: start the "
                                         "service (is it listening? `ss -ltn` shows what does)")

    def _forward(self, environ, start_response, host, port: int, prefix: str = ""):
        """Pass the request to the app and its answer back; by the path-based way (``prefix``), only the app's
        headers that describe the content (UNDER_LABNB: no cookie, nothing that acts on labnb's origin), its
        redirects kept under the prefix and its pages sandboxed."""
        upgrade = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        if not prefix:   # by the path, the link itself is the pass: no cookie rides along, any page may use it
            self._check_origin(environ)
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            raise Refused("413 Content Too Large", f"a request body of at most {MAX_BODY >> 20} MiB is passed on")
        upstream = self._connect(host, port)
        try:
            upstream.sendall(self._head(environ, upgrade, chunked, prefix).encode("latin-1"))
            _send_body(environ, upstream, int(length) if length else 0, chunked)
            if upgrade:
                return self._websocket(environ, upstream, prefix)
            answer = http.client.HTTPResponse(upstream, method=environ["REQUEST_METHOD"])
            upstream.settimeout(ANSWER_TIMEOUT)
            answer.begin()
        except (OSError, http.client.HTTPException) as e:
            upstream.close()
            raise Refused("502 Bad Gateway", f"the service on port {port} in lab host {host.id} did not answer "
                                             f"properly: {type(e).__name__}") from None
        except BaseException:
            upstream.close()
            raise
        headers = self._answer_headers(answer.getheaders(), under_labnb=bool(prefix))
        if prefix:
            headers = [(k, _under_prefix(v, prefix, environ["HTTP_HOST"]) if k.lower() == "location" else v)
                       for k, v in headers] + [("Content-Security-Policy", SANDBOX)]
        start_response(f"{answer.status} {answer.reason or ''}".strip(), headers)
        return _Body(answer, upstream)

    def _answer_headers(self, pairs: list[tuple[str, str]], under_labnb: bool,
                        keep: frozenset = frozenset()) -> list[tuple[str, str]]:
        """The app's headers that may go on to the browser: none that gunicorn could not send (a token name, a
        value without control characters, a Content-Length that is a number), no hop-by-hop one (but ``keep``);
        by the path-based way (``under_labnb``) only UNDER_LABNB's, else none of PAST_THE_ORIGIN and each cookie
        for the service's own host only (``_app_cookie``)."""
        out = []
        for name, value in pairs:
            low = name.lower()
            if (low in HOP_BY_HOP and low not in keep) or not TOKEN.fullmatch(name) or CONTROL.search(value) \
                    or (low == "content-length" and not value.strip().isdigit()) or low in PAST_THE_ORIGIN \
                    or (under_labnb and low not in UNDER_LABNB | keep):
                continue
            if low == "set-cookie":
                value = self._app_cookie(value)
                if value is None:
                    continue
            out.append((name, value))
        return out

    def _app_cookie(self, set_cookie: str) -> str | None:
        """An app's ``Set-Cookie`` read as a browser reads it (RFC 6265 section 5.2: split at ';', each part's
        name and value at its first '=', both trimmed, attribute names in any case) and written back with only
        the attributes a browser knows but Domain (``Domain =x`` and ``DOMAIN<tab>=x`` too): a cookie for the
        service's own host. None for a cookie of labnb's name, or of none (a browser sends ``=labnb-8000=x``
        back as ``labnb-8000=x``, and ``=__Host-x=1`` as a prefixed cookie it never checked)."""
        pair, *attributes = set_cookie.split(";")
        name, sep, value = pair.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if not sep or not name or self._ours(name):
            return None
        kept = [f"{name}={value}"]
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            key = key.strip(" \t").lower()
            if key in COOKIE_ATTRIBUTES:
                kept.append(COOKIE_ATTRIBUTES[key] + ("" if key in COOKIE_FLAGS else "=" + val.strip(" \t")))
        return "; ".join(kept)

    def _head(self, environ, upgrade: bool, chunked: bool, prefix: str) -> str:
        target = environ.get("RAW_URI") or (quote(environ.get("PATH_INFO", "/")) + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""))
        lines = [f"{environ['REQUEST_METHOD']} {target} HTTP/1.1", f"Host: {environ['HTTP_HOST']}"]
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").title()
                if name.lower() not in NOT_FOR_THE_APP:
                    lines.append(f"{name}: {value}")
        if environ.get("CONTENT_TYPE"):
            lines.append(f"Content-Type: {environ['CONTENT_TYPE']}")
        kept = [f"{n}={v}" for n, v in _cookies(environ.get("HTTP_COOKIE", "")) if not self._ours(n)]
        if kept:
            lines.append("Cookie: " + "; ".join(kept))
        if prefix:
            lines.append(f"X-Forwarded-Prefix: {prefix}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif environ.get("CONTENT_LENGTH"):
            lines.append(f"Content-Length: {environ['CONTENT_LENGTH']}")
        lines += ["Connection: Upgrade", "Upgrade: websocket"] if upgrade else ["Connection: close"]
        return "\r\n".join(lines) + "\r\n\r\n"

    def _ours(self, name: str) -> bool:
        """Whether a cookie's name is labnb's: its session's, or this gateway's."""
        return name == self.cookie or name == self.labnb_cookie

    def _check_origin(self, environ) -> None:
        """A request that names an origin (a POST, a fetch, a WebSocket) must come from the service's own
        pages: under a wildcard domain every service is one site, and the browser would send another
        learner's page's POSTs with this service's pass."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and urlsplit(origin).netloc != environ["HTTP_HOST"]:
            raise Refused("403 Forbidden", "a lab host's service takes requests from its own pages only")

    def _websocket(self, environ, upstream: socket.socket, prefix: str):
        """Relay the app's answer to the upgrade (its headers as a plain answer's), then bytes both ways until
        either side closes."""
        client = environ.get("gunicorn.socket")
        if client is None:
            upstream.close()
            raise Refused("501 Not Implemented", "WebSockets to lab hosts' services need labnb serve (gunicorn)")
        try:
            upstream.settimeout(ANSWER_TIMEOUT)
            data = b""
            while b"\r\n\r\n" not in data:
                part = upstream.recv(CHUNK)
                if not part or len(data) > MAX_HEAD:
                    raise OSError("no complete answer to the upgrade")
                data += part
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            if not lines[0].startswith("HTTP/1.1 101 "):
                raise OSError(f"the app answered the upgrade with {lines[0][:40]!r}")
            pairs = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
            kept = self._answer_headers(pairs, under_labnb=bool(prefix), keep=frozenset({"upgrade", "connection"}))
            client.settimeout(None)
            client.sendall("\r\n".join(["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in kept])
                           .encode("latin-1") + b"\r\n\r\n" + rest)
            _splice(client, upstream)
        except (OSError, ValueError) as e:
            log.debug("a proxied WebSocket ended: %s", e)
        finally:
            upstream.close()
        raise StopIteration()   # gunicorn closes the connection and writes nothing more


def _under_prefix(location: str, prefix: str, host: str) -> str:
    """A redirect of the app's, kept under the path-based way's prefix (one to elsewhere is left as it is)."""
    parts = urlsplit(location)
    if parts.netloc == host and parts.scheme in ("http", "https"):
        location = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return prefix + location if location.startswith("/") and not location.startswith("//") else location


class _Body:
    """The app's response body, read as the client takes it; closes the connection (and stops counting it,
    ``release``) when done."""

    def __init__(self, answer: http.client.HTTPResponse, upstream: socket.socket):
        self.answer, self.upstream = answer, upstream
        self.release = lambda: None

    def __iter__(self):
        while True:
            try:
                data = self.answer.read1(CHUNK) if not self.answer.closed else b""
            except (OSError, http.client.HTTPException):
                return
            if not data:
                return
            yield data

    def close(self) -> None:
        self.answer.close()
        self.upstream.close()
        self.release()


def _send_body(environ, upstream: socket.socket, length: int, chunked: bool) -> None:
    stream, sent = environ["wsgi.input"], 0
    while chunked or sent < length:
        data = stream.read(min(CHUNK, length - sent) if not chunked else CHUNK)
        if not data:
            break
        sent += len(data)
        if sent > MAX_BODY:
            raise OSError("request body too large")
        upstream.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
    if chunked:
        upstream.sendall(b"0\r\n\r\n")


def _splice(a: socket.socket, b: socket.socket) -> None:
    peer = {a: b, b: a}
    while True:
        ready = select.select([a, b], [], [], WEBSOCKET_IDLE)[0]
        if not ready:
            return
        for sock in ready:
            data = sock.recv(CHUNK)
            if not data:
                return
            peer[sock].sendall(data)


def _cookies(header: str) -> list[tuple[str, str]]:
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs
