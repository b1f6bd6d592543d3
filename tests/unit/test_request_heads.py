"""The request-head reader's judgement of a head (webapp/commands/heads.py), without a server: a socketpair
stands in for the client's connection."""
from __future__ import annotations

import socket
import types

import pytest

from webapp.commands import heads
from webapp.commands.heads import CONTINUE, GO, MAX_BODY, MAX_HEAD, HeadWorker, worker_class


@pytest.fixture
def client():
    """The server's end of a connection (in a stand-in for gunicorn's TConn) and the client's."""
    server_end, client_end = socket.socketpair()
    client_end.settimeout(5)
    yield types.SimpleNamespace(sock=server_end), client_end
    server_end.close()
    client_end.close()


def judge(data: bytes, conn, domain: str = "labs.example"):
    """What the reader makes of ``data`` so far: its verdict and the connection's reading state."""
    worker = object.__new__(worker_class(domain))   # the judgement needs none of gunicorn's worker state
    reading = heads._Reading(conn, "192.0.2.1", data)
    return worker._judge_head(reading), reading


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


# -- parsing a whole head ------------------------------------------------------------------------

def test_a_head_is_its_request_line_and_lower_case_fields():
    (method, target, version), fields = heads._head(b"GET /labs?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two:  2 \t")
    assert (method, target, version) == (b"GET", b"/labs?x=1", b"HTTP/1.1")
    assert fields == {b"host": [b"a"], b"x-two": [b"1", b"2"]}


def test_a_short_request_line_gets_empty_parts():
    assert heads._head(b"GET")[0] == (b"GET", b"", b"")


def test_a_field_without_a_colon_has_an_empty_value():
    assert heads._head(b"GET / HTTP/1.1\r\nodd")[1] == {b"odd": [b""]}


@pytest.mark.parametrize("client, address", [(("192.0.2.7", 5555), "192.0.2.7"),
                                             (("2001:db8::7", 5555, 0, 0), "2001:db8::/64"),
                                             ("", "a local socket"), (b"", "a local socket")])
def test_whose_connection_it_is(client, address):
    assert heads._address(client) == address


def test_a_worker_class_knows_the_proxys_domain_in_lower_case():
    cls = worker_class("Labs.Example")
    assert issubclass(cls, HeadWorker) and cls.proxy_domain == "labs.example"
    assert HeadWorker.proxy_domain == "localhost"


# -- judging a head ---------------------------------------------------------------------------------

def test_a_head_not_yet_whole_waits_and_remembers_how_far_it_looked(client):
    verdict, reading = judge(b"GET / HTTP/1.1\r\nHost: a\r\n", client[0])
    assert verdict is None and reading.need is None and reading.scanned == len(reading.data)


def test_a_whole_head_without_a_body_needs_itself(client):
    data = request("GET / HTTP/1.1\nHost: a\n")
    verdict, reading = judge(data, client[0])
    assert verdict is None and reading.need == len(data)


def test_one_empty_line_may_come_before_the_request(client):
    data = b"\r\n" + request("GET / HTTP/1.1\nHost: a\n")
    verdict, reading = judge(data, client[0])
    assert verdict is None and reading.need == len(data)


def test_the_request_line_after_an_empty_line_is_the_one_judged(client):
    data = b"\r\n" + request(f"POST /.labnb/p/pass/upload HTTP/1.1\nHost: a\nContent-Length: {MAX_BODY + 1}\n")
    assert judge(data, client[0])[0] == GO   # a lab host's web service, by its path


def test_a_small_body_is_read_with_the_head(client):
    head = request("POST /join HTTP/1.1\nHost: a\nContent-Length: 11\n")
    verdict, reading = judge(head + b"name", client[0])
    assert verdict is None and reading.need == len(head) + 11


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\n"])
def test_a_line_ending_in_lf_alone_is_refused(client, data):
    verdict, _ = judge(data, client[0])
    assert verdict[0] == "400 Bad Request" and "LF without CR" in verdict[1]


def test_a_head_too_large_is_refused_before_it_ends(client):
    verdict, _ = judge(b"GET / HTTP/1.1\r\nCookie: " + b"c" * MAX_HEAD, client[0])
    assert verdict[0] == "431 Request Header Fields Too Large" and "larger than 32 KiB" in verdict[1]


def test_a_whole_head_too_large_is_refused(client):
    data = request("GET / HTTP/1.1\nCookie: " + "c" * MAX_HEAD + "\n")
    assert judge(data, client[0])[0][0] == "431 Request Header Fields Too Large"


def test_a_large_body_to_labnbs_pages_is_refused(client):
    verdict, _ = judge(request(f"POST /join HTTP/1.1\nHost: a\nContent-Length: {MAX_BODY + 1}\n"), client[0])
    assert verdict == ("413 Content Too Large", "labnb's pages take request bodies of at most 16 KiB")


def test_a_chunked_body_to_labnbs_pages_is_refused(client):
    verdict, _ = judge(request("POST /join HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n"), client[0])
    assert verdict[0] == "411 Length Required"


@pytest.mark.parametrize("head", [
    f"POST /upload HTTP/1.1\nHost: p8080-lh-1.labs.example\nContent-Length: {MAX_BODY + 1}\n",
    "POST /upload HTTP/1.1\nHost: p8080-lh-1.labs.example:5000\nTransfer-Encoding: chunked\n",
    f"POST /.labnb/p/pass/upload HTTP/1.1\nHost: a\nContent-Length: {MAX_BODY + 1}\n",
])
def test_a_lab_hosts_web_service_gets_any_body_read_in_the_thread(client, head):
    assert judge(request(head), client[0])[0] == GO


def test_a_host_of_another_domain_is_not_the_proxys(client):
    head = f"POST /upload HTTP/1.1\nHost: p8080-lh-1.elsewhere.example\nContent-Length: {MAX_BODY + 1}\n"
    assert judge(request(head), client[0])[0][0] == "413 Content Too Large"


@pytest.mark.parametrize("lengths", ["Content-Length: 5\nContent-Length: 5", "Content-Length: -5",
                                     "Content-Length: 5x"])
def test_a_framing_gunicorn_refuses_is_handed_on_without_reading_a_body(client, lengths):
    assert judge(request(f"POST /join HTTP/1.1\nHost: a\n{lengths}\n"), client[0])[0] == GO


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(client):
    conn, peer = client
    judge(request("POST /join HTTP/1.1\nHost: a\nExpect: 100-Continue\nContent-Length: 5\n"), conn)
    assert peer.recv(100) == CONTINUE


def test_no_100_continue_once_the_body_is_there_or_for_http_1_0(client):
    conn, peer = client
    judge(request("POST /join HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 2\n", b"ok"), conn)
    judge(request("POST /join HTTP/1.0\nHost: a\nExpect: 100-continue\nContent-Length: 2\n"), conn)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)


def test_a_head_that_came_in_pieces_is_judged_when_whole(client):
    data = request("GET / HTTP/1.1\nHost: a\n")
    worker = object.__new__(worker_class("labs.example"))
    reading = heads._Reading(client[0], "192.0.2.1", b"")
    for n in range(0, len(data), 3):
        reading.data += data[n:n + 3]
        verdict = worker._judge_head(reading)
    assert verdict is None and reading.need == len(data)


def test_a_crlf_split_between_pieces_is_no_bare_lf_and_a_later_bare_lf_is_found(client):
    worker = object.__new__(worker_class("labs.example"))
    reading = heads._Reading(client[0], "192.0.2.1", b"GET / HTTP/1.1\r")
    assert worker._judge_head(reading) is None
    reading.data += b"\nHost: a\r\n"
    assert worker._judge_head(reading) is None
    reading.data += b"X-Sneaky: b\n"
    assert worker._judge_head(reading)[0] == "400 Bad Request"
