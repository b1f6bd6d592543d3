"""What the server reads from a lab host's dockerd for its own pages, asked as of a hostile peer.

The learner is root in the lab host and may put any program on its
``/run/docker.sock``. The docker SDK trusts its daemon: it reads an answer
without a deadline as long as bytes trickle in, with no bound on its size,
and inflates a gzip answer whole (a few KiB from the lab host, gigabytes in
the server). Here a question is one HTTP/1.0 GET with an overall deadline
and a bound on the answer's size; only an uncompressed answer is taken. What
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


def clean(text, limit: int = MAX_NAME) -> str:
    """A learner's name as text anyone may show: no control characters, no undecodable bytes, bounded."""
    text = text if isinstance(text, str) else str(text)
    text = os.fsencode(text[:limit + 1]).decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class EngineError(LabHostError):
    """The lab host's dockerd gave no usable answer; the message says how."""


def get(host: LabHost, path: str, deadline: float = DEADLINE, limit: int = MAX_ANSWER):
    """The JSON answer of the lab host's dockerd to ``GET path`` (``/containers/json``)."""
    end = time.monotonic() + deadline
    sock = host.docker_socket(timeout=deadline)
    data = bytearray()
    try:
        sock.sendall(f"GET /v{DOCKER_API}{path} HTTP/1.0\r\nHost: docker\r\nAccept-Encoding: identity\r\n\r\n"
                     .encode())
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise EngineError(f"dockerd did not answer {path} within {deadline:g} s")
            sock.settimeout(left)
            part = sock.recv(1 << 16)
            if not part:
                break
            data += part
            if len(data) > limit:
                raise EngineError(f"dockerd's answer to {path} is larger than {limit >> 20} MiB")
    except OSError as e:
        raise EngineError(f"dockerd did not answer {path}: {e}") from None
    finally:
        sock.close()
    return _parse(bytes(data), path)


def _parse(data: bytes, path: str):
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if not sep or len(status) < 2 or not status[1].isdigit():
        raise EngineError(f"dockerd's answer to {path} is not HTTP")
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("content-encoding", "identity") != "identity" or "transfer-encoding" in headers:
        raise EngineError(f"dockerd's answer to {path} is encoded ({headers.get('content-encoding') or 'chunked'}),"
                          " not plain")
    if status[1] != "200":
        raise EngineError(f"dockerd answered {path} with {status[1]}")
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError(f"dockerd's answer to {path} is not JSON") from None
