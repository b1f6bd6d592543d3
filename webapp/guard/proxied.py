"""What a node behind a proxy (HAProxy, docs/cluster.md) needs: the client's own address, and a health check.

Behind HAProxy every connection comes from HAProxy's address, so every
per-address limit (new learners, wrong access codes, lab hosts, WebSockets)
would count the whole room as one client. HAProxy says whose request it is
in X-Forwarded-For, but anyone can send that header: it is believed only
from the addresses the operator names in LABNB_TRUSTED_PROXIES.
"""
from __future__ import annotations

import ipaddress

from ..config import proxies

HEALTH_PATH = "/healthz"


class ForwardedFor:
    """WSGI middleware, outermost: a request whose peer is a trusted proxy is from the address its
    X-Forwarded-For names last that is not itself a trusted proxy (each proxy appends the address it was
    reached from; what a client wrote there itself is further left, and never read), and came by the scheme
    its X-Forwarded-Proto says (HAProxy ends TLS: links and the CSP must say https). Any other request keeps
    its peer's address and scheme, whatever it says of itself."""

    def __init__(self, wsgi_app, trusted: str):
        self.wsgi_app, self.trusted = wsgi_app, proxies(trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip in network for network in self.trusted)

    def __call__(self, environ, start_response):
        if self._is_trusted(environ.get("REMOTE_ADDR") or ""):
            for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
                hop = hop.strip()
                if self._is_trusted(hop):
                    continue
                try:
                    environ["REMOTE_ADDR"] = str(ipaddress.ip_address(hop))
                except ValueError:
                    pass   # not an address: the proxy's own is kept
                break
            if environ.get("HTTP_X_FORWARDED_PROTO") in ("http", "https"):
                environ["wsgi.url_scheme"] = environ["HTTP_X_FORWARDED_PROTO"]
        return self.wsgi_app(environ, start_response)


class Health:
    """WSGI middleware: GET or HEAD ``/healthz`` answers 200 ``ok`` at once, before any token or Host check,
    for HAProxy's health check (``option httpchk``): it shows the node's worker answers, and tells nothing
    else. Every other request goes on."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "3"),
                                      ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"ok\n"]
        return self.wsgi_app(environ, start_response)
