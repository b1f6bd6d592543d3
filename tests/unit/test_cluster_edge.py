"""The cluster's edge, fast: lab host ids by node, the agent-check's replies and server, the haproxy.cfg that
`labnb cluster haproxy-config` writes (checked by HAProxy itself, `haproxy -c`), the client's address behind
a trusted proxy, and the health check (webapp/cluster/agent.py, haproxy.py, webapp/guard/proxied.py)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from apps import LAB, TOKEN, browser, ready, serving
from webapp.app import cookie_name
from webapp.cluster import agent, haproxy
from webapp.commands.cli import main
from webapp.config import Settings
from webapp.errors import ConfigError
from webapp.guard.proxied import ForwardedFor
from webapp.labhost import records
from webapp.proxy.gateway import HOST, UNDER


# -- lab host ids ------------------------------------------------------------------------------------------
def test_a_nodes_lab_hosts_begin_with_its_name_and_still_tell_state_dirs_apart(tmp_path):
    one, other = str(tmp_path / "one"), str(tmp_path / "other")
    lab_host = records.new_id(one, "node1")
    assert lab_host.startswith("lh-node1-") and records.own(records.id_prefix(one, "node1"), lab_host)
    assert not records.own(records.id_prefix(other, "node1"), lab_host)   # same name, another state dir
    assert re.fullmatch(r"lh-[0-9a-f]{6}-[0-9a-f]{6}", records.new_id(one))   # one machine: as it was
    # a node named as a state dir's tag: that state dir's reaper must not take its lab hosts
    tag = records.id_prefix(one).split("-")[1]
    assert not records.own(records.id_prefix(one), records.new_id(other, tag))
    m = HOST.fullmatch(f"p8080-{lab_host}.localhost")   # the web service's host name still parses
    assert m and m["host"] == lab_host


@pytest.mark.parametrize("name", ["Node1", "node-1", "a" * 13, "n\u00e9"])
def test_a_node_name_that_cannot_prefix_lab_host_ids_is_refused(name, monkeypatch):
    monkeypatch.setenv("LABNB_NODE", name)
    with pytest.raises(ConfigError, match="LABNB_NODE"):
        Settings.from_env()


def test_trusted_proxies_must_be_addresses(monkeypatch):
    assert Settings(trusted_proxies="10.0.0.5, 10.0.1.0/24,::1").trusted_proxies
    monkeypatch.setenv("LABNB_TRUSTED_PROXIES", "haproxy.example")
    with pytest.raises(ConfigError, match="LABNB_TRUSTED_PROXIES"):
        Settings.from_env()


# -- the agent-check -----------------------------------------------------------------------------------------
def test_the_agent_says_the_whole_state_in_haproxys_words():
    assert agent.reply(agent.Report(7)) == b"up ready 7%\n"
    assert agent.reply(agent.Report(0)) == b"up ready 0%\n"
    assert agent.reply(agent.Report(1000)) == b"up ready 256%\n"   # HAProxy's largest weight
    assert agent.reply(agent.Report(-2)) == b"up ready 0%\n"
    assert agent.reply(agent.Report(5, draining=True)) == b"up drain 5%\n"
    broken = agent.reply(agent.Report(3, broken="uid ranges\nall\x1b[31m claimed, see `labnb doctor`"))
    assert broken == b"down ready 3% #uid ranges all [31m claimed, see `labnb doctor`\n"


class FakePool:
    def __init__(self, claimed: int):
        self.n = claimed

    def claimed(self):
        return [object()] * self.n


class FakeRoom:
    def counts(self):
        return {"capacity": 10, "seated": 6, "waiting": 1}


def test_free_capacity_is_lab_hosts_not_given_and_places_left():
    settings = Settings(max_lab_hosts=8)
    assert agent.node_report(settings, FakePool(3))() == agent.Report(5)
    assert agent.node_report(settings, FakePool(3), FakeRoom())() == agent.Report(3)   # 10 - 6 - 1
    assert agent.node_report(settings, FakePool(8), draining=lambda: True, broken=lambda: "no")() == \
        agent.Report(0, True, "no")


def ask(port: int, send: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(send)
        got = b""
        while chunk := s.recv(100):
            got += chunk
        return got


def test_the_agent_answers_one_line_and_closes_whatever_the_peer_does():
    state = {"report": agent.Report(4)}
    server = agent.Agent(lambda: state["report"], 0, "127.0.0.1").start()
    try:
        assert ask(server.port) == b"up ready 4%\n"
        state["report"] = agent.Report(4, draining=True)
        assert ask(server.port, b"backend/a\n") == b"up drain 4%\n"   # what HAProxy's agent-send sends: unread
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]   # never read
        assert ask(server.port) == b"up drain 4%\n"
        for s in silent:
            s.close()
        state["report"] = None   # the report fails: no answer, HAProxy keeps the node's last state
        assert ask(server.port) == b""
    finally:
        server.close()


def test_a_node_with_an_agent_port_reports_its_free_lab_hosts(tmp_path):
    port = free_port()
    with serving(tmp_path, agent_port=port, max_lab_hosts=5) as app:
        assert ask(port) == b"up ready 5%\n"
        http = browser(app)
        http.get(f"/labs/{LAB}")
        ready(http)
        assert ask(port) == b"up ready 4%\n"
    with pytest.raises(ConnectionRefusedError):
        ask(port)   # closed with the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- haproxy.cfg ------------------------------------------------------------------------------------------
NODES = ["a=127.0.0.1:8001,agent=9001", "b2=10.0.0.2:8888,agent=9002", "c=[::1]:8003"]


def config(*args: str) -> str:
    result = CliRunner().invoke(main, ["cluster", "haproxy-config", *[a for n in NODES for a in ("--node", n)],
                                       *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.skipif(not shutil.which("haproxy"), reason="HAProxy is not installed (scripts/setup.sh test)")
@pytest.mark.parametrize("args", [(), ("--port", "8443", "--cert", "CERT", "--admin-socket", "SOCK")])
def test_haproxy_accepts_the_config(tmp_path, args):
    args = tuple(str(tmp_path / "admin.sock") if a == "SOCK" else a for a in args)
    if "CERT" in args:   # a certificate of our own, for `haproxy -c` to load
        pem = tmp_path / "labnb.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-keyout", str(pem), "-out", str(pem)], check=True, capture_output=True)
        args = tuple(str(pem) if a == "CERT" else a for a in args)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config(*args))
    checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "[WARNING]" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr


def test_the_config_pins_places_routes_and_bounds():
    text = config("--port", "8080", "--maxconn", "500", "--node-maxconn", "40", "--service-maxconn", "7")
    backend = text[text.index("\nbackend labnb"):text.index("\nbackend service_a")]
    assert "balance roundrobin" in backend   # weights change at run time
    cookie = re.search(r"cookie (\S+) insert indirect nocache httponly", backend).group(1)
    assert cookie not in (cookie_name(None), cookie_name(8080)) and not cookie.removeprefix("labnb-").isdigit(), \
        "never one of labnb's own session cookies (labnb, labnb-<port>)"
    assert "option redispatch" in backend and "option persist" in backend and "option forwardfor" in backend
    assert "http-check send meth GET uri /healthz" in backend
    assert "stick match path,field(4,/) if { path_beg /.labnb/p/ }" in backend   # path-based passes: their node
    assert re.search(r"server a 127\.0\.0\.1:8001 cookie a check agent-check agent-port 9001", backend)
    assert re.search(r"server c \[::1\]:8003 cookie c check\n", backend)   # no agent: a fixed weight
    assert re.search(r"server b2-full 10\.0\.0\.2:8888 cookie b2-full backup track labnb/b2", backend)
    assert "weight 100" in backend and "maxconn 40" in backend
    assert "timeout tunnel" in text and "timeout http-request 10s" in text and "option http-buffer-request" in text
    assert "maxconn 500" in text.split("defaults")[0] and "bind 0.0.0.0:8080\n" in text
    assert "http-request del-header X-Forwarded-For" in text
    assert "backend service_a\n    option forwardfor\n    server a 127.0.0.1:8001 maxconn 7\n" in text
    assert " ssl crt" not in text and "stats socket" not in text


def test_the_path_based_way_is_the_gateways():
    assert haproxy.PATH_WAY == UNDER   # HAProxy (layer 5) keeps the pass's node by the gateway's (layer 6) path


def test_web_service_host_names_go_to_their_nodes_backend():
    text = config()
    rules = dict((m[1], m[2].replace("\\\\", "\\")) for m in
                 re.finditer(r"use_backend service_(\w+) if \{ req\.hdr\(host\) -m reg (\S+) \}", text))
    assert set(rules) == {"a", "b2", "c"}

    def backend(host: str) -> str | None:
        return next((name for name, rule in rules.items() if re.search(rule, host)), None)
    a_host = records.new_id("/var/lib/x", "a")
    assert backend(f"p8080-{a_host}.localhost:8080") == "a"
    assert backend(f"p80-{records.new_id('/var/lib/x', 'b2')}.localhost") == "b2"
    assert backend(f"p80-lh-b2x-abcdef-abcdef.localhost") is None   # another node whose name begins alike
    assert backend(f"p8080-{a_host}.localhost.evil.example") is None
    assert backend("localhost:8080") is None


@pytest.mark.parametrize("node, why", [
    ("a", "the node's name must come first"), ("A=1.2.3.4:80", "lower-case"),
    ("a=1.2.3.4", "host:port"), ("a=1.2.3.4:0", "host:port"), ("a=1.2.3.4:80,agnt=9", "agent="),
    ("a=1.2.3.4:80,agent=x", "agent="), ("a=bad host:80", "host:port")])
def test_a_garbled_node_says_what_is_wrong(node, why):
    with pytest.raises(ValueError, match=why):
        haproxy.parse_node(node)


def test_two_nodes_of_one_name_are_refused():
    result = CliRunner().invoke(main, ["cluster", "haproxy-config", "--node", "a=1.2.3.4:80", "--node", "a=1.2.3.5:80"])
    assert result.exit_code != 0 and "nodes named twice: a" in result.output


# -- behind a trusted proxy ---------------------------------------------------------------------------------
def seen(trusted: str, peer: str, forwarded: str | None = None, proto: str | None = None) -> tuple[str, str]:
    got = {}

    def app(environ, start_response):
        got.update(environ)
        return []
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    if proto is not None:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    ForwardedFor(app, trusted)(environ, None)
    return got["REMOTE_ADDR"], got["wsgi.url_scheme"]


def test_only_a_trusted_proxys_forwarded_for_is_believed():
    assert seen("10.0.0.5", "10.0.0.5", "203.0.113.7", "https") == ("203.0.113.7", "https")
    assert seen("10.0.0.5", "10.0.0.5", "1.1.1.1, 203.0.113.7") == ("203.0.113.7", "http")   # the client's own: left
    assert seen("10.0.0.0/24", "10.0.0.5", "203.0.113.7, 10.0.0.9") == ("203.0.113.7", "http")  # two proxies
    assert seen("10.0.0.5", "198.51.100.1", "203.0.113.7", "https") == ("198.51.100.1", "http")  # not trusted
    assert seen("10.0.0.5", "10.0.0.5", "not-an-address") == ("10.0.0.5", "http")
    assert seen("10.0.0.5", "10.0.0.5") == ("10.0.0.5", "http")   # HAProxy's own health check


def test_a_client_not_from_a_trusted_proxy_cannot_forge_its_address(tmp_path):
    """New learners are limited per address: behind HAProxy each client counts as itself, and a client that
    reaches the node directly gets no new address by writing X-Forwarded-For."""
    with serving(tmp_path, new_learners_per_address=1, trusted_proxies="10.0.0.5") as app:
        def new_learner(peer: str, forwarded: str) -> int:
            return app.test_client().get(f"/?token={TOKEN}", environ_base={"REMOTE_ADDR": peer},
                                         headers={"X-Forwarded-For": forwarded}).status_code
        assert new_learner("10.0.0.5", "203.0.113.1") == 303
        assert new_learner("10.0.0.5", "203.0.113.2") == 303           # another client behind HAProxy
        assert new_learner("10.0.0.5", "203.0.113.2") == 429           # the same one again
        assert new_learner("198.51.100.1", "203.0.113.3") == 303
        assert new_learner("198.51.100.1", "203.0.113.4") == 429       # forged: still 198.51.100.1


def test_the_health_check_answers_without_a_token_and_tells_nothing(tmp_path):
    with serving(tmp_path) as app:
        r = app.test_client().get("/healthz", headers={"Host": "anything.example"})
        assert r.status_code == 200 and r.data == b"ok\n"
        assert app.test_client().post("/healthz").status_code != 200
        assert app.test_client().get("/healthz?token=x").data == b"ok\n"
