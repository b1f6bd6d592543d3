"""The run manager's flow control over a plain lab host (this machine's own
bash: no sandbox, no dockerd, seconds): what a tab is sent, what the store
keeps and what the command may print, against the windows of webapp/stream/flow.py.
The same protocol through the real server and sandbox lab hosts is in
test_web_protocol.py."""
from __future__ import annotations

import threading

import pytest

from run_support import Tab
from web_support import wait_for
from webapp.config import Settings
from webapp.executor.process import READ_SIZE
from webapp.lab import load_lab
from webapp.labhost.pool import Pool
from webapp.learners.registry import READY, Learners
from webapp.runs.manager import CLIENT_WINDOW, MAX_CHUNK, STEP_WINDOW, RunManager
from webapp.store import Limits, Store

SIZE = 10_000_000   # under a run's cap in the store (16 MiB): every byte is kept
FLOOD_LAB = f"""---
title: Flood
summary: A step that prints {SIZE} bytes and a last line, a long wait, and a command that runs until stopped.
duration: 1m
---
# Flood

## Ten megabytes {{#flood}}

```sh {{"timeout": 120}}
head -c {SIZE} /dev/zero | tr '\\0' y; echo; echo THE-END
```

## A long wait {{#wait}}

```sh {{"timeout": 120}}
sleep 100
```

## Until stopped {{#endless}}

```sh {{"endless": true}}
sleep 1000
```
"""


@pytest.fixture
def rig(tmp_path):
    """A RunManager over a plain lab host, its store, and the tabs it emits to."""
    (tmp_path / "flood.md").write_text(FLOOD_LAB)
    lab = load_lab(tmp_path / "flood.md")
    pool = Pool(Settings(backend="plain", state_dir=str(tmp_path / "state")), size=0)
    learners = Learners(pool)
    store = Store(tmp_path / "runs.db", Limits())
    tabs: dict[str, Tab] = {}
    manager = RunManager(store, learners, {lab.id: lab},
                         lambda event, payload, to: tabs[to].event(event, payload) if to in tabs else None)
    try:
        wait_for(lambda: learners.check("ada", lab)["state"] == READY, 30, what="the plain lab host, the lab set up")
        yield manager, store, tabs, lab
    finally:
        for tab in tabs.values():
            tab.close()
        manager.close()
        learners.close()
        pool.close()
        store.close()


def test_a_tab_that_acknowledges_nothing_holds_the_command_then_gets_every_byte(rig):
    manager, store, tabs, lab = rig
    tabs["slow"] = slow = Tab(manager, "slow", "ada")
    run = manager.start("ada", lab.id, "flood", sid="slow")
    wait_for(lambda: slow.end >= CLIENT_WINDOW // 2, 30, what="the first of the output")
    threading.Event().wait(1.0)   # time for more, were it not held
    assert slow.end <= CLIENT_WINDOW + MAX_CHUNK, slow.end       # the tab's window
    stored = store.get_run(run)["stored_bytes"]
    assert stored <= STEP_WINDOW + READ_SIZE + 4096, stored      # the command's window (and the $ line)
    assert store.get_run(run)["status"] == "running"
    slow.follow(run)              # it acknowledges from now on
    wait_for(lambda: slow.ended, 60, what="the end of the run")
    assert slow.ended["status"] == "done" and not slow.jumps
    assert slow.end == store.get_run(run)["stored_bytes"] > SIZE
    assert slow.tail.endswith(b"THE-END\r\n")


def test_a_tab_that_stops_reading_does_not_hold_one_that_reads(rig):
    manager, store, tabs, lab = rig
    tabs["fast"] = fast = Tab(manager, "fast", "ada")
    tabs["slow"] = slow = Tab(manager, "slow", "ada")
    run = manager.start("ada", lab.id, "flood", sid="fast")
    fast.follow(run)
    manager.attach("slow", "ada", run, -1, 0)          # attached, never acknowledging
    wait_for(lambda: fast.ended, 60, what="the fast tab to get the whole run")
    assert fast.ended["status"] == "done" and fast.tail.endswith(b"THE-END\r\n")
    assert slow.end <= CLIENT_WINDOW + MAX_CHUNK and not slow.ended
    slow.follow(run)                                   # it reads again: the rest from the store
    wait_for(lambda: slow.ended, 60, what="the slow tab to catch up")
    assert slow.end == fast.end and slow.seqs == fast.seqs


def test_a_run_waiting_for_its_stop_is_not_work(rig):
    """A workshop's idle and gone ends wait for a learner's running step (a
    long job is work), but not for an endless one left running (a ping in a
    laptop that was closed)."""
    manager, _store, _tabs, lab = rig
    for step, busy in (("wait", True), ("endless", False)):
        run = manager.start("ada", lab.id, step)
        wait_for(lambda: manager.live[run].step_run.running and manager.live[run].step_run._current, 10,
                 what="the command to start")
        assert manager.busy("ada") is busy and manager.is_live(run)
        manager.stop("ada", run)
        wait_for(lambda: not manager.is_live(run), 30, what="the run to end")
    assert not manager.busy("ada")
