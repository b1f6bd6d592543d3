"""What the forwarder lets a lab host ask the image cache: the registry API's reads, nothing else.

Every byte of a request comes from the lab host's root, so the request head is parsed here strictly,
before anything is sent on: one request line (GET or HEAD, an origin-form ``/v2/...`` path matching
the API's grammar exactly: no query, no escapes, no dot segments), headers within bounds, no body. A
refusal is a registry-style error (``{"errors": [{"code", "message"}]}``) that docker prints."""
from __future__ import annotations

import dataclasses
import json
import re

MAX_HEAD = 8 << 10          # request line and headers together
MAX_HEADERS = 40
MAX_ACCEPT = 2 << 10        # the Accept header(s) passed on, joined

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT}){{0,15}}"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}"
PATH = re.compile(rf"/v2/(?P<name>{_NAME})/(?:manifests/(?P<reference>{_TAG}|{_DIGEST})"
                  rf"|blobs/(?P<digest>{_DIGEST})|(?P<tags>tags/list))\Z")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")

NO_PUSH = ("labnb's image cache takes no pushes from a lab host: images come from the cache only "
           "(the operator adds one with `labnb image import FILE` or `labnb image pull NAME`)")
NO_ROUTE = ("this lab host reaches no registry but labnb's image cache, which does not have this image: "
            "ask the operator to run `labnb image pull NAME` or `labnb image import FILE`, then pull again")


class Refused(Exception):
    """A request the forwarder answers itself with ``status``, an error ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def answer(self, head_only: bool = False) -> bytes:
        return error_answer(self.status, self.code, self.message, head_only)


@dataclasses.dataclass(frozen=True)
class Request:
    method: str            # GET or HEAD
    path: str              # "/v2/" or a path PATH matches
    name: str | None       # the repository, for PATH's paths
    accept: str            # the Accept header(s), joined (manifests' media types)
    tag: str = ""          # the tag of a manifest asked by tag ("" for anything else)

    @property
    def ping(self) -> bool:
        return self.path == "/v2/"

    def head(self) -> bytes:
        """The request sent on to the cache: rebuilt from what was checked, never the lab host's bytes."""
        lines = [f"{self.method} {self.path} HTTP/1.1", "Host: cache", "Connection: close"]
        if self.accept:
            lines.append(f"Accept: {self.accept}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests", 431:
            "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable"}


def error_answer(status: int, code: str, message: str, head_only: bool = False, reason: str | None = None) -> bytes:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    head = (f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Docker-Distribution-Api-Version: registry/2.0\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii")
    return head if head_only else head + body


def ping_answer(head_only: bool = False) -> bytes:
    body = b"{}"
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
    return head if head_only else head + body


def connect_refusal() -> bytes:
    """The answer to a CONNECT (dockerd's HTTPS_PROXY, when it falls back from the mirror to Docker Hub): a
    refusal whose reason phrase says why, as Go's HTTP client prints a proxy's status line."""
    reason = "labnb: " + NO_ROUTE.replace("\r", " ").replace("\n", " ")
    return error_answer(403, "DENIED", NO_ROUTE, reason=reason)


def parse(head: bytes) -> Request:
    """The request in ``head`` (its bytes up to and with the blank line), or ``Refused``."""
    if len(head) > MAX_HEAD:
        raise Refused(431, "TOOLARGE", f"the request head is over {MAX_HEAD} bytes")
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(400, "BADREQUEST", "the request head is not ASCII") from None
    lines = text.split("\r\n")
    if len(lines) < 3 or lines[-2:] != ["", ""]:
        raise Refused(400, "BADREQUEST", "a request head ends with an empty line, each line with CRLF")
    lines = lines[:-2]
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise Refused(400, "BADREQUEST", "the request line is not METHOD PATH HTTP/1.x")
    method, target, _version = parts
    if len(lines) - 1 > MAX_HEADERS:
        raise Refused(431, "TOOLARGE", f"more than {MAX_HEADERS} header lines")
    accept = []
    for line in lines[1:]:
        field, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(field) or not _VALUE.match(value):
            raise Refused(400, "BADREQUEST", "a header line is not NAME: VALUE in printable ASCII")
        field, value = field.lower(), value.strip()
        if field == "content-length" and value != "0" or field == "transfer-encoding":
            raise Refused(400, "BADREQUEST", "a pull sends no request body")
        if field == "accept":
            accept.append(value)
    if method == "CONNECT":
        raise Refused(403, "DENIED", NO_ROUTE)
    if method not in ("GET", "HEAD"):
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            raise Refused(405, "UNSUPPORTED", NO_PUSH)
        raise Refused(405, "UNSUPPORTED", f"method {method[:16]!r} is not allowed: only pulls (GET, HEAD)")
    joined = ", ".join(accept)
    if len(joined) > MAX_ACCEPT:
        raise Refused(431, "TOOLARGE", f"the Accept header is over {MAX_ACCEPT} bytes")
    if target == "/v2/" or target == "/v2":
        return Request(method, "/v2/", None, "")
    match = PATH.match(target)
    if not match:
        raise Refused(404, "NAME_UNKNOWN" if target.startswith("/v2/") else "UNSUPPORTED",
                      "only the registry API's pulls are served: /v2/<name>/manifests/<reference>, "
                      "/v2/<name>/blobs/<digest>, /v2/<name>/tags/list")
    if len(match["name"]) > 255:
        raise Refused(400, "NAME_INVALID", "a repository name is at most 255 characters")
    reference = match["reference"] or ""
    return Request(method, target, match["name"], joined, "" if ":" in reference else reference)
