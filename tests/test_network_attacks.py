"""Attacks of a hostile learner on the network picture (docs/network.md), each for real in a lab host: a fake
dockerd on the lab host's /run/docker.sock that answers slowly, at length or with a gzip bomb; veths whose
peers hide in a namespace not shown; a /run/netns name that is not UTF-8; the server's netlink socket seen
from inside. Each found by attacking the first version (da8f3cc), where it succeeded; each test states what
the server does instead."""
from __future__ import annotations

import json
import threading
import time
import tracemalloc

from conftest import sh
from webapp.labhost import netlink, netpicture
from webapp.network import picture
from webapp.network.views import Pictures

# A dockerd of the learner's: kill the real one, answer the Engine API on /run/docker.sock with what the
# attack needs. Counts the inspect requests it was sent in /tmp/fake-inspects.
FAKE_DOCKERD = r'''
import gzip, json, os, socket, socketserver, sys, time
from http.server import BaseHTTPRequestHandler

mode, n = sys.argv[1], int(sys.argv[2])
inspects = 0

def listed():
    if mode == "many":   # n in host mode (no inspect needed), n // 50 in bridge mode (one inspect each)
        out = [{"Id": "%064x" % i, "Names": ["/host-%07d-%s" % (i, "x" * 32)],
                "HostConfig": {"NetworkMode": "host"}} for i in range(n)]
        out += [{"Id": "b%063x" % i, "Names": ["/bridge-%06d" % i], "HostConfig": {"NetworkMode": "default"}}
                for i in range(n // 50)]
        return json.dumps(out).encode()
    return b"[]"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "lab"

    def answer(self, body, headers=()):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global inspects
        path = self.path.split("?")[0]
        if path.endswith("/containers/json"):
            if mode == "drip":   # headers, then a byte every 2 s: never a 5 s silence, never an end
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"[")
                self.wfile.flush()
                while True:
                    time.sleep(2)
                    self.wfile.write(b" ")
                    self.wfile.flush()
            if mode == "bomb":   # n MiB of JSON (blanks around []), sent as a few KiB of gzip
                body = gzip.compress(b"[" + b" " * (n << 20) + b"]", 9)
                return self.answer(body, [("Content-Encoding", "gzip")])
            return self.answer(listed())
        if "/containers/" in path and path.endswith("/json"):
            inspects += 1
            with open("/tmp/fake-inspects", "w") as f:
                f.write(str(inspects))
            return self.answer(json.dumps({"NetworkSettings": {"SandboxKey": "/run/netns/shared"}}).encode())
        self.send_error(404)

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

server = Server("/run/docker.sock", Handler)
with open("/tmp/fake.pid", "w") as f:
    f.write(str(os.getpid()))
server.serve_forever()
'''


def fake_dockerd(host, mode: str, n: int = 0) -> None:
    outcome, out = sh(host, f"""
cat > /tmp/fake.py <<'EOF'
{FAKE_DOCKERD}
EOF
kill "$(cat /run/docker.pid)"; while [ -e /run/docker.pid ]; do sleep 0.05; done
rm -f /run/docker.sock /tmp/fake-inspects
setsid -f python3 /tmp/fake.py {mode} {n} </dev/null >/tmp/fake.log 2>&1
for i in $(seq 100); do [ -S /run/docker.sock ] && break; sleep 0.1; done
[ -S /run/docker.sock ] && echo fake-up || cat /tmp/fake.log
""", timeout=60)
    assert outcome.ok and "fake-up" in out, out


def stop_fake(host) -> None:
    sh(host, 'kill -9 "$(cat /tmp/fake.pid)"')


def _in_thread(fn, *args):
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:   # what the request would have answered
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_a_dripping_dockerd_does_not_hold_the_read_or_the_askers(fresh_lab_host):
    """A fake dockerd that sends its answer a byte every 2 s (never a silence long enough for a per-read
    timeout) held the read, and with it every later asker of that lab host (each a server thread), for as
    long as it liked. Now a question to dockerd has an overall deadline, and nobody waits for a read."""
    host = fresh_lab_host
    fake_dockerd(host, "drip")
    pictures = Pictures()
    try:
        first, first_box = _in_thread(pictures.get, host)
        time.sleep(1)
        second, second_box = _in_thread(pictures.get, host)
        second.join(5)
        first.join(20)
        held = [what for what, alive in (("a second asker waits for the hung read", second.is_alive()),
                                         ("the read has no overall deadline (still reading after 26 s)",
                                          first.is_alive())) if alive]
        assert not held, "; ".join(held)
    finally:
        stop_fake(host)


def test_a_dockerd_listing_many_containers_costs_a_bounded_read(fresh_lab_host):
    """An unbounded list of containers made every host-mode container a member and a part of the lab
    host's label, every other one an inspect request and an open: 100,000 fake containers made a picture of
    megabytes. Now dockerd's answer, the containers considered and the members named are bounded."""
    host = fresh_lab_host
    outcome, out = sh(host, "ip netns add shared")
    assert outcome.ok, out
    fake_dockerd(host, "many", 100_000)
    try:
        started = time.monotonic()
        pic = picture.read(host)
        took = time.monotonic() - started
        _, inspects = sh(host, "cat /tmp/fake-inspects 2>/dev/null || echo 0")
        size = len(json.dumps(pic))
        members = sum(len(ns["members"]) for ns in pic["namespaces"])
        print(f"read {took:.1f} s, {size / 1e6:.1f} MB of JSON, {members} members, "
              f"{inspects.strip()} inspects, label of {len(pic['namespaces'][0]['label'])} characters")
        assert size < 1 << 20, f"the picture is {size} bytes of JSON"
        assert members <= 1024, f"{members} members"
        assert int(inspects.strip() or 0) <= 4 * netpicture.MAX_NAMESPACES, f"{inspects} inspect requests"
    finally:
        stop_fake(host)


def test_a_gzip_bomb_from_dockerd_is_not_inflated(fresh_lab_host):
    """The docker SDK (requests) inflated a gzip answer whole: a few KiB from the lab host became as many
    bytes in the server's memory as the learner liked. Now only a plain answer of bounded size is taken."""
    host = fresh_lab_host
    fake_dockerd(host, "bomb", 64)
    try:
        tracemalloc.start()
        try:
            picture.read(host)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        print(f"peak {peak / 2**20:.0f} MiB of Python memory for one read")
        assert peak < 16 << 20, f"one read took {peak / 2**20:.0f} MiB"
    finally:
        stop_fake(host)


HIDDEN = r"""
ip netns add hidden
for n in $(seq 0 7); do
  ip netns add s$n
  for i in $(seq 1 63); do echo "link add v$i netns s$n type veth peer name p$n-$i netns hidden"; done
done > /tmp/batch
ip -batch /tmp/batch
ip netns exec hidden setsid -f sleep 3600 </dev/null >/dev/null 2>&1
ip netns delete hidden
ip netns exec s0 ip -o link show v1 | grep -c link-netnsid
"""


def test_veths_to_a_hidden_namespace_do_not_multiply_nsid_queries(fresh_lab_host, monkeypatch):
    """A veth whose peer is in a namespace not shown (held by a process, not in /run/netns) has a netnsid
    no shown namespace answers to: each such veth asked RTM_GETNSID of every other namespace again
    (254,000 queries per read at the limits). Each pair of namespaces is asked once."""
    host = fresh_lab_host
    outcome, out = sh(host, HIDDEN, timeout=120)
    assert outcome.ok and out.strip().endswith("1"), out
    asked = []
    real = netlink.Rtnl.nsid

    def counting(self, nsfd):
        asked.append(nsfd)
        return real(self, nsfd)

    monkeypatch.setattr(netlink.Rtnl, "nsid", counting)
    pic = picture.read(host)
    n = len(pic["namespaces"])
    print(f"{n} namespaces, {len(asked)} RTM_GETNSID queries, read in {pic['took_ms']} ms")
    assert n == 9
    assert len(asked) <= n * (n - 1), f"{len(asked)} RTM_GETNSID queries for {n} namespaces"


def test_a_netns_name_that_is_not_utf8_is_a_note_not_a_crash(lab_host):
    """A name in /run/netns with a byte that is not UTF-8 made the whole read fail (UnicodeEncodeError):
    /network.json answered 500 and ``labnb run --json`` stopped. It is a cleaned name like any other."""
    outcome, out = sh(lab_host, "ip netns add \"$(printf 'bad\\377')\" && ls /run/netns | od -c | head -2")
    assert outcome.ok, out
    try:
        pic = picture.read(lab_host)
        names = [m["name"] for ns in pic["namespaces"] for m in ns["members"]]
        assert any(name.startswith("bad") for name in names), (names, pic["notes"])
    finally:
        sh(lab_host, "ip netns delete \"$(printf 'bad\\377')\"")


ADDRESSES = r"""
for n in $(seq 1 63); do
  ip netns add a$n
  for i in $(seq 1 2040); do echo "addr add 10.$n.$((i / 250)).$((i % 250 + 1))/32 dev lo"; done > /tmp/addr
  ip -n a$n -batch /tmp/addr
done
ip -n a63 -o addr | wc -l
"""


def test_a_read_at_the_limits_costs_little(fresh_lab_host, monkeypatch):
    """64 namespaces with 2,040 addresses each (130,000 messages for pyroute2 to decode, in pure Python)
    made each read 17 s of the server's one process. Now a dump is cut at 512 messages and a read at its
    time budget (what is left is noted), and a slow read is not repeated soon (webapp/network/views.py)."""
    host = fresh_lab_host
    outcome, out = sh(host, ADDRESSES, timeout=300)
    assert outcome.ok and out.strip().endswith("2040"), out
    answers = []
    real = netlink.Netlink._ask

    def counting(self, msg, kind, dump):
        try:
            replies = real(self, msg, kind, dump)
        except netlink.NetlinkError:
            answers.append(netlink.MAX_MESSAGES + 1)
            raise
        answers.append(len(replies))
        return replies

    monkeypatch.setattr(netlink.Netlink, "_ask", counting)
    pic = picture.read(host)
    print(f"{len(pic['namespaces'])} namespaces read in {pic['took_ms']} ms, {sum(answers)} messages")
    assert len(pic["namespaces"]) == 64
    assert max(answers) <= netlink.MAX_MESSAGES + 1   # no dump is decoded past its bound
    # the budget cut the read short (a slow machine), or each namespace's dump was cut and said so, its notes
    # up to MAX_NOTES then "and more" (a fast one)
    notes = pic["notes"]
    if not notes[0].startswith("the picture was cut short"):
        assert len(notes) == netpicture.MAX_NOTES + 1 and notes[-1] == "and more that could not be shown", notes
        assert all(n.startswith("netns a") and "cannot read it" in n for n in notes[:-1]), notes
    # the budget ends a read: what is left is shown without interfaces, and said so
    pic = picture.read(host, budget=0)
    assert pic["notes"][0].startswith(f"the picture was cut short: {len(pic['namespaces'])} namespaces")
    assert not any(ns["interfaces"] for ns in pic["namespaces"])
