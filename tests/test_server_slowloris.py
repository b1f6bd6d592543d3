"""Pre-auth slowloris (issue 27, item 1): connections that send their request a byte at a time, from
several client addresses, more of them than the server has threads. labnb reads requests in its worker's
loop (webapp/commands/heads.py), so a learner's page, a run over Socket.IO and a lab host's web service through the
proxy go on answering while they trickle, and the trickling connections are bounded and closed."""
from __future__ import annotations

import os
import resource
import socket
import time

import pytest
import requests
from slowloris_support import BODY, HEAD, NEXT_HEAD, Group, Slowloris
from test_proxy import LAB as PROXY_LAB, _ws, enter
from web_support import TEST_LAB, Server, Tab, _state_dir, serving, wait_for

pytestmark = pytest.mark.slow

# More slow heads than the server's threads (max_sockets + 64 + proxy_connections: 320); 127.0.0.1, the
# learner's own address, and 127.0.0.2 send more than the bound per address (webapp.commands.heads.PER_ADDRESS,
# 64), the others fewer (so they meet the deadline, not the bound).
GROUPS = [Group("127.0.0.1", 150, **HEAD), Group("127.0.0.2", 150, **HEAD), Group("127.0.0.3", 60, **HEAD),
          Group("127.0.0.4", 60, **NEXT_HEAD), Group("127.0.0.5", 60, **BODY)]
EVERY = 1.0   # seconds between two bytes of a connection
PATIENCE = 60   # seconds a page or a request may take (an emulated VM is slow), not a measure


@pytest.fixture(scope="module")
def server():
    # uid slots 52 and 53, as test_web_protocol's crash server: a module's server ends with its module
    yield from serving(Server(_state_dir("slowloris"), uid_slot=52, pool_size=1, env={"LABNB_MAX_LAB_HOSTS": "2"}))


def fds(server: Server) -> int:
    return len(os.listdir(f"/proc/{server.worker_pid()}/fd"))


def test_a_slowloris_from_several_addresses_stops_nothing(server):
    owner = server.learner_who_ran(PROXY_LAB, "app")   # its lab host's web service answers on port 8080
    server.open_lab(owner, TEST_LAB)
    service = enter(server, owner)
    before = fds(server)
    with Slowloris(server.port, GROUPS, EVERY) as attack:
        wait_for(lambda: attack.ticks >= 3 and attack.opened >= sum(g.count for g in GROUPS), PATIENCE,
                 what="the attack's connections to be open")
        page = requests.get(f"{server.url}/labs/{TEST_LAB}", cookies=owner.cookies, timeout=PATIENCE)
        assert page.status_code == 200 and "Echo" in page.text
        tab = Tab(server, owner)
        try:
            end = tab.wait_end(tab.run("echo"), PATIENCE)
            assert end["status"] == "done" and tab.text(end["run"]).strip()
        finally:
            tab.close()
        assert "hello from the app" in service.get("/").text
        assert service.request("POST", "/upload", data=b"x" * 1000).text == "got 1000 bytes"
        assert service.request("POST", "/upload", data=b"x" * 100_000).text == "got 100000 bytes"
        ws = _ws(server, service)
        try:
            ws.send("while they trickle")
            assert ws.recv() == "echo: while they trickle"
        finally:
            ws.close()

        # the slow connections the server holds are bounded per address: past it the oldest is closed
        from webapp.commands.heads import PER_ADDRESS   # imported here: the checks above run (and fail) on a labnb without it
        assert fds(server) - before <= sum(min(g.count, PER_ADDRESS) for g in GROUPS) + 16
        # ... and each must be whole within a deadline (408)
        wait_for(lambda: attack.statuses[408], PATIENCE, what="the server to close slow connections")
    log = server.log.read_text()
    assert "refused a request from 127.0.0.5: the request did not arrive whole within" in log
    assert "refused a request from 127.0.0.1: more than" in log


def exchange(server: Server, *parts: bytes, pause: float = 0.0) -> bytes:
    """What the server answers to ``parts`` sent on a new connection (``pause`` s apart), until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as s:
        for part in parts:
            time.sleep(pause)
            s.sendall(part)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while data := s.recv(65536):
            answer += data
    return answer


def test_a_request_that_cannot_be_read_whole_is_refused_with_the_reason(server):
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port
    assert exchange(server, head + b"X: " + b"a" * 40_000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"ends in LF without CR" in exchange(server, b"GET / HTTP/1.1\nHost: x\n\n")
    post = b"POST /labs/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port
    refused = exchange(server, post + b"Content-Length: 100000\r\n\r\n")   # refused on its head alone
    assert refused.startswith(b"HTTP/1.1 413 Content Too Large\r\n") and b"at most 16 KiB" in refused
    assert exchange(server, post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").startswith(
        b"HTTP/1.1 411 Length Required\r\n")
    # a client that waits for 100 Continue before its body is told to send it
    answer = exchange(server, post + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", b"hello", pause=1)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and b"HTTP/1.1 403 FORBIDDEN\r\n" in answer


def test_a_request_sent_in_pieces_within_the_deadline_is_answered(server):
    pieces = b"GET / HTT", b"P/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port, b"Connection: close\r\n\r\n"
    assert exchange(server, *pieces, pause=1).startswith(b"HTTP/1.1 403 FORBIDDEN\r\n")   # no token: labnb's 403


def test_idle_kept_alive_connections_do_not_stop_the_server_accepting(server):
    """Kept-alive connections idle after a whole request, up to gunicorn's bound on them, and slow heads
    from several addresses, each address below the per-address bound: together they passed gunicorn's
    worker_connections, and the worker stopped accepting until a slow head's deadline closed one. Now the
    oldest idle connection makes room, so a learner's request is answered while every slow one still
    waits for its deadline (none has been refused yet)."""
    from webapp.commands.heads import HEAD_TIMEOUT, PER_ADDRESS
    from webapp.commands.server import WORKER_CONNECTIONS
    threads = 192 + 64 + 64   # the worker's threads with the test server's settings: gunicorn keeps-alive
    idle_count = WORKER_CONNECTIONS - threads - 40   # up to worker_connections - threads connections
    slow = [Group(f"127.0.1.{n}", PER_ADDRESS - 4, **HEAD) for n in range(1, 9)]   # 480 in all
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port
    idle = []
    try:
        for n in range(idle_count):
            s = socket.socket()
            s.bind((f"127.0.2.{1 + n // 4000}", 0))
            s.connect(("127.0.0.1", server.port))
            s.sendall(request)
            idle.append(s)
        for s in idle:   # each answered (a 403: no token) and kept alive
            s.settimeout(PATIENCE)
            assert s.recv(65536).startswith(b"HTTP/1.1 403 ")
        with Slowloris(server.port, slow, EVERY) as attack:
            wait_for(lambda: attack.opened >= sum(g.count for g in slow), HEAD_TIMEOUT / 2,
                     what="the slow connections to be open")
            answer = exchange(server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                              % server.port)
            refused_by_then = attack.statuses[408]
        assert answer.startswith(b"HTTP/1.1 403 ")
        assert refused_by_then == 0, "the learner's connection waited for a slow one's deadline"
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def bare_server():
    """A server of its own, with no lab host: its thread count is the test's alone."""
    yield from serving(Server(_state_dir("slowloris-bare"), uid_slot=54, pool_size=0))


def threads(server: Server) -> int:
    with open(f"/proc/{server.worker_pid()}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def test_clients_holding_a_closed_answer_open_stop_nothing(bare_server):
    """gunicorn's graceful close waited in the worker's loop, up to 2 s, for each client that held a
    ``Connection: close`` answer open: 60 of them stopped every page for two minutes."""
    held = []
    try:
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", bare_server.port), timeout=PATIENCE)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % bare_server.port)
            held.append(s)
        assert requests.get(f"{bare_server.url}/", timeout=PATIENCE).status_code == 403   # no token: labnb's 403
        for s in held:
            assert s.recv(65536).startswith(b"HTTP/1.1 403 ")
    finally:
        for s in held:
            s.close()


def test_a_body_that_never_comes_to_the_proxy_holds_no_thread(bare_server):
    """A request to a lab host's web service may carry a large body, read in a thread; refused (no pass),
    its body unread, gunicorn waited up to 5 s in that thread for it: 300 such requests at once held 300
    threads, and 64 a second would hold every one. Now each is answered and closed at once."""
    before = threads(bare_server)
    head = (b"POST /.labnb/p/x/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 1000000\r\n\r\n"
            % bare_server.port)
    held = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", bare_server.port), timeout=PATIENCE)
            s.sendall(head)
            held.append(s)
        for s in held:   # every one answered, its body never sent
            assert s.recv(65536).startswith(b"HTTP/1.1 403 ")
        grown = threads(bare_server) - before
    finally:
        for s in held:
            s.close()
    assert grown < 100, f"{grown} more threads while 300 requests' bodies did not come"
