"""Who may use the server, the way Jupyter does it.

Only holders of the server token get in: the URL ``labnb serve`` prints
carries it as ``?token=``; the first request that shows it gets a signed
session cookie instead, and the token leaves the address bar. The cookie also
names the browser's learner (their runs and lab host) and holds a CSRF token
that every POST must send back in the ``X-CSRF-Token`` header.

Host and Origin are checked so that another web page cannot drive the server
through the learner's browser (DNS rebinding, cross-site requests and
WebSockets).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, redirect, render_template, request, session

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CSRF_HEADER = "X-CSRF-Token"


def secret_key(state_dir: str) -> bytes:
    """The key that signs session cookies, kept in the state dir so that
    learners keep their identity (and their recorded runs) across restarts."""
    path = os.path.join(state_dir, "secret_key")
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(state_dir, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def allowed_hosts(bind_host: str) -> frozenset[str] | None:
    """Host names the Host header may carry; None (any) when the server listens
    on every address, as for a workshop, where the token alone guards it."""
    if bind_host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK_NAMES | {bind_host.strip("[]")}


def _hostname(netloc: str) -> str:
    return (urlsplit("//" + netloc).hostname or "").lower()


class Guard:
    """Checks every request: Host, Origin, token or session cookie, CSRF."""

    def __init__(self, token: str, hosts: frozenset[str] | None):
        self.token = token
        self.hosts = hosts
        # What the cookie holds: a digest, so a cookie from a server started
        # with another token is worthless.
        self.mark = hashlib.sha256(b"labnb-token:" + token.encode()).hexdigest()[:32]

    def init_app(self, app: Flask) -> None:
        app.extensions["labnb.guard"] = self
        app.before_request(self._before_request)

    # -- checks shared with Socket.IO ----------------------------------------
    def refusal(self) -> str | None:
        """Why the current request may not go on (None: it may), for HTTP and Socket.IO alike."""
        host = _hostname(request.host)
        if self.hosts is not None and host not in self.hosts:
            return f"the Host {request.host!r} is not this server's; open the URL that labnb serve printed"
        origin = request.headers.get("Origin")
        if origin is not None and (urlsplit(origin).netloc.lower() != request.host.lower()
                                   or urlsplit(origin).scheme not in ("http", "https")):
            return f"requests from the page at {origin!r} are not allowed"
        if session.get("auth") != self.mark:
            return "no valid token: open the URL that labnb serve printed (it ends in ?token=...)"
        if not isinstance(session.get("learner"), str):
            return "no learner in the session cookie: open the URL that labnb serve printed"
        return None

    def _before_request(self) -> Response | None:
        given = request.args.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return self._refuse("wrong token: open the URL that labnb serve printed, with its token")
            session.permanent = True
            session["auth"] = self.mark
            session.setdefault("learner", uuid.uuid4().hex)
            session.setdefault("csrf", secrets.token_urlsafe(24))
            if request.method == "GET":
                args = {k: v for k, v in request.args.items(multi=True) if k != "token"}
                return redirect(request.path + ("?" + urlencode(args) if args else ""), code=303)
        why = self.refusal()
        if why:
            return self._refuse(why)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                return self._refuse(f"missing or wrong {CSRF_HEADER} header: reload the page and try again")
        return None

    @staticmethod
    def _refuse(why: str) -> Response:
        return Response(render_template("refused.html", why=why), status=403)


def learner() -> str:
    """The learner id of the current request (checked by the Guard)."""
    return session["learner"]


def csrf_token() -> str:
    return session["csrf"]
