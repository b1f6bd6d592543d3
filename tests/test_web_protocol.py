"""The Socket.IO protocol of runs, with a real python-socketio client against
the real server (gunicorn, sandbox lab hosts): order, re-attach, two tabs, a
tab that stops reading, a crash, and hostile events.

python-socketio's client handles each event in a thread of its own, so events
may reach a handler out of order: tests look at sequence numbers, as the page
does, not at arrival order."""
from __future__ import annotations

import http.client
import os
import re
import signal
import time
import uuid

import msgpack
import pytest
import websocket

from web_support import TEST_LAB, Server, Tab, _state_dir, serving, wait_for

from webapp.runs.manager import CLIENT_WINDOW, MAX_CHUNK


@pytest.fixture
def tab(web_server, learner):
    t = Tab(web_server, learner)
    yield t
    t.close()


def test_output_in_order_stored_and_downloadable(web_server, learner, tab):
    run = tab.run("count")
    end = tab.wait_end(run, 60)
    assert end["status"] == "done" and end["exit_code"] == 0
    seqs = sorted(tab.chunks[run])
    assert seqs == list(range(end["seq"] + 1))
    text = tab.text(run)
    lines = [l for l in text.replace("\r\n", "\n").split("\n") if l.startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 31)]
    ends = [tab.chunks[run][s]["end"] for s in seqs]
    assert ends == sorted(ends) and ends[-1] == len(text.encode())
    log = web_server_get(web_server, learner, f"/runs/{run}/log")
    assert log.status_code == 200 and log.content.decode() == text


def web_server_get(server, http, path):
    return http.get(server.url + path, timeout=30)


def test_reattach_gets_only_what_it_lacks(web_server, learner, tab):
    run = tab.run("count")
    wait_for(lambda: "line 5\r\n" in tab.text(run), 30, what="line 5")
    tab.close()
    with tab.lock:
        have = dict(tab.chunks[run])
    last = max(have)
    contiguous = all(s in have for s in range(last + 1))
    assert contiguous
    again = Tab(web_server, learner)
    try:
        reply = again.client.call("attach", {"run": run, "after": last, "end": have[last]["end"]}, timeout=10)
        assert reply["status"] in ("running", "done")
        end = again.wait_end(run, 60)
        assert min(again.chunks[run]) == last + 1
        whole = b"".join(have[s]["data"] for s in sorted(have)).decode() + again.text(run)
        lines = [l for l in whole.replace("\r\n", "\n").split("\n") if l.startswith("line ")]
        assert lines == [f"line {i}" for i in range(1, 31)]
        assert end["status"] == "done"
    finally:
        again.close()


def test_second_tab_sees_the_run_start_and_follows_it(web_server, learner, tab):
    other = Tab(web_server, learner)
    try:
        run = tab.run("count")
        started = wait_for(lambda: [m for m in other.started if m["run"] == run], 10, what="run_started")
        assert started[0]["step"] == "count"
        other.client.call("attach", {"run": run, "after": -1, "end": 0}, timeout=10)
        tab.wait_end(run, 60)
        other.wait_end(run, 60)
        assert other.text(run) == tab.text(run)
    finally:
        other.close()


def test_long_output_head_tail_on_attach(web_server, learner, tab):
    run = tab.run("big")
    end = tab.wait_end(run, 120)
    assert end["status"] == "done"
    late = Tab(web_server, learner)
    try:
        late.client.call("attach", {"run": run, "after": -1, "end": 0}, timeout=10)
        snap = wait_for(lambda: late.snapshots.get(run), 30, what="a snapshot")
        wait_for(lambda: late.ends.get(run), 30, what="the end")
        assert len(snap["head"]) == 1 << 20 and snap["tail"].endswith(b"THE-END\r\n")
        assert snap["omitted"] == snap["end"] - len(snap["head"]) - len(snap["tail"]) > 0
        assert snap["end"] == len(tab.text(run).encode())
    finally:
        late.close()


def test_a_tab_that_stops_reading_is_held_not_buffered(web_server, learner, tab):
    slow = Tab(web_server, learner, ack=False)
    try:
        run = tab.run("big")
        wait_for(lambda: [m for m in slow.started if m["run"] == run], 10, what="run_started")
        slow.client.call("attach", {"run": run, "after": -1, "end": 0}, timeout=10)
        end = tab.wait_end(run, 120)     # the reading tab is not held back by the slow one
        assert end["status"] == "done"
        sent = sum(len(m["data"]) for m in slow.chunks.get(run, {}).values())
        assert 0 < sent <= CLIENT_WINDOW + MAX_CHUNK
        assert run not in slow.ends
        # once it acknowledges, it gets the rest from the store
        top = max(slow.chunks[run].values(), key=lambda m: m["seq"])
        slow.ack = True
        slow.client.emit("ack", {"run": run, "end": top["end"]})
        slow.wait_end(run, 120)
        assert slow.text(run) == tab.text(run)
    finally:
        slow.close()


def test_stop_an_endless_ping(web_server, learner, tab):
    run = tab.run("ping")
    wait_for(lambda: "bytes from 127.0.0.1" in tab.text(run), 30, what="a ping reply")
    assert tab.client.call("stop", {"run": run}, timeout=10) == {"ok": True}
    end = tab.wait_end(run, 30)
    assert end["status"] == "done"          # an endless command is meant to be stopped
    assert "[stopped]" in tab.text(run)


def test_failed_check_has_its_hint(web_server, learner, tab):
    run = tab.run("failing")
    end = tab.wait_end(run, 60)
    assert end["status"] == "failed"
    assert end["checks"] == [{"idx": 0, "kind": "check", "passed": False, "detail": "",
                              "hint": "The file /nonexistent must exist: create it with touch."}]


def test_a_second_run_while_one_runs_is_refused(web_server, learner, tab):
    run = tab.run("ping")
    try:
        reply = tab.client.call("run", {"lab": TEST_LAB, "step": "echo"}, timeout=10)
        assert "still running" in reply["error"]
    finally:
        tab.client.call("stop", {"run": run}, timeout=10)
        tab.wait_end(run, 30)


def _let_the_setup_end() -> bool:
    """As the machine's root, make the file the slow setup waits for, through
    the root of its ``sleep`` (inside the lab host); False if none runs yet."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() != b"sleep\x000.1337\x00":
                    continue
            open(f"/proc/{pid}/root/tmp/go", "w").close()
            return True
        except OSError:   # it ended meanwhile
            continue
    return False


@pytest.fixture(scope="module")
def setup_learner(web_server):
    """A learner of its own for the tests of labs' setups (the last resets its lab host)."""
    http = web_server.learner()
    web_server.open_lab(http)            # the lab host is ready; labs 91 and 92 have not been set up on it
    return http


def test_a_labs_setup_runs_while_the_page_answers(web_server, setup_learner):
    http = setup_learner
    url = f"{web_server.url}/labs/91-slow-setup"
    assert "Setting up this lab" in http.get(url, timeout=10).text
    tab = Tab(web_server, http, lab="91-slow-setup")
    try:
        reply = tab.client.call("run", {"lab": "91-slow-setup", "step": "setup-ran"}, timeout=10)
        assert "setup is still running" in reply["error"], reply
        for _ in range(3):   # the page's health check is not held up by the setup
            assert 'data-state="starting"' in http.get(url + "/host", timeout=10).text
        wait_for(_let_the_setup_end, 60, 0.1, "the setup's sleep")
        web_server.open_lab(http, "91-slow-setup")
        run = tab.run("setup-ran")
        end = tab.wait_end(run)
        assert end["status"] == "done" and "set-up-ran" in tab.text(run), (end, tab.text(run))
    finally:
        tab.close()


def _host_page_if(http, lab_url: str, state: str) -> str | None:
    html = http.get(lab_url + "/host", timeout=10).text
    return html if f'data-state="{state}"' in html else None


def test_a_failed_setup_says_why_and_retry_gives_a_fresh_lab_host(web_server, setup_learner):
    http = setup_learner
    first = http.get(f"{web_server.url}/labs/{TEST_LAB}/host", timeout=10).text
    url = f"{web_server.url}/labs/92-failing-setup"
    http.get(url, timeout=10)
    failed = wait_for(lambda: _host_page_if(http, url, "failed"), 60, 0.2, "the setup to fail")
    assert "This lab could not be set up" in failed and "exit code 3" in failed, failed
    assert "the network this lab needs is not there" in failed, failed
    tab = Tab(web_server, http, lab="92-failing-setup")
    try:
        reply = tab.client.call("run", {"lab": "92-failing-setup", "step": "never"}, timeout=10)
        assert "setup failed" in reply["error"], reply
    finally:
        tab.close()
    # the other lab's page still shows the lab host as ready: only this lab failed
    assert 'data-state="ready"' in http.get(f"{web_server.url}/labs/{TEST_LAB}/host", timeout=10).text
    r = http.post(url + "/host/retry", headers={"X-CSRF-Token": web_server.csrf(http, "92-failing-setup")}, timeout=10)
    assert r.status_code == 200 and 'data-state="starting"' in r.text, r.text
    again = wait_for(lambda: _host_page_if(http, url, "failed"), 60, 0.2, "the setup to fail again, on a fresh lab host")
    host = re.compile(r"<code>([^<]+)</code>")
    web_server.open_lab(http)
    fresh = http.get(f"{web_server.url}/labs/{TEST_LAB}/host", timeout=10).text
    assert host.search(fresh).group(1) != host.search(first).group(1), (first, fresh)
    assert "exit code 3" in again


HOSTILE = [
    ("run", None), ("run", "echo"), ("run", [1, 2]), ("run", {"lab": 1, "step": "echo"}),
    ("run", {"lab": TEST_LAB, "step": "x" * 1000}), ("run", {"lab": "../etc", "step": "echo"}),
    ("run", {"lab": TEST_LAB, "step": "no-such-step"}),
    ("attach", {"run": "'; drop table runs; --", "after": -1, "end": 0}),
    ("attach", {"run": uuid.uuid4().hex, "after": -1, "end": 0}),
    ("attach", {"run": uuid.uuid4().hex, "after": "0", "end": 0}),
    ("attach", {"run": uuid.uuid4().hex, "after": -5, "end": 0}),
    ("attach", {"run": uuid.uuid4().hex, "after": 0, "end": True}),
    ("ack", {"run": uuid.uuid4().hex, "end": 10}), ("ack", {"run": uuid.uuid4().hex, "end": 1e300}),
    ("stop", {"run": uuid.uuid4().hex}), ("stop", {}), ("open", {"lab": "nope"}), ("no-such-event", {"a": 1}),
]


@pytest.mark.parametrize("event,payload", HOSTILE, ids=[f"{e}-{i}" for i, (e, _) in enumerate(HOSTILE)])
def test_hostile_events_get_errors(tab, event, payload):
    args = () if payload is None else (payload,)
    reply = tab.client.call(event, *args, timeout=10) if args else tab.client.call(event, timeout=10)
    assert isinstance(reply, dict) and reply.get("error"), reply
    wait_for(lambda: tab.errors, 10, what="an error event")
    # and the connection still works
    assert "running" in tab.client.call("open", {"lab": TEST_LAB}, timeout=10)


@pytest.mark.slow
def test_learners_flooding_at_once_each_get_their_own_output_whole(web_server, learner, tab):
    """Two learners' floods interleave in the server (relays, store, sends);
    each tab gets exactly its own run's bytes, in order."""
    other_http = web_server.learner()
    web_server.open_lab(other_http)
    other = Tab(web_server, other_http)
    try:
        runs = [(t, t.run("big")) for t in (tab, other)]
        expected = "y" * 5_000_000 + "\r\nTHE-END\r\n"
        for t, run in runs:
            assert t.wait_end(run, 120)["status"] == "done"
            text = t.text(run)
            assert text[text.index("\r\n") + 2:] == expected   # after the command's own line
    finally:
        other.close()


def test_another_learners_run_is_refused(web_server, learner, tab):
    run = tab.run("echo")
    tab.wait_end(run, 30)
    stranger_http = web_server.learner()
    stranger = Tab(web_server, stranger_http)
    try:
        for event, payload in (("attach", {"run": run, "after": -1, "end": 0}), ("stop", {"run": run}),
                               ("ack", {"run": run, "end": 5})):
            reply = stranger.client.call(event, payload, timeout=10)
            assert reply == {"error": f"{event}: you have no run {run}"}
        assert run not in stranger.chunks
        assert web_server_get(web_server, stranger_http, f"/runs/{run}/log").status_code == 404
    finally:
        stranger.close()


@pytest.mark.parametrize("garbage", [
    b"\xc1",                              # a byte MessagePack never uses
    b"\x91" * 100_000 + b"\xc0",          # arrays nested 100,000 deep
    b"\xdb\xff\xff\xff\xff",              # a string that says it is 4 GiB long
    msgpack.packb({"type": 2, "nsp": "/", "data": ["ack", {"run": b"\x00" * 32, "end": -1}]}),
    msgpack.packb({"type": 99, "nsp": "/", "data": None}),
    msgpack.packb([1, 2, 3]),
])
def test_garbage_packets_never_crash_the_server(web_server, learner, garbage):
    """Raw WebSocket frames that are not the Socket.IO packets a client sends."""
    worker = web_server.worker_pid()
    cookie = "; ".join(f"{c.name}={c.value}" for c in learner.cookies)
    ws = websocket.create_connection(f"ws://127.0.0.1:{web_server.port}/socket.io/?EIO=4&transport=websocket",
                                     header=[f"Cookie: {cookie}"], origin=web_server.url, timeout=10)
    try:
        assert ws.recv().startswith("0")                       # Engine.IO open
        ws.send_binary(msgpack.packb({"type": 0, "nsp": "/", "data": None}))   # Socket.IO connect
        ws.recv()
        ws.send_binary(garbage)
    finally:
        ws.close()
    fine = Tab(web_server, learner)   # and everyone else is served as before, by the same worker
    try:
        run = fine.run("echo")
        assert fine.wait_end(run, 30)["status"] == "done"
    finally:
        fine.close()
    assert web_server.worker_pid() == worker


def test_an_oversized_event_drops_only_that_connection(web_server, learner):
    big = Tab(web_server, learner)
    try:
        big.client.emit("run", {"lab": TEST_LAB, "step": "x" * (1 << 20)})
        wait_for(lambda: not big.client.connected, 10, what="the connection to be dropped")
    finally:
        big.close()
    fine = Tab(web_server, learner)
    try:
        run = fine.run("echo")
        assert fine.wait_end(run, 30)["status"] == "done"
    finally:
        fine.close()


@pytest.fixture
def crashing():
    """A server of its own, for the test that kills it."""
    yield from serving(Server(_state_dir("crash"), uid_slot=52, pool_size=1, env={"LABNB_MAX_LAB_HOSTS": "2"}))


@pytest.mark.slow
def test_a_crash_loses_no_output_and_the_run_says_it_was_cut_off(crashing):
    """The server is killed (SIGKILL) mid-run and started again, as an operator would."""
    server = crashing
    http = server.learner()
    server.open_lab(http)
    tab = Tab(server, http)
    run = tab.run("count")
    wait_for(lambda: "line 5\r\n" in tab.text(run), 30, what="line 5")
    seen = tab.text(run)
    server.stop(signal.SIGKILL)
    server.start()      # removes the orphaned lab hosts, marks the run cut off
    again = Tab(server, http)
    try:
        again.client.call("attach", {"run": run, "after": -1, "end": 0}, timeout=10)
        end = again.wait_end(run, 30)
        assert end["status"] == "cut_off"
        assert again.text(run).startswith(seen)
    finally:
        again.close()


def test_the_server_may_hold_many_descriptors(web_server):
    """Each command holds 5 descriptors and each tab a socket: the worker runs
    with the hard limit of open files, not the usual soft 1024."""
    with open(f"/proc/{web_server.worker_pid()}/limits") as f:
        soft, hard = next(line.split()[3:5] for line in f if line.startswith("Max open files"))
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    assert int(soft) == min(1 << 20 if hard == "unlimited" else int(hard), nr_open)


def test_a_kept_alive_connection_idle_for_a_while_is_still_answered(web_server):
    """gunicorn closed kept-alive connections after 2 s idle, in its main loop
    between two waits: a request that came in meanwhile was dropped unanswered
    (the client's RemoteDisconnected), more often the busier the server, as in
    a room of 30 (bench/workshop.py). Connections now stay up for 30 s, longer
    than the gaps between a tab's or a client's requests."""
    conn = http.client.HTTPConnection("127.0.0.1", web_server.port, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 403 and not response.will_close
            time.sleep(5)
    finally:
        conn.close()
