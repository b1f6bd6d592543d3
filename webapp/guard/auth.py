"""Who may use the server, the way Jupyter does it.

Only holders of the server token get in: the URL ``labnb serve`` prints
carries it as ``?token=``; the first request that shows it gets a signed
session cookie instead, and the token leaves the address bar. The cookie also
names the browser's learner (their runs and lab host) and holds a CSRF token
that every POST must send back in the ``X-CSRF-Token`` header.

The operator (whoever runs the server) has a token of their own, which also
lets them in as a learner and marks their cookie as the operator's: pages
about the whole machine (``/lab-hosts``) are theirs only. Learners share the
server token in a workshop, so it can grant nothing beyond a learner's own.

Host and Origin are checked, and every response tells the browser to keep
other pages out (CSP, frame-ancestors), so that another web page cannot
drive the server through the learner's browser (DNS rebinding, cross-site
requests and WebSockets, framing).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import uuid
from functools import wraps
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, current_app, redirect, render_template, request, session

from .limits import NewLearners, WrongCodes, client_address
from .admission import OPEN, Admission

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CSRF_HEADER = "X-CSRF-Token"
# What a CSP source can name: a host name or IPv4 address, and a port (never an IPv6 address).
CSP_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secret_key(state_dir: str, shared: bytes | None = None) -> bytes:
    """The key that signs session cookies, kept in the state dir so that
    learners keep their identity (and their recorded runs) across restarts;
    ``shared``: a cluster's, which every node keeps in place of its own."""
    path = os.path.join(state_dir, "secret_key")
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 32 and shared in (None, key):
            return key
    except FileNotFoundError:
        pass
    os.makedirs(state_dir, exist_ok=True)
    key = shared or secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def operator_token(token: str, key: bytes) -> str:
    """The operator's token when none is configured: fixed for a fixed server
    token, and unguessable from it without the secret key."""
    return hmac.new(key, b"labnb-operator:" + token.encode(), hashlib.sha256).hexdigest()[:48]


def allowed_hosts(bind_host: str) -> frozenset[str] | None:
    """Host names the Host header may carry; None (any) when the server listens
    on every address, as for a workshop, where the token alone guards it."""
    if bind_host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK_NAMES | {bind_host.strip("[]")}


def _hostname(netloc: str) -> str:
    return (urlsplit("//" + netloc).hostname or "").lower()


def _mark(kind: str, token: str) -> str:
    return hashlib.sha256(f"labnb-{kind}:{token}".encode()).hexdigest()[:32]


def token_mark(token: str) -> str:
    """What a learner's cookie holds of the learners' token."""
    return _mark("token", token)


def operator_mark(operator: str) -> str:
    """What the operator's cookie holds of their token."""
    return _mark("operator", operator)


def is_operator(mark: str) -> bool:
    """Whether this request's cookie is the operator's (``mark``: ``operator_mark`` of their token)."""
    return session.get("operator") == mark


class Guard:
    """Checks every request: Host, Origin, token or session cookie, CSRF;
    counts the new learners that a token without a cookie makes. A
    workshop's guard also lets anyone load its ``open_endpoints`` (the join
    page), counts ``wrong_codes``, and asks its ``admission`` whether a
    learner's tab may connect (limits.SocketLimits)."""

    def __init__(self, token: str, operator: str, hosts: frozenset[str] | None, new_learners: NewLearners,
                 admission: Admission = OPEN, open_endpoints: frozenset[str] = frozenset(),
                 wrong_codes: WrongCodes | None = None):
        self.token, self.operator = token, operator
        self.hosts = hosts
        self.new_learners = new_learners
        self.admission, self.open_endpoints, self.wrong_codes = admission, open_endpoints, wrong_codes
        # What the cookie holds: digests, so a cookie from a server started
        # with other tokens is worthless.
        self.mark, self.operator_mark = _mark("token", token), operator_mark(operator)

    def init_app(self, app: Flask) -> None:
        app.extensions["labnb.guard"] = self
        app.before_request(self._before_request)
        app.after_request(_harden)

    def is_operator(self) -> bool:
        return is_operator(self.operator_mark)

    # -- checks shared with Socket.IO ----------------------------------------
    def refusal(self) -> str | None:
        """Why the current request may not go on (None: it may), for HTTP and Socket.IO alike."""
        why = self.foreign()
        if why:
            return why
        if session.get("auth") != self.mark:
            return "no valid token: open the URL that labnb serve printed (it ends in ?token=...)"
        if not isinstance(session.get("learner"), str):
            return "no learner in the session cookie: open the URL that labnb serve printed"
        return None

    def foreign(self) -> str | None:
        """Why the request is not for this server or comes from another site's page (None: neither)."""
        host = _hostname(request.host)
        if self.hosts is not None and host not in self.hosts:
            return f"the Host {request.host!r} is not this server's; open the URL that labnb serve printed"
        origin = request.headers.get("Origin")
        if origin is not None and (urlsplit(origin).netloc.lower() != request.host.lower()
                                   or urlsplit(origin).scheme not in ("http", "https")):
            return f"requests from the page at {origin!r} are not allowed"
        return None

    def _before_request(self) -> Response | None:
        if request.endpoint in self.open_endpoints or hasattr(current_app.view_functions.get(request.endpoint),
                                                              "own_token"):
            why = self.foreign()
            return refuse(why) if why else None
        given = request.args.get("token")
        if given is not None:
            operator = hmac.compare_digest(given.encode(), self.operator.encode())
            if not operator and not hmac.compare_digest(given.encode(), self.token.encode()):
                return refuse("wrong token: open the URL that labnb serve printed, with its token")
            if "learner" not in session and not operator:
                why = self.new_learners.take(client_address(request.remote_addr))
                if why:
                    return refuse(why, 429)
            session.permanent = True
            session["auth"] = self.mark
            if operator:
                session["operator"] = self.operator_mark
            session.setdefault("learner", uuid.uuid4().hex)
            session.setdefault("csrf", secrets.token_urlsafe(24))
            if request.method == "GET":
                args = {k: v for k, v in request.args.items(multi=True) if k != "token"}
                return redirect(request.path + ("?" + urlencode(args) if args else ""), code=303)
        why = self.refusal()
        if why:
            return refuse(why)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                return refuse(f"missing or wrong {CSRF_HEADER} header: reload the page and try again")
        return None


def refuse(why: str, status: int = 403) -> Response:
    return Response(render_template("refused.html", why=why), status=status)


def content_security_policy() -> str:
    """Scripts, styles, images and fonts from labnb's static files only, named by their path on the host the
    browser asked for: ``'self'`` would admit all of labnb's origin, where the path-based way serves learners'
    apps (``/.labnb/p/``), so that a tag injected into a page could run a learner's bytes as labnb. Under an
    IPv6 address, which a CSP cannot name, ``'self'``: the gateway still refuses labnb's pages those paths.
    Styles may be inline: xterm.js writes <style> elements and ansi_up style attributes (bold, 256 colours);
    no script is inline, and htmx is told not to eval (base.html). No worker: labnb runs none, and a service
    worker would outlive the page."""
    static = (f"{request.scheme}://{request.host}{request.script_root}{current_app.static_url_path}/"
              if CSP_HOST.fullmatch(request.host) else "'self'")
    return "; ".join([
        "default-src 'none'", f"script-src {static}", f"style-src {static} 'unsafe-inline'", f"img-src {static}",
        f"font-src {static}", "worker-src 'none'", "connect-src 'self'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'"])


def _harden(response: Response) -> Response:
    """The security headers, unless a view chose a header of its own (the join page's Referrer-Policy)."""
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def operator_only(view):
    """For views about the whole machine: the operator's cookie only (403 for learners)."""
    @wraps(view)
    def checked(*args, **kwargs):
        if not current_app.extensions["labnb.guard"].is_operator():
            return refuse("this page is for the operator: open the operator's URL that labnb serve printed "
                          "(the learners' URL does not open it)")
        return view(*args, **kwargs)
    return checked


def operator_token_only(view):
    """For what a machine reads for the operator (``/metrics``, which Prometheus scrapes): the operator's token
    in an ``Authorization: Bearer`` header, or the operator's cookie (a browser). It needs no session, so the
    Guard leaves the check to this (``own_token``); nobody else gets more than a refusal: 401 without a
    token, 403 with a wrong one or a learner's."""
    @wraps(view)
    def checked(*args, **kwargs):
        guard = current_app.extensions["labnb.guard"]
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), guard.operator.encode()):
            return view(*args, **kwargs)
        if not given and guard.is_operator():
            return view(*args, **kwargs)
        if given or session.get("auth") == guard.mark:
            return refuse("this is for the operator: send the operator's token (LABNB_OPERATOR_TOKEN, or the one in "
                          "the operator's URL that labnb serve printed) as 'Authorization: Bearer <token>'")
        response = refuse("no token: send the operator's token as 'Authorization: Bearer <token>'", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="labnb"'
        return response
    checked.own_token = True
    return checked


def learner() -> str:
    """The learner id of the current request (checked by the Guard)."""
    return session["learner"]


def csrf_token() -> str:
    return session["csrf"]
