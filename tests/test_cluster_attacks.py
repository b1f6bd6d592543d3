"""A cluster's nodes attacked for real (issue 30): two nodes on real PostgreSQL and Redis behind a real HAProxy
(tests/cluster_support.py). What a hostile learner does through HAProxy, what an operator's mistake does to
the cluster, and the rule that now stops each; the fast tier's twins are in tests/unit/test_cluster_hostile.py."""
from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import threading
import time

import pytest
import requests

from cluster_support import behind_haproxy, running_cluster, through
from web_support import LABNB, TEST_LAB, Server, wait_for
from webapp.labhost import records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster("attacks")


@pytest.fixture(scope="module")
def haproxy(cluster):
    yield from behind_haproxy(cluster)


def pinned(response: requests.Response, before: str | None = None) -> str | None:
    """The node HAProxy's cookie names in ``response`` (it sets one to a browser that has none), else
    ``before``."""
    m = re.search(r"labnb-node=([a-z0-9]+)", response.headers.get("Set-Cookie", ""))
    return m[1] if m else before


def test_a_learner_whose_browser_restarts_comes_back_to_their_node(cluster, haproxy):
    """A browser keeps labnb's cookie across a restart (it lives LABNB_SESSION_DAYS) and, before, dropped
    HAProxy's (a session cookie): the learner, still themselves, was placed anew at each restart, and given
    a lab host on another node while theirs waited on their own."""
    front = through(haproxy, cluster.nodes["a"])
    http = requests.Session()
    r = http.get(f"{front.url}/?token={front.token}", timeout=10, allow_redirects=False)
    node = pinned(r)
    assert node in cluster.nodes and "Max-Age=" in r.headers["Set-Cookie"], r.headers.get("Set-Cookie")
    for _ in range(6):   # six restarts: the browser keeps only the cookies that outlive it
        restarted = requests.Session()
        for c in http.cookies:
            if not c.discard:
                restarted.cookies.set_cookie(c)
        assert {c.name for c in restarted.cookies} >= {"labnb", "labnb-node"}
        r = restarted.get(f"{front.url}/", timeout=10)
        assert r.status_code == 200 and pinned(r, node) == node



def test_a_learner_opens_haproxys_own_name(cluster, haproxy):
    """The nodes serve on their own address (here 127.0.0.1), which learners never open: they open HAProxy's
    name, which the nodes took for another server's and refused after the token."""
    http, host = requests.Session(), f"labs.example.test:{haproxy.port}"
    token = cluster.nodes["a"].token
    assert http.get(f"{haproxy.url}/?token={token}", headers={"Host": host}, timeout=10).status_code == 200
    assert http.get(f"{haproxy.url}/labs/{TEST_LAB}", headers={"Host": host}, timeout=10).status_code == 200

def service_sessions(haproxy, node: str) -> int:
    """Requests HAProxy has sent to ``node``'s web-service backend."""
    rows = [line.split(",") for line in haproxy.command("show stat").splitlines() if line]
    head = [h.lstrip("# ") for h in rows[0]]
    return next(int(dict(zip(head, row))["stot"]) for row in rows[1:]
                if row[0] == f"service_{node}" and row[1] == "BACKEND")


def test_a_learner_cannot_pick_a_nodes_pages_by_a_web_service_host_name(cluster, haproxy):
    """HAProxy sends a web service's host name to its node, without its cookie; before, it also sent names the
    node's gateway does not read as a web service (upper case, a lab host id too long), which reached that
    node's own pages: a learner chose their node, and got a lab host on each."""
    front = through(haproxy, cluster.nodes["a"])
    http = front.learner()
    lab_host = records.new_id("/var/lib/labnb", "b")
    before = service_sessions(haproxy, "b")
    for host in (f"P8080-{lab_host.upper()}.LOCALHOST", "p8080-lh-b-" + "a" * 40 + ".localhost"):
        http.get(f"{front.url}/", headers={"Host": f"{host}:{haproxy.port}"}, timeout=10)
    assert service_sessions(haproxy, "b") == before
    http.get(f"{front.url}/", headers={"Host": f"p8080-{lab_host}.localhost:{haproxy.port}"}, timeout=10)
    assert service_sessions(haproxy, "b") == before + 1   # a web service's name still goes there


def test_a_server_without_a_node_name_on_the_clusters_database_is_refused(cluster):
    """An operator starts a one-machine server on the cluster's LABNB_DATABASE_URL: at its start it cut off
    every running run in the store, the nodes' too. It is refused, naming LABNB_NODE, and the nodes' runs
    run on."""
    with cluster.store() as store:
        run = store.start_run("d" * 32, "hello", "one", "sleep 1000", records.new_id("/var/lib/x", "a"))
    alone = Server(f"/var/lib/labnb-test-attacks-alone-{os.getpid()}", 60,
                   env={"LABNB_DATABASE_URL": cluster.database_url, "LABNB_NODE": "", "LABNB_REDIS_URL": ""})
    try:
        alone.prepare()
        alone.proc = subprocess.Popen([LABNB, "serve", "--port", str(alone.port)], env=alone.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True)

        def running() -> bool:
            with cluster.store() as store:
                return store.get_run(run)["status"] == "running"
        wait_for(lambda: alone.proc.poll() is not None or not running(), 60, 0.2, "the server to stop or start")
        alone.stop()
        out = alone.proc.stdout.read()
        assert alone.proc.returncode != 0 and "LABNB_NODE" in out, out
        assert running(), "the node's run was cut off"
    finally:
        alone.cleanup()
        with cluster.store() as store:
            store.finish_run(run, "interrupted")


def test_the_agent_port_answers_haproxy_through_a_flood(cluster, haproxy):
    """Anyone who reaches a node's agent port (the operator firewalls it to HAProxy) may open many
    connections, never read, or send a lot: the agent answers each at once and closes it, and HAProxy keeps
    reading the node's weight."""
    port = int(cluster.nodes["b"].env["LABNB_AGENT_PORT"])
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    try:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(b"x" * (1 << 20))
                except OSError:
                    pass   # the agent answered and closed: the rest was refused
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert re.fullmatch(rb"up ready [0-9]+%\n", s.makefile("rb").readline())
        haproxy.wait_server("b", "up with its agent's weight", lambda st: st.get("status", "").startswith("UP")
                            and st.get("agent_status", "") in ("L7OK", ""), 30)
    finally:
        for s in silent:
            s.close()


def test_a_client_trickling_bodies_through_haproxy_leaves_other_learners_their_share(cluster, haproxy):
    """Behind HAProxy every request reaches a node from HAProxy's one address, so the node's request reader
    (webapp/commands/heads.py) counts all learners as one client. HAProxy passes a request on only once its
    head and body are whole, but a body larger than HAProxy's buffer and within the node's bound (16 KiB) is
    passed on as it comes: a client may keep many such requests being read by one node. Held: the node reads
    at most PER_ADDRESS of them and closes the oldest, and another learner's request, read at once, is
    answered."""
    front = through(haproxy, cluster.nodes["a"])
    http = front.learner()
    node = http.cookies["labnb-node"]
    slow = []
    try:
        for _ in range(300):   # more than the node reads at once from one address, and than HAProxy's maxconn to it
            s = socket.create_connection(("127.0.0.1", haproxy.port), timeout=5)
            s.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{haproxy.port}\r\nCookie: labnb-node={node}\r\n"
                      f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 16200\r\n\r\n".encode()
                      + b"a" * 16100)
            slow.append(s)
        log = cluster.nodes[node.split("|")[0]].log
        wait_for(lambda: "were sending their requests slowly: the oldest was closed" in log.read_text(), 60, 0.2,
                 "the node to close the oldest slow requests")   # the attack reached the node's bound
        for _ in range(5):
            assert http.get(f"{front.url}/", timeout=30).status_code == 200
    finally:
        for s in slow:
            s.close()


def test_two_first_nodes_racing_for_the_secret_key_both_take_one(cluster):
    """Held: nodes started at once, each the first as far as it can tell, make a secret key each; the first
    to commit wins and every one of them signs with that one (``store.shared_value``, READ COMMITTED)."""
    name, start = f"race-{os.getpid()}", threading.Barrier(8)
    values: list[str] = []

    def node(i: int) -> None:
        with cluster.store() as store:
            start.wait(30)
            values.append(store.shared_value(name, lambda: time.sleep(0.5) or f"key-{i}"))
    threads = [threading.Thread(target=node, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with cluster.store() as store:
        assert len(values) == 8 and set(values) == {store.shared_value(name, lambda: "later")}



@pytest.fixture(scope="module")
def limited():
    """One node that gives one new learner per client address, behind its own HAProxy."""
    yield from running_cluster("limited", names=("l",), uid_slot=48, env={"LABNB_NEW_LEARNERS_PER_ADDRESS": "1"})


@pytest.fixture(scope="module")
def limited_front(limited):
    yield from behind_haproxy(limited)


def new_learner(front, token: str, source: str, forged: str | None = None) -> int:
    """The status of a new browser's first request (the learners' token) from ``source``, through HAProxy."""
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", f"/?token={token}", headers={"X-Forwarded-For": forged} if forged else {})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_client_behind_haproxy_is_limited_as_itself_whatever_it_forges(limited, limited_front):
    """Held: HAProxy drops the X-Forwarded-For a client sends and appends the client's address, which the node
    believes from HAProxy only (LABNB_TRUSTED_PROXIES): each client has its own share of new learners, and one
    that forges another address still has only its own."""
    token = limited.nodes["l"].token
    assert new_learner(limited_front, token, "127.0.0.2") == 303
    assert new_learner(limited_front, token, "127.0.0.2", "203.0.113.9") == 429
    assert new_learner(limited_front, token, "127.0.0.2", "127.0.0.3") == 429
    assert new_learner(limited_front, token, "127.0.0.3") == 303   # another client: a share of its own
