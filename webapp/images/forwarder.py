"""The forwarder: the image cache at ``127.0.0.1:4999`` inside each lab host, without a route.

The server makes a listening socket in a lab host's network namespace (``nsfs.made_in``, as netlink.py
makes its sockets) when the pool makes the lab host, before a learner has it: the lab host's dockerd
uses it as its registry mirror (init.sh's daemon.json) and as its HTTPS proxy, so that a pull that
falls back from the mirror to Docker Hub is refused at once with the reason (``rules.connect_refusal``).

Each connection carries one request (``Connection: close``), checked by ``rules.parse`` and sent on as
rebuilt from what was checked, to the cache's registries in turn (the import store first). All of it
runs on one event loop thread, whatever the number of lab hosts; each lab host has its own bounds:
connections at once and accepted per second, bytes per second (token buckets) and bytes in all, with a
deadline on every wait, so one that floods or stalls the forwarder slows only itself.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import threading
import time
import urllib.parse

from ..config import Settings
from ..labhost import nsfs
from ..labhost.errors import LabHostError
from . import rules

log = logging.getLogger(__name__)

ADDRESS = ("127.0.0.1", 4999)
BACKLOG = 16
ACCEPTS = 100               # connections a second one lab host's are accepted at (a token bucket): one that opens
                            # them in a loop waits in its own kernel's backlog, not on the forwarder's thread
HEAD_TIMEOUT = 10.0         # seconds for a lab host to send a whole request head
UPSTREAM_TIMEOUT = 60.0     # for the cache to answer (a pull-through cache may fetch the upstream first)
IDLE_TIMEOUT = 30.0         # for any read or write of a body to make progress
MAX_ANSWER_HEAD = 16 << 10  # the cache's answer's head
CHUNK = 64 << 10
TLS_HANDSHAKE = b"\x16"     # the first byte of a TLS record that opens a handshake
SWEEP = 5.0                 # seconds between looks for lab hosts that went
PASSED = {"content-type", "content-length", "docker-content-digest", "docker-distribution-api-version", "etag",
          "transfer-encoding", "last-modified"}


class Bucket:
    """A token bucket: ``rate`` bytes a second, at most one second's worth saved up."""

    def __init__(self, rate: float, clock=time.monotonic):
        self.rate, self.clock = rate, clock
        self.tokens, self.stamp = rate, clock()

    def delay(self, n: int) -> float:
        """Take ``n`` bytes' tokens; the seconds to wait before sending them (0 if there were enough)."""
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclasses.dataclass
class _Lab:
    """One lab host's share of the forwarder."""
    id: str
    host: object
    server: asyncio.Task | None = None   # accepting its connections
    bucket: Bucket | None = None
    accepts: Bucket | None = None
    connections: int = 0
    sent: int = 0
    tasks: set = dataclasses.field(default_factory=set)


class Forwarder:
    """Forwarders for every lab host the server attaches, on one event loop thread."""

    def __init__(self, settings: Settings, cache, named: frozenset[str] = frozenset()):
        self.settings, self.cache = settings, cache
        self.named = named   # what the served labs name (``cache.named``): the cache may fetch it
        self.most = settings.image_connections
        self.rate = settings.image_rate_mbps << 20
        self.total = settings.image_total_mb << 20
        self._labs: dict[str, _Lab] = {}
        self._reviving = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="image-forwarder", daemon=True)
        self._thread.start()
        self._sweeper = asyncio.run_coroutine_threadsafe(self._sweep(), self.loop)

    def _revive(self) -> None:
        try:
            self.cache.revive()
        except Exception as e:
            log.error("image forwarder: the cache could not be started again: %s", e)
        finally:
            self._reviving = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- attaching lab hosts ---------------------------------------------------------------------------------

    def attach(self, host) -> None:
        """Listen at ADDRESS in ``host``'s network namespace (the pool's ``prepare``: before a learner has
        it). LabHostError if it cannot."""
        fd = host.namespace_fd("net")
        try:
            made = nsfs.made_in([fd], _listener)[0]
        finally:
            os.close(fd)
        if isinstance(made, OSError):
            raise LabHostError(f"lab host {host.id}: cannot make the image forwarder at "
                               f"{ADDRESS[0]}:{ADDRESS[1]} in it: {made}", "Run `labnb doctor`")
        self.serve(host.id, made, host)

    def serve(self, lab_id: str, sock: socket.socket, host=None) -> None:
        """Serve the listening socket ``sock`` as lab host ``lab_id``'s forwarder."""
        future = asyncio.run_coroutine_threadsafe(self._start(lab_id, sock, host), self.loop)
        future.result(10)

    async def _start(self, lab_id: str, sock: socket.socket, host) -> None:
        lab = _Lab(lab_id, host, bucket=Bucket(self.rate), accepts=Bucket(ACCEPTS))
        old = self._labs.pop(lab_id, None)
        if old:
            await self._stop(old)
        lab.server = self.loop.create_task(self._accepting(lab, sock))
        self._labs[lab_id] = lab

    def detach(self, lab_id: str) -> None:
        asyncio.run_coroutine_threadsafe(self._detach(lab_id), self.loop).result(10)

    async def _detach(self, lab_id: str) -> None:
        lab = self._labs.pop(lab_id, None)
        if lab:
            await self._stop(lab)

    async def _stop(self, lab: _Lab) -> None:
        lab.server.cancel()   # its socket goes, and with it the hold on the lab host's namespace
        await asyncio.gather(lab.server, return_exceptions=True)
        for task in list(lab.tasks):
            task.cancel()

    async def _sweep(self) -> None:
        """Let go of the lab hosts that went (their listening socket would keep their namespace)."""
        while True:
            await asyncio.sleep(SWEEP)
            for lab in list(self._labs.values()):
                if lab.host is not None and not lab.host.alive():
                    await self._detach(lab.id)

    def attached(self) -> list[str]:
        return list(self._labs)

    def close(self) -> None:
        async def stop_all():
            self._sweeper.cancel()
            for lab_id in list(self._labs):
                await self._detach(lab_id)
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    # -- one connection --------------------------------------------------------------------------------------

    async def _accepting(self, lab: _Lab, sock: socket.socket) -> None:
        """Accept the lab host's connections, at most ACCEPTS a second: each costs this one thread an accept,
        a task, a parse and an answer, within its connections or not."""
        try:
            while True:
                wait = lab.accepts.delay(1)
                if wait:
                    await asyncio.sleep(wait)
                try:
                    conn, _ = await self.loop.sock_accept(sock)
                except OSError as e:   # out of descriptors, a connection gone before it was taken: a moment later
                    log.warning("image forwarder of lab host %s cannot accept: %s", lab.id, e)
                    await asyncio.sleep(1)
                    continue
                try:
                    reader, writer = await asyncio.open_connection(sock=conn, limit=rules.MAX_HEAD)
                except OSError:
                    conn.close()
                    continue
                self.loop.create_task(self._accepted(lab, reader, writer))
        finally:
            sock.close()

    async def _accepted(self, lab: _Lab, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        lab.tasks.add(task)
        try:
            if lab.connections >= self.most:
                await self._send(lab, writer, rules.error_answer(
                    429, "TOOMANYREQUESTS", f"this lab host holds {self.most} connections to the image cache "
                    "at once (LABNB_IMAGE_CONNECTIONS)"), count=False)
                return
            lab.connections += 1
            try:
                await self._one_request(lab, reader, writer)
            finally:
                lab.connections -= 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("image forwarder of lab host %s", lab.id)
        finally:
            lab.tasks.discard(task)
            writer.transport.abort()

    async def _one_request(self, lab: _Lab, reader, writer) -> None:
        try:
            first = await asyncio.wait_for(reader.readexactly(1), HEAD_TIMEOUT)
            if first == TLS_HANDSHAKE:   # dockerd tries TLS first with a registry on 127.0.0.1: no, at once
                await self._send(lab, writer, rules.error_answer(400, "UNSUPPORTED", "plain HTTP only"), count=False)
                return
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            await self._send(lab, writer, rules.Refused(431, "TOOLARGE", "the request head is over "
                                                       f"{rules.MAX_HEAD} bytes").answer(), count=False)
            return
        except asyncio.IncompleteReadError:
            return
        try:
            request = rules.parse(head)
        except rules.Refused as refused:
            answer = rules.connect_refusal() if head.startswith(b"CONNECT ") else refused.answer(
                head.startswith(b"HEAD "))
            await self._send(lab, writer, answer, count=False)
            return
        head_only = request.method == "HEAD"
        if request.ping:
            await self._send(lab, writer, rules.ping_answer(head_only), count=False)
            return
        if lab.sent >= self.total:
            await self._send(lab, writer, rules.error_answer(
                429, "TOOMANYREQUESTS", f"this lab host has pulled its {self.total >> 20} MiB through the image "
                "cache (LABNB_IMAGE_TOTAL_MB); a fresh lab host starts again", head_only), count=False)
            return
        await self._relay(lab, request, writer)

    async def _relay(self, lab: _Lab, request: rules.Request, writer) -> None:
        """Ask each of the cache's registries in turn; send on the first answer that is not a 404."""
        sources = self.cache.sources(request.name, self.named, request.tag)
        trouble = ""
        for i, registry in enumerate(sources):
            try:
                up_reader, up_writer = await asyncio.wait_for(_open(registry.address), IDLE_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                trouble = f"{registry.address}: {e or type(e).__name__}"
                continue
            try:
                up_writer.write(request.head())
                await asyncio.wait_for(up_writer.drain(), IDLE_TIMEOUT)
                status, head = await asyncio.wait_for(_answer_head(up_reader), UPSTREAM_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as e:
                up_writer.transport.abort()
                trouble = f"{registry.address}: {e or type(e).__name__}"
                continue
            try:
                if status == 404 and i < len(sources) - 1:
                    continue   # not imported: the pull-through cache next
                await self._send(lab, writer, head)
                while request.method == "GET":   # the body, as it comes (a cut one: dockerd retries)
                    chunk = await asyncio.wait_for(up_reader.read(CHUNK), IDLE_TIMEOUT)
                    if not chunk:
                        break
                    await self._send(lab, writer, chunk)
                return
            finally:
                up_writer.transport.abort()
        log.warning("image forwarder: the cache did not answer lab host %s: %s", lab.id, trouble)
        if not self._reviving:   # its owner (a `labnb image` command) may have gone: run it here, once at a time
            self._reviving = True
            self.loop.run_in_executor(None, self._revive)
        await self._send(lab, writer, rules.error_answer(
            503, "UNAVAILABLE", "labnb's image cache does not answer: ask the operator (the server's log says "
            "why)", request.method == "HEAD"), count=False)

    async def _send(self, lab: _Lab, writer, data: bytes, count: bool = True) -> None:
        """Write within the lab host's bounds: its bytes in all, its rate, and a deadline for it to read."""
        if count:
            if lab.sent + len(data) > self.total:
                lab.sent = self.total   # spent: its next requests are refused, saying so
                raise OSError("the lab host's bytes in all (LABNB_IMAGE_TOTAL_MB) are spent")
            lab.sent += len(data)
            wait = lab.bucket.delay(len(data))
            if wait:
                await asyncio.sleep(wait)
        writer.write(data)
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(ADDRESS)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


async def _open(address: str):
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address[len("unix:"):], limit=MAX_ANSWER_HEAD)
    url = urllib.parse.urlsplit(address)
    return await asyncio.open_connection(url.hostname, url.port or (443 if url.scheme == "https" else 80),
                                         ssl=url.scheme == "https" or None, limit=MAX_ANSWER_HEAD)


async def _answer_head(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The cache's answer's status and its head rebuilt with the headers passed on (``Connection: close``)."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("the cache's answer is not HTTP")
    status = int(parts[1])
    kept = [f"HTTP/1.1 {status} {parts[2] if len(parts) > 2 else ''}".rstrip()]
    for line in lines[1:]:
        field, sep, value = line.partition(":")
        if sep and field.strip().lower() in PASSED:
            kept.append(f"{field.strip()}: {value.strip()}")
    kept.append("Connection: close")
    return status, ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")
