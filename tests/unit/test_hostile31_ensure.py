"""images.ensure asks a learner's lab host's dockerd, in a lab's setup, after the learner ran anything
there: whatever answers on its /run/docker.sock is hostile. A huge, compressed or endless answer must cost
the server a bounded amount of memory and time, and end in an error that says so."""
from __future__ import annotations

import gzip
import os
import socket
import threading
import time

import docker

from webapp.config import Settings
from webapp.images import ensure as ensure_mod
from webapp.labhost.base import DOCKER_API, LabHostError

from fakes import FakeLabHost


class HostileDockerd(FakeLabHost):
    """Its dockerd's socket is answered by ``answer(self, sock, request)``, a connection at a time; ``sent``
    counts the bytes the server was sent."""

    def __init__(self, answer):
        super().__init__(Settings())
        self.answer, self.sent = answer, 0
        self.start()
        self.path = os.path.join(self.home, "docker.sock")
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                theirs, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(theirs,), daemon=True).start()

    def _one(self, theirs):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                request += theirs.recv(4096)
            self.answer(self, theirs, request)
        except OSError:
            pass
        finally:
            theirs.close()

    def docker_socket(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(self.path)
        return sock

    def docker(self, timeout: int = 30):   # as SandboxLabHost's: the SDK's client of its socket
        return docker.DockerClient(base_url=f"unix://{self.path}", version=DOCKER_API, timeout=timeout)

    def destroy(self):
        self.listener.close()
        super().destroy()

    def send(self, sock, data: bytes) -> None:
        sock.sendall(data)
        self.sent += len(data)


def finishes(host, images, within: float = 60) -> BaseException | None:
    """ensure run in a thread; what it raised (None if nothing). The test fails if it has not ended."""
    raised: list[BaseException | None] = []

    def run():
        try:
            ensure_mod.ensure(host, images)
            raised.append(None)
        except BaseException as e:   # noqa: BLE001 - the test looks at it
            raised.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert raised, "ensure still waits on a hostile dockerd"
    return raised[0]


def endless_json(host, sock, request):
    """A 200 whose JSON never closes: 128 MiB at full speed."""
    host.send(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Id\": \"")
    chunk = b"a" * (1 << 20)
    for _ in range(128):
        host.send(sock, chunk)


def test_a_huge_answer_is_cut_at_a_bound():
    host = HostileDockerd(endless_json)
    raised = finishes(host, ["nginx:1.27"])
    assert isinstance(raised, LabHostError) and "larger than" in str(raised)
    assert host.sent < 32 << 20   # the server stopped reading long before the 128 MiB


def gzip_bomb(host, sock, request):
    body = gzip.compress(b'{"Id": "' + b"a" * (64 << 20) + b'"}')
    host.send(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body)


def test_a_compressed_answer_is_not_inflated():
    raised = finishes(HostileDockerd(gzip_bomb), ["nginx:1.27"])
    assert isinstance(raised, LabHostError) and "encoded" in str(raised)


def trickling_pull(host, sock, request):
    """Not there; then a pull whose one progress line never ends, a byte at a time."""
    if request.startswith(b"GET "):
        body = b'{"message": "No such image: nginx:1.27"}'
        host.send(sock, b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        return
    host.send(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\": \"")
    while True:
        host.send(sock, b"a")
        time.sleep(0.01)


def test_a_pull_that_trickles_ends_at_its_deadline(monkeypatch):
    monkeypatch.setattr(ensure_mod, "PULL_TIMEOUT", 1.0)
    raised = finishes(HostileDockerd(trickling_pull), ["nginx:1.27"])
    assert isinstance(raised, LabHostError) and "within" in str(raised)


def test_a_missing_image_is_still_said_with_what_to_do():
    def refusing(host, sock, request):
        body = b'{"message": "manifest unknown\\x1b[31m"}'
        status = b"404 Not Found" if request.startswith(b"GET ") else b"500 Internal Server Error"
        host.send(sock, b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    raised = finishes(HostileDockerd(refusing), ["nginx:1.27"])
    assert isinstance(raised, ensure_mod.ImageMissing)
    assert "manifest unknown" in str(raised) and "\x1b" not in str(raised) and "labnb image pull" in raised.todo



def tiny_lines(host, sock, request):
    """Not there; then a pull of endless two-byte progress lines, at full speed."""
    if request.startswith(b"GET "):
        body = b'{"message": "No such image: nginx:1.27"}'
        host.send(sock, b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return
    host.send(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    while True:
        host.send(sock, b"1\n" * (1 << 15))


def test_a_pull_of_endless_tiny_lines_is_read_in_one_pass_and_cut():
    """Each line cost a copy of what followed it, a JSON parse each: hours of the server's CPU."""
    raised = finishes(HostileDockerd(tiny_lines), ["nginx:1.27"])
    assert isinstance(raised, LabHostError) and "larger than" in str(raised)
