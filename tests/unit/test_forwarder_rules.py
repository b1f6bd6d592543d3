"""The image forwarder's rules, against a fake cache on loopback: only pulls pass, rebuilt from what was
checked; a push, a CONNECT, a bad path or a hostile head is refused with a registry-style error; each lab
host's connections, bytes in all and rate are bounded, and one lab host flooding it leaves another's pull
alone."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from webapp.config import Settings
from webapp.images import forwarder, rules
from webapp.images.client import Registry

DIGEST = "sha256:" + "0" * 64
MANIFEST = b'{"schemaVersion": 2}'


# -- parsing ---------------------------------------------------------------------------------------------------

def head(line: str, *headers: str) -> bytes:
    return ("\r\n".join([line, *headers]) + "\r\n\r\n").encode()


def test_a_pull_is_parsed_and_rebuilt_from_what_was_checked():
    request = rules.parse(head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1", "Host: x",
                               "Accept: application/vnd.oci.image.manifest.v1+json", "X-Evil: yes",
                               "Authorization: Bearer stolen"))
    assert (request.method, request.name) == ("GET", "library/nginx")
    sent = request.head().decode()
    assert sent.startswith("GET /v2/library/nginx/manifests/1.27 HTTP/1.1\r\n")
    assert "Accept: application/vnd.oci.image.manifest.v1+json" in sent
    assert "X-Evil" not in sent and "Authorization" not in sent and "Connection: close" in sent


@pytest.mark.parametrize("target", [
    "/v2/", f"/v2/library/nginx/blobs/{DIGEST}", "/v2/registry.example/team/tool/manifests/2",
    f"/v2/library/nginx/manifests/{DIGEST}", "/v2/library/nginx/tags/list"])
def test_the_apis_reads_pass(target):
    assert rules.parse(head(f"HEAD {target} HTTP/1.1")).method == "HEAD"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_push_is_refused_saying_how_images_come(method):
    with pytest.raises(rules.Refused) as refused:
        rules.parse(head(f"{method} /v2/library/nginx/blobs/uploads/ HTTP/1.1"))
    assert refused.value.status == 405 and "labnb image import" in refused.value.message


def test_connect_is_refused_with_the_reason_in_the_status_line():
    with pytest.raises(rules.Refused) as refused:
        rules.parse(head("CONNECT registry-1.docker.io:443 HTTP/1.1", "Host: registry-1.docker.io:443"))
    assert refused.value.status == 403
    status_line = rules.connect_refusal().split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("HTTP/1.1 403 labnb: ") and "labnb image pull" in status_line


@pytest.mark.parametrize("target", [
    "/v2/../../etc/passwd", "/v2/library/nginx/manifests/../../x", "/v2/library/nginx/manifests/1.27?x=1",
    "/v2/library/%6eginx/manifests/1", "/v2/Library/nginx/manifests/1", "/v2/_catalog",
    "/v2/library/nginx/blobs/uploads/", "/v2/library/nginx/blobs/sha256:abc", "http://evil/v2/",
    "/debug/vars", "/v2/library//nginx/manifests/1", "*", "/v2/" + "a/" * 20 + "b/manifests/1"])
def test_any_other_path_is_refused(target):
    with pytest.raises(rules.Refused):
        rules.parse(head(f"GET {target} HTTP/1.1"))


@pytest.mark.parametrize("data", [
    b"GET /v2/ HTTP/1.1\r\n" + b"X: y\r\n" * 50 + b"\r\n",                 # too many header lines
    b"GET /v2/ HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",              # too long a head
    b"GET /v2/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n",                    # a body
    b"GET /v2/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nX: \xff\r\n\r\n",                                # not ASCII
    b"GET /v2/ HTTP/1.1\r\nX: a\rb\r\n\r\n",                                # a bare CR
    b"GET /v2/ HTTP/1.1\nX: a\n\n",                                         # LF only
    b"GET  /v2/ HTTP/1.1\r\n\r\n", b"GET /v2/ HTTP/2\r\n\r\n", b"GET /v2/\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nno colon\r\n\r\n", b"GET /v2/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nAccept: " + b"a" * 1500 + b"\r\nAccept: " + b"b" * 1500 + b"\r\n\r\n",
    b"BREW /v2/ HTTP/1.1\r\n\r\n"])
def test_hostile_heads_are_refused(data):
    with pytest.raises(rules.Refused):
        rules.parse(data)


def test_the_bucket_passes_its_rate_and_a_second_saved_up(clock):
    bucket = forwarder.Bucket(1000, clock=clock.monotonic)
    assert bucket.delay(1000) == 0
    assert bucket.delay(500) == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.delay(0) == 0
    clock.advance(100)
    assert bucket.delay(1000) == 0 and bucket.delay(1) > 0   # at most one second saved up


# -- a forwarder against a fake cache ---------------------------------------------------------------------------

class FakeRegistry:
    """A registry on loopback: ``content`` maps a path to a body; it records the heads it was sent."""

    def __init__(self, content: dict[str, bytes]):
        self.content, self.seen = content, []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                registry.seen.append((self.command, self.path, dict(self.headers)))
                body = registry.content.get(self.path)
                self.send_response(200 if body is not None else 404)
                body = body if body is not None else b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Content-Digest", DIGEST)
                self.send_header("Set-Cookie", "leak=1")
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeCache:
    def __init__(self, *registries):
        self.registries = [Registry(r.address) for r in registries]

    def sources(self, path, named, tag=""):
        return self.registries

    def revive(self):
        self.revived = True


@pytest.fixture
def fake():
    store = FakeRegistry({"/v2/team/tool/manifests/2": b'{"from": "store"}'})
    cache = FakeRegistry({"/v2/library/nginx/manifests/1.27": MANIFEST,
                          f"/v2/library/big/blobs/{DIGEST}": b"x" * (3 << 20)})
    yield store, cache
    store.close()
    cache.close()


@pytest.fixture
def forwarding(fake):
    """``forwarding(**settings)``: a forwarder for two lab hosts "a" and "b" on loopback; their addresses."""
    made = []

    def make(**overrides):
        fw = forwarder.Forwarder(Settings(**overrides), FakeCache(*fake))
        made.append(fw)
        addresses = {}
        for lab in ("a", "b"):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            sock.setblocking(False)
            addresses[lab] = sock.getsockname()
            fw.serve(lab, sock)
        return fw, addresses
    yield make
    for fw in made:
        fw.close()


def ask(address, data: bytes, timeout: float = 20) -> tuple[int, dict, bytes]:
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(1 << 16):
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_the_store_answers_first_then_the_pull_through_cache(forwarding, fake):
    _fw, at = forwarding()
    assert ask(at["a"], head("GET /v2/team/tool/manifests/2 HTTP/1.1"))[2] == b'{"from": "store"}'
    status, headers, body = ask(at["a"], head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1", "X-Evil: 1"))
    assert (status, body) == (200, MANIFEST)
    assert headers["Docker-Content-Digest"] == DIGEST and "Set-Cookie" not in headers
    store, cache = fake
    assert [p for _, p, _ in store.seen] == ["/v2/team/tool/manifests/2", "/v2/library/nginx/manifests/1.27"]
    assert not any("X-Evil" in h for _, _, h in cache.seen)


def test_a_miss_everywhere_is_the_caches_404(forwarding):
    _fw, at = forwarding()
    assert ask(at["a"], head("GET /v2/library/nope/manifests/1 HTTP/1.1"))[0] == 404


def test_a_push_never_reaches_the_cache(forwarding, fake):
    _fw, at = forwarding()
    status, _, body = ask(at["a"], head("POST /v2/library/nginx/blobs/uploads/ HTTP/1.1", "Content-Length: 0"))
    assert status == 405 and json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
    assert not fake[0].seen and not fake[1].seen


def test_a_cache_that_does_not_answer_is_said(forwarding, fake):
    fw, at = forwarding()
    for registry in fake:
        registry.close()
    status, _, body = ask(at["a"], head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1"))
    assert status == 503 and "does not answer" in json.loads(body)["errors"][0]["message"]
    deadline = time.monotonic() + 20
    while not getattr(fw.cache, "revived", False):   # its owner may have gone: started here again
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_connections_per_lab_host_are_bounded(forwarding):
    _fw, at = forwarding(image_connections=3)
    idle = [socket.create_connection(at["a"]) for _ in range(3)]
    try:
        deadline = time.monotonic() + 20
        while True:   # the three are counted once the loop has accepted them
            status, _, body = ask(at["a"], head("GET /v2/ HTTP/1.1"))
            if status == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 429 and b"LABNB_IMAGE_CONNECTIONS" in body
        assert ask(at["b"], head("GET /v2/ HTTP/1.1"))[0] == 200   # another lab host's are its own
    finally:
        for s in idle:
            s.close()


def test_bytes_in_all_per_lab_host_are_bounded(forwarding):
    _fw, at = forwarding(image_total_mb=1)
    _status, _, body = ask(at["a"], head(f"GET /v2/library/big/blobs/{DIGEST} HTTP/1.1"))
    assert len(body) < 1 << 20   # cut at the bound
    status, _, body = ask(at["a"], head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1"))
    assert status == 429 and b"LABNB_IMAGE_TOTAL_MB" in body
    assert ask(at["b"], head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1"))[0] == 200


def test_a_silent_connection_is_closed_at_the_head_deadline(forwarding, monkeypatch):
    monkeypatch.setattr(forwarder, "HEAD_TIMEOUT", 0.5)
    _fw, at = forwarding()
    with socket.create_connection(at["a"], timeout=20) as s:
        s.sendall(b"GET /v2/ HTTP/1.1\r\n")   # and nothing more
        assert s.recv(100) == b""   # closed, within the test's deadline (the recv's timeout)


def test_a_flooding_lab_host_slows_only_itself(forwarding):
    """Lab host "a" holds all its connections (silent, a huge head, a slow reader of a big blob) and opens
    many more; lab host "b" pulls meanwhile."""
    _fw, at = forwarding(image_connections=4)
    flood = []
    try:
        flood.append(socket.create_connection(at["a"]))                       # silent
        huge = socket.create_connection(at["a"])
        huge.sendall(b"GET /v2/ HTTP/1.1\r\nX: " + b"a" * 100_000)            # a head past the bound
        flood.append(huge)
        for _ in range(2):                                                     # readers that never read
            slow = socket.create_connection(at["a"])
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(head(f"GET /v2/library/big/blobs/{DIGEST} HTTP/1.1"))
            flood.append(slow)
        flood += [socket.create_connection(at["a"]) for _ in range(100)]       # and many more
        for _ in range(5):
            status, _, body = ask(at["b"], head(f"GET /v2/library/big/blobs/{DIGEST} HTTP/1.1"), timeout=20)
            assert status == 200 and len(body) == 3 << 20
    finally:
        for s in flood:
            s.close()


def test_the_pull_through_cache_is_asked_only_for_named_or_held_hub_repositories(tmp_path):
    from webapp.images.cache import Cache

    class Local:
        dir = str(tmp_path)
    (tmp_path / "cache/docker/registry/v2/repositories/library/held").mkdir(parents=True)
    cache = Cache(Registry("unix:/store"), Registry("unix:/cache"), Local())
    named = frozenset({"library/nginx"})
    both, store = [cache.store, cache.cache], [cache.store]
    assert cache.sources("library/nginx", named) == both
    assert cache.sources("library/held", named) == both
    assert cache.sources("library/other", named) == store
    assert cache.sources("registry.example/team/tool", frozenset({"registry.example/team/tool"})) == store
    operators = Cache(Registry("http://127.0.0.1:5000"), Registry("http://127.0.0.1:5000"), None)
    assert operators.sources("library/other", named) == [operators.store]


def test_a_tls_handshake_is_answered_at_once_in_plain_http(forwarding):
    """dockerd tries TLS first with a registry on 127.0.0.1 and falls back to HTTP on an HTTP answer: it
    must not wait for the head's deadline."""
    _fw, at = forwarding()
    with socket.create_connection(at["a"], timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
        assert s.recv(12) == b"HTTP/1.1 400"
