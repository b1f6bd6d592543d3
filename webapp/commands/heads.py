"""Request heads read in the worker's loop, not in a thread each (pre-auth slowloris).

gunicorn's gthread worker waits for a connection's first byte in its loop and
then reads the rest of the request head in a pool thread, blocking: 340
connections that sent a byte every 4 s held every thread, and no page, join
or proxied request was answered while they trickled. This worker reads every
request's head, and a small body, without blocking in its own loop, and hands
the connection to a thread only once they are whole, kept-alive connections'
next requests too; gunicorn's parser then reads them from its buffer.

- As HAProxy's ``timeout http-request``: the head (and a small body) must be
  whole within HEAD_TIMEOUT of the connection, or of the first byte of a
  kept-alive connection's next request (408).
- Connections being read are bounded per client address and in all. Past a
  bound the oldest one of that address (in all: of the address holding the
  most) is closed, not the newcomer: a head sent whole is read at once, so
  only slow ones grow old, and a learner who shares the attacker's address
  (a room behind one NAT) still gets in.
- labnb's own pages take small forms only: a body of at most MAX_BODY is read
  here; a larger or chunked one is refused (413, 411). Only a lab host's web
  service (webapp/proxy/) is sent more: its body is read in the thread, which
  the gateway counts per learner and in all after checking the pass.

Plain HTTP/1.1 only, as labnb serves it (no TLS; gunicorn's h2c is off).
"""
from __future__ import annotations

import collections
import errno
import functools
import re
import selectors
import socket
import time

from gunicorn.workers.gthread import TConn, ThreadWorker

from ..guard.limits import Refusals, client_address
from ..proxy.gateway import HOST, UNDER

HEAD_TIMEOUT = 10.0     # seconds for a request's head (and a small body) to arrive whole
MAX_HEAD = 32 << 10     # bytes of a request head: browsers send a few KiB (HAProxy's whole buffer is 16 KiB)
MAX_BODY = 16 << 10     # bytes of a body to labnb's own pages: its forms hold a few hundred characters
PER_ADDRESS = 64        # connections being read at once from one client address (IPv6: one /64)
IN_ALL = 1024           # ... from every address together: at most IN_ALL * (MAX_HEAD + MAX_BODY) buffered
ACCEPT_BATCH = 16       # connections accepted per wake-up of the loop (well below PER_ADDRESS)

BARE_LF = re.compile(rb"(?<!\r)\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
GO = "go"


class _Reading:
    """A connection whose request is being read: what came so far, until when the rest may come, and how
    much makes it whole once the head is (``need``)."""

    __slots__ = ("conn", "address", "data", "deadline", "scanned", "need")

    def __init__(self, conn: TConn, address: str, data: bytes):
        self.conn, self.address, self.data = conn, address, bytearray(data)
        self.deadline = time.monotonic() + HEAD_TIMEOUT
        self.scanned = 0          # bytes already searched for the head's end
        self.need: int | None = None


class _Conn(TConn):
    """gunicorn's connection, closed without waiting: its graceful close lingers up to 2 s for the client's
    FIN, in the worker's loop (``finish_request``), so that each client holding a ``Connection: close``
    answer open stopped the loop for everyone for 2 s. Here: FIN, drop what already came, close."""

    def close(self, graceful=False):
        if graceful:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.setblocking(False)
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
        self.sock.close()


class HeadWorker(ThreadWorker):
    """gunicorn's gthread worker, with requests read in its loop before a thread takes them."""

    proxy_domain = "localhost"    # the web-service proxy's host names' domain (worker_class() sets it)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading: collections.OrderedDict[TConn, _Reading] = collections.OrderedDict()   # oldest first
        self.by_address: dict[str, collections.OrderedDict[TConn, None]] = {}
        self.refusals = Refusals()

    # -- gunicorn's loop calls these ---------------------------------------------
    def accept(self, listener):
        """Every connection waiting (up to ACCEPT_BATCH) goes to the head reader: gunicorn takes one per
        wake-up, and a flood of connections would delay a learner's behind it."""
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                sock, client = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                self.refusals.log("a connection", "any address", f"no descriptor or memory left ({e})")
                return
            self.nr_conns += 1
            self.enqueue_req(_Conn(self.cfg, sock, client, listener.getsockname()))
            self._make_room()

    def _make_room(self) -> None:
        """Keep accepting: at worker_connections, where gunicorn's loop stops accepting, close the oldest
        kept-alive connections waiting for a next request (a browser opens another when it needs one).
        Connections being read (IN_ALL) and served (the threads) stay well below it, so idle ones, up to
        gunicorn's bound on them, and slow ones together cannot stop the server accepting."""
        while self.nr_conns >= self.worker_connections and self.keepalived_conns:
            conn = self.keepalived_conns.popleft()
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()

    def enqueue_req(self, conn):
        """A new connection, a kept-alive one that became readable, or one with a next request read ahead:
        read its request here first."""
        address = _address(conn.client)
        while len(self.by_address.get(address, ())) >= PER_ADDRESS:
            self._evict(next(iter(self.by_address[address])))
        while len(self.reading) >= IN_ALL:
            self._evict(next(iter(max(self.by_address.values(), key=len))))
        r = _Reading(conn, address, conn.parser.unreader.take_buffered() if conn.parser else b"")
        self.reading[conn] = r
        self.by_address.setdefault(address, collections.OrderedDict())[conn] = None
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, functools.partial(self._readable, r))
        self._readable(r)   # what was read ahead, and what already waits (a kept-alive one's next request)

    def murder_pending(self):
        """Called by the loop at least once a second: also close the connections past their deadline (all
        of them when the worker stops)."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            r = next(iter(self.reading.values()))
            if not self.alive:
                self._close(r)
            elif r.deadline > now:
                return
            elif r.data:
                self._refuse(r, "408 Request Timeout", f"the request did not arrive whole within "
                             f"{HEAD_TIMEOUT:.0f} s: send it at once")
            else:
                self._close(r)    # a connection opened ahead of need (a browser's), or an idle one

    def _keepalive_after(self, conn, keepalive):
        """Called in a thread after a response: never wait there for a body the app did not read (a
        refused request to a lab host's web service, whose body may come slowly or never; gunicorn waits
        up to 5 s for it, and 64 such requests a second held every thread): drain a little of what came, else
        close."""
        if not keepalive:
            return False
        conn.sock.setblocking(False)
        try:
            return bool(conn.parser.finish_body(max_bytes=MAX_HEAD + MAX_BODY))
        except BlockingIOError:
            return False
        finally:
            conn.sock.setblocking(True)

    # -- reading -----------------------------------------------------------------
    def _readable(self, r: _Reading, _sock=None) -> None:
        if self.reading.get(r.conn) is not r:
            return   # closed meanwhile, by another connection's event of the same wake-up
        try:
            self._receive(r)
        except Exception:   # noqa: BLE001 - one connection's trouble must not stop the loop
            self.log.exception("Error reading a request from %s", r.address)
            if self.reading.get(r.conn) is r:
                self._close(r)

    def _receive(self, r: _Reading) -> None:
        try:
            data = r.conn.sock.recv(MAX_HEAD + MAX_BODY - len(r.data))
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        if data == b"":
            self._close(r)   # the client left
            return
        r.data += data or b""
        self._advance(r)

    def _advance(self, r: _Reading) -> None:
        """Hand the connection over once its request is whole; refuse it when it cannot become so."""
        verdict = self._judge_head(r) if r.need is None else None
        if verdict == GO or (r.need is not None and len(r.data) >= r.need):
            self._dispatch(r)
        elif verdict is not None:
            self._refuse(r, *verdict)

    def _judge_head(self, r: _Reading) -> str | tuple[str, str] | None:
        """Once the head is whole: GO (its body, if any, is read in the thread), a refusal (status, why),
        or None with ``r.need`` set to the bytes of head and body. None too while the head is not whole."""
        data = r.data
        start = 2 if data.startswith(b"\r\n") else 0   # one empty line may come first (RFC 9112 2.2)
        end = data.find(b"\r\n\r\n", max(start, r.scanned - 3))
        if BARE_LF.search(data, max(0, r.scanned - 1), end if end >= 0 else len(data)):
            return "400 Bad Request", "a line of the request's head ends in LF without CR"
        if (len(data) >= MAX_HEAD) if end < 0 else (end + 4 > MAX_HEAD):
            return ("431 Request Header Fields Too Large", f"the request's head is larger than {MAX_HEAD >> 10} "
                    "KiB: send fewer or smaller headers (cookies)")
        if end < 0:
            r.scanned = len(data)
            return None
        (_method, target, version), fields = _head(bytes(data[start:end]))
        proxied = target.startswith(UNDER.encode()) or self._proxied_host(fields.get(b"host", [b""])[0])
        chunked, lengths = b"transfer-encoding" in fields, fields.get(b"content-length", [b"0"])
        if not chunked and not (len(lengths) == 1 and lengths[0].isdigit()):
            return GO    # a framing gunicorn answers with 400, reading no body
        if chunked or int(lengths[0]) > MAX_BODY:
            if proxied:
                return GO
            if chunked:
                return "411 Length Required", "labnb's pages take a request body only with a Content-Length"
            return "413 Content Too Large", f"labnb's pages take request bodies of at most {MAX_BODY >> 10} KiB"
        r.need = end + 4 + int(lengths[0])
        if (len(data) < r.need and version == b"HTTP/1.1"
                and fields.get(b"expect", [b""])[0].lower() == b"100-continue"):
            _send(r.conn, CONTINUE)   # the client waits for it to send the body (gunicorn sends another)
        return None

    def _proxied_host(self, host: bytes) -> bool:
        """Whether the Host names a port of a lab host: the gateway's test (webapp/proxy/gateway.py)."""
        m = HOST.fullmatch(host.decode("latin-1"))
        return m is not None and m["domain"] == self.proxy_domain

    # -- leaving the reader --------------------------------------------------------
    def _forget(self, r: _Reading) -> None:
        del self.reading[r.conn]
        held = self.by_address[r.address]
        del held[r.conn]
        if not held:
            del self.by_address[r.address]
        self.poller.unregister(r.conn.sock)

    def _dispatch(self, r: _Reading) -> None:
        """To a pool thread, with what was read put back for gunicorn's parser."""
        self._forget(r)
        r.conn.init()   # a new connection's parser (HTTP/1: nothing is read)
        r.conn.parser.unreader.unread(bytes(r.data))
        super().enqueue_req(r.conn)

    def _close(self, r: _Reading) -> None:
        self._forget(r)
        self.nr_conns -= 1
        r.conn.close()

    def _refuse(self, r: _Reading, status: str, why: str) -> None:
        self.refusals.log("a request", r.address, why)
        body = f"labnb: {why}\n".encode()
        _send(r.conn, f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                      f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self._close(r)

    def _evict(self, conn: TConn) -> None:
        """Make room: close the connection unless one more read makes its request whole. With no answer:
        a flood of connections comes here for each, and an answer took a third of the time it costs."""
        r = self.reading[conn]
        self._readable(r)
        if self.reading.get(conn) is r:
            self.refusals.log("a request", r.address, f"more than {PER_ADDRESS} connections from this address "
                              "(or too many in all) were sending their requests slowly: the oldest was closed")
            self._close(r)


def worker_class(proxy_domain: str) -> type[HeadWorker]:
    """The worker for gunicorn's ``worker_class``, knowing which Host names are the proxy's."""
    return type("HeadWorker", (HeadWorker,), {"proxy_domain": proxy_domain.lower()})


def _address(client) -> str:
    """Whose connection it is, as every per-address limit counts (``limits.client_address``)."""
    return client_address(client[0]) if isinstance(client, tuple) else "a local socket"


def _head(head: bytes) -> tuple[tuple[bytes, bytes, bytes], dict[bytes, list[bytes]]]:
    """The request line's three parts and the header fields (lower-case names) of a whole head."""
    line, *lines = head.split(b"\r\n")
    method, target, version = (line.split(b" ", 2) + [b"", b""])[:3]
    fields: dict[bytes, list[bytes]] = {}
    for field in lines:
        name, _, value = field.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip(b" \t"))
    return (method, target, version), fields


def _send(conn: TConn, data: bytes) -> None:
    """Best effort, never blocking: a client that does not read gets less."""
    try:
        conn.sock.send(data)
    except OSError:
        pass
