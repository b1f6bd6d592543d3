"""Two labnb nodes on this machine (a cluster of tests/cluster_support.py: PostgreSQL, Redis) behind a real HAProxy, its config written by webapp/cluster/haproxy.py:
new learners placed by the weight each node's agent-check reports (webapp/cluster/agent.py), pinned to their
node by HAProxy's cookie with their WebSocket through it, a drained node and a node reporting down given no
new learner while theirs carry on, a lab host's web service reached on its node by its host name and by the
path-based way, TLS ended at HAProxy, a slow client held at HAProxy, never reaching a node; two workshop
nodes whose joins land where the room has places; the config made from the nodes in the cluster's store.

Node a answers HAProxy's agent-check itself (LABNB_AGENT_PORT). Node b's agent-check goes through a relay in
this test that passes on b's own answer, or says b is draining or down: the node's state is the cluster's,
in the store, and drain and down reach the agent through the callable the node lifecycle gives it."""
from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys

import pytest
import requests

from haproxy_support import HAProxy, placed
from pg_support import pg_database_url, postgres_server  # noqa: F401  (fixtures)
from slowloris_support import Group, Slowloris
from test_proxy import LAB as PROXY_LAB, PORT as APP_PORT, enter
from cluster_support import Cluster, through
from web_support import TEST_LAB, Tab, wait_for
from workshop_support import CODE, join
from webapp.cluster import agent
from webapp.cluster.haproxy import COOKIE, Node

pytestmark = pytest.mark.slow

MOST = {"a": 2, "b": 6}   # lab hosts each node gives (LABNB_MAX_LAB_HOSTS): their weights, before any is given


def cluster_of(name: str, most: dict[str, int], env: dict | None = None) -> Cluster:
    """A cluster (tests/cluster_support.py: PostgreSQL, Redis) of nodes giving ``most[node]`` lab hosts each."""
    c = Cluster(name, names=(), uid_slot=0, pool_size=1, env=env)
    for node, n in most.items():
        c.nodes[node] = c.node(node, {"LABNB_MAX_LAB_HOSTS": str(n)})
    return c


class Relay:
    """Node b's agent as HAProxy asks it: b's own answer, or what ``override`` says."""

    def __init__(self, port: int):
        self.port, self.override = port, None
        self.agent = agent.Agent(self.report, 0, "127.0.0.1")

    def report(self) -> agent.Report:
        if self.override is not None:
            return self.override
        return parse(ask(self.port))


def ask(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        got = b""
        while chunk := s.recv(100):
            got += chunk
        return got


def parse(line: bytes) -> agent.Report:
    words = line.decode().split()
    return agent.Report(int(words[2].rstrip("%")), words[1] == "drain")


@pytest.fixture(scope="module")
def cluster():
    c = cluster_of("haproxy", MOST)
    relay = None
    try:
        c.start()
        nodes = c.nodes
        relay = Relay(int(nodes["b"].env["LABNB_AGENT_PORT"]))
        relay.agent.start()
        a, b = nodes["a"], nodes["b"]
        with HAProxy([Node("a", "127.0.0.1", a.port, int(a.env["LABNB_AGENT_PORT"])),
                      Node("b", "127.0.0.1", b.port, relay.agent.port)], head_timeout="3s") as haproxy:
            yield haproxy, through(haproxy, a), nodes, relay
    finally:
        if relay is not None:
            relay.agent.close()
        c.stop()


def learner_on(front, name: str) -> requests.Session:
    """A new learner whose browser HAProxy pins to node ``name`` (as if it had placed them there)."""
    http = requests.Session()
    http.cookies.set(COOKIE, name, domain="127.0.0.1", path="/")   # where HAProxy's renewal lands too
    assert http.get(f"{front.url}/?token={front.token}", timeout=10).status_code == 200 and placed(http) == name
    return http


def sessions(haproxy) -> dict[str, int]:
    """Requests HAProxy sent each node, by its entries (the backend's own row is their sum)."""
    return {name: int(s["stot"]) for name, s in haproxy.stats().items() if name not in ("FRONTEND", "BACKEND")}


def new_learners(front, n: int) -> collections.Counter:
    return collections.Counter(placed(front.learner()) for _ in range(n))


def test_new_learners_land_on_both_nodes_by_their_free_lab_hosts(cluster):
    haproxy, front, nodes, relay = cluster
    for name, most in MOST.items():
        haproxy.wait_server(name, f"weighted {most}", lambda s, most=most: s.get("weight") == str(most))
    got = new_learners(front, 16)
    assert got["a"] + got["b"] == 16 and 0 < got["a"] < got["b"], got   # 2 : 6
    # node a gives both its lab hosts: it reports 0 and takes no new learner while b has room
    on_a = [http for http in (front.learner() for _ in range(8)) if placed(http) == "a"][:2]
    assert len(on_a) == 2
    for http in on_a:
        front.open_lab(http)
    haproxy.wait_server("a", "weighted 0", lambda s: s.get("weight") == "0")
    assert new_learners(front, 6) == {"b": 6}


def test_a_learner_stays_on_their_node_and_their_websocket_goes_through(cluster):
    haproxy, front, nodes, relay = cluster
    http = front.learner()
    home = placed(http)
    before = sessions(haproxy)
    for _ in range(8):
        assert http.get(f"{front.url}/labs/{TEST_LAB}", timeout=10).status_code == 200
    after = sessions(haproxy)
    assert after[home] - before[home] == 8 and sum(after.values()) - sum(before.values()) == 8, (before, after)
    front.open_lab(http)
    tab = Tab(front, http)
    try:
        end = tab.wait_end(tab.run("echo"))
        assert end["status"] == "done" and "x" in tab.text(end["run"])
    finally:
        tab.close()


@pytest.fixture(scope="module")
def app_on_b(cluster) -> requests.Session:
    """A learner on node b whose lab host runs the app of tests/fixtures/labs/93-proxy-test.md."""
    haproxy, front, nodes, relay = cluster
    http = learner_on(front, "b")
    front.open_lab(http, PROXY_LAB)
    tab = Tab(front, http, lab=PROXY_LAB)
    try:
        assert tab.wait_end(tab.run("app"))["status"] == "done"
    finally:
        tab.close()
    return http


def test_a_lab_hosts_web_service_on_node_b_is_reached_by_its_host_name(cluster, app_on_b):
    haproxy, front, nodes, relay = cluster
    http = app_on_b
    inside = enter(front, http, f"/proxy/{APP_PORT}/")
    assert inside.host.startswith(f"p{APP_PORT}-lh-b-"), inside.host
    r = inside.get("/")
    assert r.status_code == 200 and "hello from the app" in r.text


def test_the_path_based_way_to_a_web_service_on_node_b_stays_on_b(cluster, app_on_b):
    """A pass's requests carry no cookie (its pages are sandboxed): HAProxy sends them where the owner's
    first one went, even while b takes no new learner (its weight 0: the others alternate between the
    backups)."""
    haproxy, front, nodes, relay = cluster
    owner = app_on_b
    r = owner.get(f"{front.url}/proxy/{APP_PORT}/?via=path", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/.labnb/p/"), r.headers
    under = r.headers["Location"]
    assert "hello from the app" in owner.get(f"{front.url}{under}", timeout=30).text
    relay.override = agent.Report(0)
    try:
        haproxy.wait_server("b", "weighted 0", lambda s: s.get("weight") == "0")
        for _ in range(6):
            r = requests.get(f"{front.url}{under}", timeout=30)   # no cookie at all
            assert r.status_code == 200 and "hello from the app" in r.text, r.text
    finally:
        relay.override = None


def test_tls_ends_at_haproxy_and_the_nodes_links_say_https(cluster, app_on_b, tmp_path):
    """With --cert, HAProxy serves HTTPS and tells the nodes so (X-Forwarded-Proto, believed from a trusted
    proxy): the link into a web service and the page's CSP name https, or a browser would refuse them."""
    haproxy, front, nodes, relay = cluster
    pem = tmp_path / "labnb.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    pem.write_text((tmp_path / "cert.pem").read_text() + (tmp_path / "key.pem").read_text())
    a, b = nodes["a"], nodes["b"]
    with HAProxy([Node("a", "127.0.0.1", a.port, int(a.env["LABNB_AGENT_PORT"])),
                  Node("b", "127.0.0.1", b.port, relay.agent.port)], cert=str(pem)) as tls:
        https = requests.Session()
        https.cookies.update(app_on_b.cookies)   # the learner on b, the same browser
        ca = str(tmp_path / "cert.pem")   # a certificate of this test's own, checked (per request: the
                                          # environment's REQUESTS_CA_BUNDLE would win over the session's)
        page = https.get(f"https://127.0.0.1:{tls.port}/labs/{PROXY_LAB}", verify=ca, timeout=10)
        assert page.status_code == 200
        assert f"script-src https://127.0.0.1:{tls.port}/static/" in page.headers["Content-Security-Policy"]
        r = https.get(f"https://127.0.0.1:{tls.port}/proxy/{APP_PORT}/", allow_redirects=False, verify=ca, timeout=10)
        assert r.status_code == 302 and r.headers["Location"].startswith(f"https://p{APP_PORT}-lh-b-"), r.headers
        assert r.headers["Location"].split("/")[2].endswith(f".localhost:{tls.port}")


def test_a_drained_node_gets_no_new_learner_while_its_learners_carry_on(cluster):
    haproxy, front, nodes, relay = cluster
    theirs = learner_on(front, "b")
    relay.override = agent.Report(MOST["b"], draining=True)
    try:
        haproxy.wait_server("b", "drained", lambda s: s.get("status", "").startswith("DRAIN"))
        # a is full (weight 0) and b drained: the new ones go to a's backup entry, where a room would queue them
        assert new_learners(front, 6) == {"a": 6}
        for _ in range(4):
            assert theirs.get(f"{front.url}/labs/{TEST_LAB}", timeout=10).status_code == 200 and placed(theirs) == "b"
        tab = Tab(front, theirs)   # their tab connects on b
        tab.close()
    finally:
        relay.override = None
    haproxy.wait_server("b", "up again", lambda s: s.get("status") == "UP")


def test_a_node_reporting_down_gets_no_new_learner(cluster):
    haproxy, front, nodes, relay = cluster
    theirs = learner_on(front, "b")
    relay.override = agent.Report(MOST["b"], broken="all 64 uid ranges are claimed")
    try:
        stats = haproxy.wait_server("b", "down", lambda s: s.get("status", "").startswith("DOWN"))
        assert "uid ranges" in stats["last_agt"] + stats.get("agent_desc", ""), stats
        assert new_learners(front, 4) == {"a": 4}
        # it still answers: its learners stay (option persist)
        assert theirs.get(f"{front.url}/labs/{TEST_LAB}", timeout=10).status_code == 200 and placed(theirs) == "b"
    finally:
        relay.override = None
    haproxy.wait_server("b", "up again", lambda s: s.get("status") == "UP")


def test_a_slow_client_is_cut_by_haproxy_and_never_reaches_a_node(cluster):
    haproxy, front, nodes, relay = cluster
    before = sessions(haproxy)
    with Slowloris(haproxy.port, [Group("127.0.0.3", 4)], every=0.5) as slow:
        wait_for(lambda: slow.closed >= 4, 60, 0.1, "haproxy to cut the slow requests")
    assert sessions(haproxy) == before   # no session of theirs reached a node
    assert slow.statuses[408] >= 4, slow.statuses


def test_the_config_takes_the_nodes_the_clusters_store_knows(pg_database_url, tmp_path):
    """`labnb cluster haproxy-config` with LABNB_DATABASE_URL: every node that beat in the store, as it beat
    (its address and agent port), a node given by --node as given; HAProxy accepts the config."""
    from webapp.config import Settings
    from webapp.store import open_store

    store = open_store(Settings(state_dir=str(tmp_path), database_url=pg_database_url))
    try:
        store.node_beat("a", "127.0.0.1:8001", "9001", "", {})
        store.node_beat("b", "[::1]:8002", "", "", {})
        store.set_node_state("b", "draining")   # its agent says so; it stays in the config
    finally:
        store.close()
    out = tmp_path / "haproxy.cfg"
    env = {**os.environ, "LABNB_DATABASE_URL": pg_database_url, "LABNB_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "webapp.commands.cli", "cluster", "haproxy-config",
                           "--node", "c=127.0.0.1:8003,agent=9003", "--node", "a=127.0.0.1:8101,agent=9101",
                           "-o", str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "server a 127.0.0.1:8101 cookie a check agent-check agent-port 9101" in text   # as given
    assert "server b [::1]:8002 cookie b check\n" in text and "server c 127.0.0.1:8003 " in text
    checked = subprocess.run(["haproxy", "-c", "-f", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


PLACES = {"a": 1, "b": 2}   # lab hosts each workshop node gives, in a room of their sum


@pytest.fixture(scope="module")
def workshop():
    c = cluster_of("haproxy-room", PLACES, {"LABNB_WORKSHOP": "1", "LABNB_CAPACITY": str(sum(PLACES.values())),
                                            "LABNB_ACCESS_CODE": CODE, "LABNB_WORKSHOP_LABS": TEST_LAB})
    try:
        c.start()
        with HAProxy([Node(name, "127.0.0.1", s.port, int(s.env["LABNB_AGENT_PORT"]))
                      for name, s in c.nodes.items()], head_timeout="3s") as haproxy:
            yield haproxy, through(haproxy, c.nodes["a"])
    finally:
        c.stop()


def test_workshop_joins_land_where_the_room_has_places(workshop):
    """A node reports the lab hosts it can still give, at most the places the shared room has left: every
    learner joins through HAProxy (the join page and its form on one node) and is seated, none queued while
    another node has a lab host to give."""
    haproxy, front = workshop
    for name, places in PLACES.items():
        haproxy.wait_server(name, f"weighted {places}", lambda s, places=places: s.get("weight") == str(places))
    seated = collections.Counter()
    for i in range(sum(PLACES.values())):
        http, r = join(front, f"learner {i}")
        assert r.status_code == 200 and r.url.endswith(f"/labs/{TEST_LAB}"), (r.url, r.page[-300:])
        seated[placed(http)] += 1
        left = str(PLACES[placed(http)] - seated[placed(http)])
        haproxy.wait_server(placed(http), f"weighted {left}", lambda s: s.get("weight") == left)
    assert seated == PLACES
