"""What the server asks a lab host's dockerd (its pages, a lab's images), asked as of a hostile peer.

The learner is root in the lab host and may put any program on its
``/run/docker.sock``. The docker SDK trusts its daemon: it reads an answer
without a deadline as long as bytes trickle in, with no bound on its size,
and inflates a gzip answer whole (a few KiB from the lab host, gigabytes in
the server). Here a question is one HTTP/1.0 request with an overall deadline
and a bound on the answer's size (``ask``; ``first_line`` searches a streamed
one); only an uncompressed answer is taken. What
it names is the learner's text: ``clean`` makes it safe to show. (The SDK
client, ``SandboxLabHost.docker``, is only for the server's own jobs on a lab
host it just made, before any learner command ran.)
"""
from __future__ import annotations

import json
import os
import time

from .base import DOCKER_API, LabHost, LabHostError

DEADLINE = 3.0          # seconds for a whole answer
MAX_ANSWER = 4 << 20    # bytes: the list of a few thousand containers
MAX_CONTAINERS = 256    # of a list, considered at most
MAX_NAME = 48           # characters of a name shown
MAX_STREAM = 16 << 20   # bytes of a streamed answer: a pull's progress messages (a few hundred KiB for 1 GB)
MAX_LINE = 64 << 10     # bytes of one of its messages


def clean(text, limit: int = MAX_NAME) -> str:
    """A learner's name as text anyone may show: no control characters, no undecodable bytes, bounded."""
    text = text if isinstance(text, str) else str(text)
    text = os.fsencode(text[:limit + 1]).decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class EngineError(LabHostError):
    """The lab host's dockerd gave no usable answer; the message says how."""


class Refused(EngineError):
    """dockerd answered with an error status: ``status``, and what it said (cleaned)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"dockerd answered {status}: {message}")
        self.status, self.message = status, message


def get(host: LabHost, path: str, deadline: float = DEADLINE, limit: int = MAX_ANSWER):
    """The JSON answer of the lab host's dockerd to ``GET path`` (``/containers/json``)."""
    status, body = ask(host, "GET", path, deadline, limit)
    if status != 200:
        raise EngineError(f"dockerd answered {path} with {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError(f"dockerd's answer to {path} is not JSON") from None


def ask(host: LabHost, method: str, path: str, deadline: float = DEADLINE,
        limit: int = MAX_ANSWER) -> tuple[int, bytes]:
    """The status and body of the lab host's dockerd's answer to ``method path``, read whole."""
    end = time.monotonic() + deadline
    sock = _asked(host, method, path, deadline)
    data = bytearray()
    try:
        while part := _part(sock, end, path, deadline):
            data += part
            if len(data) > limit:
                raise EngineError(f"dockerd's answer to {path} is larger than {limit >> 20} MiB")
    finally:
        sock.close()
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise EngineError(f"dockerd's answer to {path} is not HTTP")
    return _status(head, path), body


def first_line(host: LabHost, method: str, path: str, deadline: float, containing: bytes,
               limit: int = MAX_STREAM) -> bytes | None:
    """The first line (stripped) of a streamed answer (``docker pull``'s progress messages) that contains
    ``containing``, read up to it; None if the answer ended without one. ``deadline`` seconds and ``limit``
    bytes in all, MAX_LINE a line; searched, never split line by line (a million tiny lines cost no more
    than one). A status other than 200 is ``Refused``, with what dockerd said."""
    end = time.monotonic() + deadline
    sock = _asked(host, method, path, deadline)
    try:
        data, status, taken = bytearray(), None, 0
        while part := _part(sock, end, path, deadline):
            taken += len(part)
            if taken > limit:
                raise EngineError(f"dockerd's answer to {path} is larger than {limit >> 20} MiB")
            data += part
            if status is None:
                head, sep, rest = bytes(data).partition(b"\r\n\r\n")
                if not sep and len(data) > MAX_LINE:
                    raise EngineError(f"dockerd's answer to {path} has a head over {MAX_LINE >> 10} KiB")
                if not sep:
                    continue
                status, data = _status(head, path), bytearray(rest)
            if status != 200:
                continue   # its error, read whole below
            found = data.find(containing)
            start = data.rfind(b"\n", 0, found if found >= 0 else len(data)) + 1
            if found >= 0 and data.find(b"\n", found) >= 0:
                return bytes(data[start:data.find(b"\n", found)]).strip()
            del data[:start]   # the line not ended yet, all that is kept
            if len(data) > MAX_LINE:
                raise EngineError(f"a line of dockerd's answer to {path} is over {MAX_LINE >> 10} KiB")
    finally:
        sock.close()
    if status is None:
        raise EngineError(f"dockerd's answer to {path} is not HTTP")
    if status != 200:
        raise Refused(status, said(bytes(data)))
    return bytes(data).strip() if containing in data else None


def said(body: bytes) -> str:
    """dockerd's error message in ``body`` (``{"message": ...}``), cleaned, or the body's start."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return clean(message if isinstance(message, str) else body[:300].decode("utf-8", "replace"), 300)


def _asked(host: LabHost, method: str, path: str, deadline: float):
    """A connection to the lab host's dockerd with the request sent (HTTP/1.0: an answer ends as the
    connection does, never chunked)."""
    sock = host.docker_socket(timeout=deadline)
    try:
        sock.sendall(f"{method} /v{DOCKER_API}{path} HTTP/1.0\r\nHost: docker\r\nAccept-Encoding: identity\r\n"
                     f"Content-Length: 0\r\n\r\n".encode())
    except OSError as e:
        sock.close()
        raise EngineError(f"dockerd did not take the request {method} {path}: {e}") from None
    return sock


def _part(sock, end: float, path: str, deadline: float) -> bytes:
    left = end - time.monotonic()
    if left <= 0:
        raise EngineError(f"dockerd did not answer {path} within {deadline:g} s")
    try:
        sock.settimeout(left)
        return sock.recv(1 << 16)
    except OSError as e:
        raise EngineError(f"dockerd did not answer {path} within {deadline:g} s: {e}") from None


def _status(head: bytes, path: str) -> int:
    """The answer's status, if it is plain (neither compressed nor chunked: HTTP/1.0's answer is neither)."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[1].isdigit():
        raise EngineError(f"dockerd's answer to {path} is not HTTP")
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("content-encoding", "identity") != "identity" or "transfer-encoding" in headers:
        raise EngineError(f"dockerd's answer to {path} is encoded ({headers.get('content-encoding') or 'chunked'}),"
                          " not plain")
    return int(status[1])

