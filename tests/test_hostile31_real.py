"""Issue 31's new paths from the server into a learner's lab host, attacked from a real one: the lab host's
root puts a program of their own on /run/docker.sock before a lab naming images is opened
(``images.ensure`` in its setup), and makes more listeners than a netlink dump is read for (the picture of
a set names each host's listening ports)."""
from __future__ import annotations

import threading

import pytest

from conftest import sh
from webapp.images import ensure as ensure_mod
from webapp.labhost.base import LabHostError
from webapp.network import picture

pytestmark = pytest.mark.slow

FAKE_DOCKERD = r'''
import os, socket, sys, threading, time
mode = sys.argv[1]

def one(conn):
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        if mode == "trickle" and request.startswith(b"GET "):
            body = b'{"message": "no such one"}'
            conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return
        conn.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"Id": "')
        for _ in range(1 << 30 if mode == "trickle" else 1024):   # a byte at a time, or 64 MiB at once
            if mode == "trickle":
                conn.sendall(b"a")
                time.sleep(0.05)
            else:
                conn.sendall(b"a" * 65536)
    except OSError:
        pass
    finally:
        conn.close()

server = socket.socket(socket.AF_UNIX)
server.bind("/run/docker.sock")
server.listen(16)
with open("/tmp/fake.pid", "w") as f:
    f.write(str(os.getpid()))
while True:
    conn, _ = server.accept()
    threading.Thread(target=one, args=(conn,), daemon=True).start()
'''


def fake_dockerd(host, mode: str) -> None:
    outcome, out = sh(host, f"""
cat > /tmp/fake.py <<'EOF'
{FAKE_DOCKERD}
EOF
kill "$(cat /run/docker.pid)"; while [ -e /run/docker.pid ]; do sleep 0.05; done
rm -f /run/docker.sock
setsid -f python3 /tmp/fake.py {mode} </dev/null >/tmp/fake.log 2>&1
for i in $(seq 100); do [ -S /run/docker.sock ] && break; sleep 0.1; done
[ -S /run/docker.sock ] && echo fake-up || cat /tmp/fake.log
""")
    assert outcome.ok and "fake-up" in out, out


def ensured(host, within: float = 60) -> BaseException | None:
    """What ``ensure`` raised (None: nothing), run in a thread; the test fails if it does not end."""
    box: list = []

    def run():
        try:
            ensure_mod.ensure(host, ["nginx:1.27"])
            box.append(None)
        except BaseException as e:   # noqa: BLE001 - the test looks at it
            box.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert box, "images.ensure still reads the learner's fake dockerd"
    return box[0]


def test_a_fake_dockerd_that_floods_ensure_is_cut_at_a_bound(fresh_lab_host):
    fake_dockerd(fresh_lab_host, "flood")
    raised = ensured(fresh_lab_host)
    assert isinstance(raised, LabHostError) and "larger than" in str(raised), raised


def test_a_fake_dockerd_that_trickles_a_pull_is_left_at_the_deadline(fresh_lab_host, monkeypatch):
    monkeypatch.setattr(ensure_mod, "PULL_TIMEOUT", 3.0)
    fake_dockerd(fresh_lab_host, "trickle")
    raised = ensured(fresh_lab_host)
    assert isinstance(raised, LabHostError) and "within" in str(raised), raised


def test_more_listeners_than_a_dump_reads_leave_the_picture_drawn(fresh_lab_host):
    """600 listening sockets: the kernel's dump is cut at netlink.MAX_MESSAGES; the picture says the ports
    are not shown, instead of failing the page (and the port proxy's list likewise)."""
    outcome, out = sh(fresh_lab_host, """
cat > /tmp/listen.py <<'EOF'
import os, socket, time
held = []
for port in range(20000, 20600):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(1)
    held.append(s)
open("/tmp/listening", "w").close()
time.sleep(3600)
EOF
setsid -f python3 /tmp/listen.py </dev/null >/tmp/listen.log 2>&1
for i in $(seq 100); do [ -e /tmp/listening ] && break; sleep 0.1; done
[ -e /tmp/listening ] && echo listening || cat /tmp/listen.log
""")
    assert outcome.ok and "listening" in out, out
    drawn = picture.read(fresh_lab_host, ports=True)
    assert drawn["ports"] is None and any("listening ports not shown" in n for n in drawn["notes"]), drawn["notes"]
