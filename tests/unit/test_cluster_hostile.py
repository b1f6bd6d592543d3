"""A cluster's nodes attacked, by a hostile client, a hostile learner and an operator's mistake (issue 30):
each attack is written as it would be made, and the rule that stops it is what the test asserts. The ones
that need real PostgreSQL or HAProxy are in tests/test_cluster_attacks.py."""
from __future__ import annotations

import dataclasses
import re
import socket
import time

import pytest
from click.testing import CliRunner

from apps import TOKEN, serving
from test_cluster_edge import NODES, seen
from test_cluster_life import shared  # noqa: F401 - a fixture: the cluster's store is the test's SQLite one
from webapp.app import resolve
from webapp.cluster import agent, haproxy
from webapp.commands.cli import main
from webapp.config import Settings, proxies
from webapp.errors import ConfigError
from webapp.guard.limits import client_address
from webapp.labhost import records, subids
from webapp.proxy.gateway import HOST


# -- an operator's mistake: a one-machine server on the cluster's database ------------------------------------
def test_a_server_without_a_node_name_on_a_clusters_store_is_refused(tmp_path, shared):  # noqa: F811
    """Started without LABNB_NODE, a server cuts off every running run in its store (one machine: they are
    all its own) and serves learners beside the nodes: on the cluster's database it would end every node's
    runs. It is refused, naming LABNB_NODE; on a database no node has joined it starts as before."""
    alone = Settings(state_dir=str(tmp_path), backend="plain", database_url="postgresql://db/labnb")
    resolve(alone)   # no node in this store: a one-machine server on PostgreSQL
    shared.node_beat("a", "10.0.0.1:8888", "", "", {})
    with pytest.raises(ConfigError) as refused:
        resolve(alone)
    assert refused.value.setting == "LABNB_NODE" and "node a" in str(refused.value)


# -- a learner's browser restarts ------------------------------------------------------------------------------
def cookie_line(**env: str) -> str:
    result = CliRunner().invoke(main, ["cluster", "haproxy-config", *[a for n in NODES for a in ("--node", n)]],
                                env=env)
    assert result.exit_code == 0, result.output
    return re.search(r"\n    cookie (.*)\n", result.output).group(1)


def test_haproxys_cookie_lives_as_long_as_the_learners_session():
    """labnb's cookie lives LABNB_SESSION_DAYS after a learner's last request; a session cookie of HAProxy's
    would go with the browser's restart, and the learner, still themselves, would land on any node and be
    given a second lab host there while theirs waits on their own node. HAProxy's lasts as long, renewed as
    they come (``maxidle``), and is no longer believed after it."""
    days = Settings().session_days
    assert f"maxidle {int(days * 86400)}s" in cookie_line() and f"Max-Age={int(days * 86400)}" in cookie_line()
    assert "maxidle 86400s attr Max-Age=86400 " in cookie_line(LABNB_SESSION_DAYS="1")   # the nodes' setting


# -- a hostile learner picks a node by a web service's host name -------------------------------------------------
def test_only_what_the_gateway_takes_as_a_web_service_goes_to_a_nodes_services():
    """HAProxy sends a web service's host name to its node without its cookie. A name HAProxy took for one
    but the node's gateway does not (upper case, too long) reached that node's own pages: a learner could
    choose the node that serves them, and get a lab host on each. What HAProxy routes there is exactly what
    the gateway reads as a lab host's web service."""
    result = CliRunner().invoke(main, ["cluster", "haproxy-config", "--node", "b=10.0.0.2:8888"])
    rule = re.search(r"use_backend service_b if \{ (\S+) -m reg (\S+) \}", result.output)
    fetch, pattern = rule.group(1), rule.group(2).replace("\\\\", "\\")

    def routed(host: str) -> bool:
        return bool(re.search(pattern, host.lower() if fetch.endswith(",lower") else host))

    lab_host = records.new_id("/var/lib/labnb", "b")
    for host in (f"p8080-{lab_host}.localhost", f"p8080-{lab_host}.localhost:8080", f"P8080-{lab_host}.localhost",
                 f"p8080-{lab_host.upper()}.LOCALHOST", "p80-lh-b-" + "a" * 40 + ".localhost",
                 "p80-lh-b-" + "a" * 31 + ".localhost", "p80-lh-b-" + "a" * 32 + ".localhost"):
        m = HOST.fullmatch(host)
        assert routed(host) == bool(m and m["host"].startswith("lh-b-") and m["domain"] == "localhost"), host


# -- an operator's mistake: trusting every address ------------------------------------------------------------
@pytest.mark.parametrize("trusted", ["0.0.0.0/0", "10.0.0.5, ::/0"])
def test_trusting_every_address_is_refused(trusted):
    """With every IPv4 address trusted, any client that reaches a node directly writes an IPv6 address of its
    choice in X-Forwarded-For: a new address at each request, past every per-address limit. (Any network
    of learners named there does the same: LABNB_TRUSTED_PROXIES names HAProxy's addresses.)"""
    assert seen("198.51.100.0/24", "198.51.100.1", "2001:db8::1")[0] == "2001:db8::1"   # a trusted client forges
    with pytest.raises(ConfigError) as refused:
        proxies(trusted)
    assert refused.value.setting == "LABNB_TRUSTED_PROXIES" and "every" in str(refused.value)
    assert proxies("10.0.0.0/8, fd00::/8")   # a network of proxies is fine


# -- a hostile client behind a trusted proxy -------------------------------------------------------------------
def test_what_a_client_writes_in_x_forwarded_for_never_becomes_its_address():
    """Held: gunicorn joins repeated headers with commas, in order, and HAProxy appends last; odd entries are
    not addresses; an IPv6 client counts as its /64, an IPv4-mapped one as its IPv4 address."""
    proxy = "10.0.0.5"
    assert seen(proxy, proxy, "198.51.100.1,198.51.100.2, 203.0.113.7") == ("203.0.113.7", "http")
    assert seen(proxy, proxy, "203.0.113.7:4444") == (proxy, "http")      # HAProxy never writes a port
    assert seen(proxy, proxy, "10.0.0.5, 10.0.0.5") == (proxy, "http")    # nothing but proxies: the proxy itself
    assert seen(proxy, "::ffff:10.0.0.5", "203.0.113.7") == ("203.0.113.7", "http")
    assert seen(proxy, proxy, "198.51.100.1, 2001:db8:1:2::7")[0] == "2001:db8:1:2::7"
    assert client_address(seen(proxy, proxy, "2001:db8:1:2::7")[0]) == client_address("2001:db8:1:2:ffff::1")
    assert client_address(seen(proxy, proxy, "::ffff:203.0.113.7")[0]) == "203.0.113.7"
    assert seen(proxy, proxy, "203.0.113.7", "javascript") == ("203.0.113.7", "http")


def test_a_node_name_from_the_store_cannot_write_haproxy_directives():
    """Held: the store's node rows are written by nodes; one with a line break, a space or a second word in
    its name or address is refused, not written into haproxy.cfg."""
    for text in ("a=10.0.0.1:80\n    server x 1.2.3.4:80", "a=10.0.0.1:80 backup", "a\nb=10.0.0.1:80",
                 "a=10.0.0.1:80,agent=9\nx", "a=10.0.0.1#x:80"):
        with pytest.raises(ValueError):
            haproxy.parse_node(text)
    assert dataclasses.astuple(haproxy.parse_node("a=10.0.0.1:80,agent=9")) == ("a", "10.0.0.1", 80, 9)


# -- an odd /etc/subuid: entries read as the shadow suite reads them -------------------------------------------
@pytest.mark.parametrize("other, kept, usable", [
    ("alice:0x30d40:65536", 1, 1),       # hex: uid 200000, one range past LABNB_UID_BASE=100000
    ("alice:0300000:65536", 1, 0),       # octal: uid 98304, over root's entry: kept, said, and none used
    ("alice: +200000:65536", 1, 1),      # blanks and a sign before the number
    ("alice:200000:65536 ", 4, 4),       # a blank after the count: no entry for useradd either
    ("alice:200000:65536\r", 4, 4),      # nor a carriage return (a file saved on Windows)
])
def test_another_users_entry_is_read_as_useradd_reads_it(tmp_path, other, kept, usable):
    """useradd and rootless containers read /etc/subuid with the shadow suite (strtoul, base 0: decimal,
    0x hex, 0 octal, leading blanks and a sign; nothing after the number). An entry labnb read otherwise was
    one whose ids root's entry grew over, and lab hosts shared them with that user's containers."""
    path = tmp_path / "subuid"
    path.write_bytes(f"{other}\nroot:100000:65536\n".encode())
    allotted = subids.allot(str(path), 100000, 4, write=True)
    assert (allotted.ranges, records.machine_ranges(100000, str(path))[0]) == (kept, usable)
    assert path.read_bytes().decode().split("\n")[0] == other   # another's line is never rewritten


def test_a_root_entry_useradd_does_not_read_reserves_nothing(tmp_path):
    """``root:100000:65536 `` (a blank after it) is no entry for useradd, which would give those ids to the
    next user: labnb does not take it as root's either, and adds one that is."""
    path = tmp_path / "subuid"
    path.write_text("root:100000:65536 \n")
    assert records.machine_ranges(100000, str(path))[0] == subids.RANGES   # no entry of root's: the default
    assert subids.allot(str(path), 100000, 2, write=True).after == "root:100000:131072"


# -- a flood on the agent-check port ----------------------------------------------------------------------------
def test_a_flood_on_the_agent_port_is_answered_at_a_bounded_pace():
    """The agent is a thread of the node's worker, and shares its interpreter lock with every page and
    WebSocket: a client flooding its port (left open by the operator) had it answer as fast as it could
    connect. It answers at most once per GAP, which HAProxy (once per check interval) never notices; the rest
    wait in the kernel's backlog, and are dropped past it."""
    asked = []

    def report():
        asked.append(time.monotonic())
        return agent.Report(3)
    server = agent.Agent(report, 0, "127.0.0.1").start()
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                assert s.makefile("rb").readline() == b"up ready 3%\n"
    finally:
        server.close()
    assert all(b - a >= agent.GAP for a, b in zip(asked, asked[1:])), asked


# -- the documented node, behind HAProxy ------------------------------------------------------------------------
def test_a_node_on_a_private_address_answers_the_host_name_learners_open(tmp_path):
    """A node serves on its private address (``labnb serve --host 10.0.0.11``, docs/cluster.md), and took only
    that address and loopback names as Host: every learner's request through HAProxy, for the name they
    opened, was refused. Behind a trusted proxy the Host is HAProxy's clients' (the node reached by HAProxy
    only), as on a server that listens on every address; the token and cookie still guard it."""
    def home(app, host: str, **proxied) -> int:
        """A learner's first page after the token, asked for by the Host they opened."""
        browser = app.test_client()
        browser.get(f"/?token={TOKEN}", headers={"Host": host, **proxied}, environ_base={"REMOTE_ADDR": "10.0.0.5"})
        return browser.get("/", headers={"Host": host, **proxied}, environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code
    with serving(tmp_path, trusted_proxies="10.0.0.5") as app:
        assert home(app, "labs.example.com", **{"X-Forwarded-For": "203.0.113.7"}) == 200
        assert app.test_client().get("/", headers={"Host": "labs.example.com"}).status_code == 403   # no token
    with serving(tmp_path / "alone") as app:   # one machine on loopback: its Host check as before
        assert home(app, "labs.example.com") == 403
