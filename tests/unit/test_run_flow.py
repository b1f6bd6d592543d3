"""The run manager's flow control through the Socket.IO events (webapp/runs/manager.py): a tab that does not
acknowledge is held at its window and not buffered for, acknowledging resumes it from the store, a tab
that comes back gets only what it lacks (or a long output's head and tail), and the command reads on only as
far as the furthest tab. In process, on a fake lab host; the slow tier's tests/test_web_protocol.py says the
same against the real server."""
from __future__ import annotations

import pytest

from apps import Tab, services

from webapp.runs.manager import CLIENT_WINDOW, HEAD_BYTES, MAX_CHUNK, STEP_WINDOW, TAIL_BYTES

BIG = b"y" * 3_000_000 + b"\r\nTHE-END\r\n"   # what step "big" prints


def sent(tab: Tab, run: str) -> int:
    return sum(len(m["data"]) for m in tab.chunks.get(run, {}).values())


def test_a_tab_that_does_not_acknowledge_is_held_at_its_window(app, http, tab):
    slow = Tab(app, http, ack=False)
    try:
        run = tab.run("big")
        slow.wait(lambda: slow.named("run_started"), "run_started")
        slow.call("attach", {"run": run, "after": -1, "end": 0})
        assert tab.wait_end(run)["status"] == "done"   # the reading tab is not held back by the other
        assert tab.text(run).endswith(BIG.decode())
        slow.take()
        assert 0 < sent(slow, run) <= CLIENT_WINDOW + MAX_CHUNK and run not in slow.ends
        # once it acknowledges, it gets the rest from the store
        top = max(slow.chunks[run].values(), key=lambda m: m["seq"])
        slow.ack = True
        slow.send("ack", {"run": run, "end": top["end"]})
        slow.wait_end(run)
        assert slow.text(run) == tab.text(run)
    finally:
        slow.close()


def test_the_command_reads_on_only_as_far_as_the_furthest_tab(app, http):
    """With its one tab not acknowledging, the command is held by the kernel once it has printed its window
    (the server's own lines not counted), and the run goes on; an acknowledgement lets it end."""
    tab = Tab(app, http, ack=False)
    try:
        run = tab.run("big")
        live = services(app).runs.live[run]
        tab.wait(lambda: live.step_bytes(live.pos) >= STEP_WINDOW, "the command's window to be stored")
        assert live.step_bytes(live.pos) == STEP_WINDOW and services(app).runs.is_live(run)
        assert 0 < sent(tab, run) <= CLIENT_WINDOW + MAX_CHUNK and run not in tab.ends
        tab.ack = True
        top = max(tab.chunks[run].values(), key=lambda m: m["seq"])
        tab.send("ack", {"run": run, "end": top["end"]})
        assert tab.wait_end(run)["status"] == "done"
        assert tab.text(run).endswith(BIG.decode())
    finally:
        tab.close()


def test_a_tab_that_goes_away_holds_nothing_back(app, http):
    tab = Tab(app, http, ack=False)
    run = tab.run("big")
    tab.wait(lambda: tab.chunks.get(run), "the first chunk")
    tab.close()   # the store is the reader now
    again = Tab(app, http)
    try:
        again.wait(lambda: not services(app).runs.is_live(run), "the run to end with no tab reading it")
        again.call("attach", {"run": run, "after": -1, "end": 0})
        assert again.wait_end(run)["status"] == "done"
    finally:
        again.close()


def test_reattach_gets_only_what_it_lacks(app, http, tab):
    run = tab.run("count")
    tab.wait(lambda: "line 2\r\n" in tab.text(run), "line 2")
    tab.close()
    # what the tab had taken in when it went: up to the chunk with line 2
    last = next(s for s in sorted(tab.chunks[run]) if b"line 2" in tab.chunks[run][s]["data"])
    have = {s: m for s, m in tab.chunks[run].items() if s <= last}
    assert sorted(have) == list(range(last + 1))
    again = Tab(app, http)
    try:
        assert again.call("attach", {"run": run, "after": last, "end": have[last]["end"]})["status"] in (
            "running", "done")
        end = again.wait_end(run)
        assert min(again.chunks[run]) == last + 1 and end["status"] == "done"
        first = again.chunks[run][last + 1]
        assert first["end"] - len(first["data"]) == have[last]["end"]
        whole = b"".join(have[s]["data"] for s in sorted(have)).decode() + again.text(run)
        assert [l for l in whole.split("\r\n") if l.startswith("line ")] == [f"line {i}" for i in range(1, 6)]
    finally:
        again.close()


def test_attach_to_a_long_output_sends_its_head_and_tail(app, http, tab):
    run = tab.run("big")
    assert tab.wait_end(run)["status"] == "done"
    late = Tab(app, http)
    try:
        assert late.call("attach", {"run": run, "after": -1, "end": 0}) == {"status": "done"}
        late.wait_end(run)
        snap = late.snapshots[run]
        assert len(snap["head"]) == HEAD_BYTES and len(snap["tail"]) == TAIL_BYTES
        assert snap["tail"].endswith(b"THE-END\r\n")
        assert snap["omitted"] == snap["end"] - len(snap["head"]) - len(snap["tail"]) > 0
        assert snap["end"] == len(tab.text(run).encode()) and snap["seq"] == late.ends[run]["seq"]
        assert run not in late.chunks   # nothing after the snapshot: the run had ended
    finally:
        late.close()


def test_attach_after_everything_sends_only_the_end(app, http, tab):
    run = tab.run("echo")
    end = tab.wait_end(run)
    again = Tab(app, http)
    try:
        again.call("attach", {"run": run, "after": end["seq"], "end": tab.chunks[run][end["seq"]]["end"]})
        assert again.wait(lambda: again.ends.get(run), "the end") == end and run not in again.chunks
    finally:
        again.close()
