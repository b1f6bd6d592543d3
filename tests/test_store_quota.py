"""The run store's limits against real SQLite files and a real PostgreSQL (tests/pg_support.py), and a
real 300 MB run through a real lab host: a run's cap (head and tail kept), the learner's and the store's
quotas, retention."""
from __future__ import annotations

import time

import pytest

from pg_support import database, pg_database_url, postgres_server  # noqa: F401 (fixtures)
from run_support import Tab
from web_support import wait_for

from webapp.labhost.pool import Pool
from webapp.lab import load_lab
from webapp.learners.registry import READY, Learners
from webapp.runs.manager import HEAD_BYTES, TAIL_BYTES, RunManager
from webapp.store import NOTE_ROOM, Limits, Store

KIB = 1 << 10


def finished_run(store, learner, step, size, lab="bridge"):
    """A run of ``step`` with ``size`` bytes of output, ended 'done'."""
    run = store.start_run(learner, lab, step, "yes | head", None)
    for seq, pos in enumerate(range(0, size, 4 * KIB)):
        store.append_chunk(run, seq, bytes([65 + seq % 26]) * min(4 * KIB, size - pos))
    store.finish_run(run, "done", exit_code=0)
    return run


def test_a_learner_over_quota_loses_replaced_runs_first_then_the_oldest_outputs(database):
    limits = Limits(run=64 * KIB, learner=256 * KIB, total=1 << 30)
    with Store(database, limits) as s:
        old = [finished_run(s, "ada", f"s{i}", 60 * KIB) for i in range(3)]   # 180 KiB
        again = finished_run(s, "ada", "s0", 60 * KIB)                         # replaces old[0]
        bob = finished_run(s, "bob", "s0", 60 * KIB)
        assert s.get_run(old[0]) is not None
        finished_run(s, "ada", "s3", 60 * KIB)                                 # 300 KiB: over
        assert s.get_run(old[0]) is None                                       # the replaced run went
        assert s.get_run(old[1])["stored_bytes"] > 50 * KIB                    # the latest ones stay
        finished_run(s, "ada", "s4", 60 * KIB)
        # nothing replaced is left: the oldest latest run's output made room, the run stays
        gone = s.get_run(old[1])
        assert gone["status"] == "done" and gone["limited_by"] == "learner"
        assert gone["stored_bytes"] < NOTE_ROOM and gone["truncated"] == 60 * KIB
        note = s.output(old[1]).decode()
        assert "removed this run's output (61,440 bytes)" in note and "LABNB_LEARNER_OUTPUT_MB" in note
        assert s.progress("ada", "bridge", ["s0", "s1", "s2", "s3", "s4"]) == (5, 5)
        head, tail, total, omitted = s.output_head_tail(old[1], 1000, 1000)
        assert head == b"" and tail.endswith(b"Run the step again to see it.]\x1b[0m\r\n")
        assert total == 60 * KIB + len(tail) and omitted == 60 * KIB
        assert s.get_run(again)["stored_bytes"] == 60 * KIB
        assert s.get_run(bob)["stored_bytes"] == 60 * KIB                      # another learner's are not touched
        used = sum(s.get_run(r)["stored_bytes"] for r in old[1:] + [again]) + 2 * 60 * KIB
        assert used <= limits.learner

    with Store(database, limits) as s:   # the usage is read again at start
        finished_run(s, "ada", "s5", 60 * KIB)
        assert s.get_run(old[2])["limited_by"] == "learner"
        assert s.get_run(bob)["stored_bytes"] == 60 * KIB


def test_a_running_run_is_never_pruned_its_output_is_counted(database):
    limits = Limits(run=64 * KIB, learner=64 * KIB, total=1 << 30)
    with Store(database, limits) as s:
        first = s.start_run("ada", "lab-a", "s1", "yes", None)
        second = s.start_run("ada", "lab-b", "s1", "yes", None)   # two labs at once
        s.append_chunk(first, 0, b"a" * 40 * KIB)
        s.append_chunk(second, 0, b"b" * 30 * KIB)                  # over: only running runs to take from
        r = s.get_run(second)
        assert (r["stored_bytes"], r["truncated"], r["limited_by"]) == (0, 30 * KIB, "learner")
        assert s.output(first) == b"a" * 40 * KIB
        s.finish_run(second, "done", exit_code=0)
        note = s.output(second).decode()
        assert "30,720 bytes of this run's output were not stored" in note and "LABNB_LEARNER_OUTPUT_MB" in note


def test_the_store_quota_takes_from_the_biggest_user(database):
    limits = Limits(run=64 * KIB, learner=256 * KIB, total=320 * KIB)
    with Store(database, limits) as s:
        small = [finished_run(s, "bob", f"s{i}", 20 * KIB) for i in range(2)]
        big = [finished_run(s, "ada", f"s{i}", 60 * KIB) for i in range(4)]   # 280 KiB in all
        carol = finished_run(s, "carol", "s0", 60 * KIB)                      # 340 KiB: over
        assert s.get_run(big[0])["limited_by"] == "store"
        assert "LABNB_STORE_OUTPUT_MB" in s.output(big[0]).decode()
        assert all(s.get_run(r)["stored_bytes"] == 20 * KIB for r in small)
        assert s.get_run(carol)["stored_bytes"] == 60 * KIB
        total = sum(s.get_run(r)["stored_bytes"] for r in small + big + [carol])
        assert total <= limits.total


def test_retention_deletes_old_runs_and_their_learners(database):
    with Store(database, Limits(retention_days=30)) as s:
        old = finished_run(s, "ada", "s1", 10 * KIB)
        s.record_check(old, 0, "exit_code", True)
        gone_learner = finished_run(s, "bob", "s1", 10 * KIB)
        running = s.start_run("ada", "bridge", "s2", "ping", None)
        month = time.time() + 31 * 86400
        assert s.prune_expired(now=time.time() + 29 * 86400) == 0
        recent = s.start_run("carol", "bridge", "s1", "true", None)
        s.finish_run(recent, "done", exit_code=0)
        assert s.prune_expired(now=month) == 3
        assert s.get_run(old) is None and s.get_run(gone_learner) is None and s.get_run(recent) is None
        assert s.get_run(running)["status"] == "running"
        with s._sql.read() as db:
            learners = {r for (r,) in db.execute("SELECT id FROM learners")}
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            checks = db.execute("SELECT count(*) FROM checks").fetchone()[0]
        assert learners == {"ada"}                      # ada still has a run; bob and carol have none
        assert (chunks, checks) == (0, 0)
    with Store(database, Limits(retention_days=0)) as s:   # 0 keeps them for ever
        assert s.prune_expired(now=time.time() + 3650 * 86400) == 0


FLOOD_LAB = """---
title: Flood
summary: One step that prints 300 MB.
duration: 1m
---
# Flood

## Three hundred megabytes {#flood}

```sh {"timeout": 600}
head -c 300000000 /dev/zero | tr '\\0' y; echo; echo THE-END
```
"""


@pytest.mark.slow
def test_a_300_mb_run_through_a_lab_host_stores_its_head_and_tail_within_the_cap(settings, tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "flood.md").write_text(FLOOD_LAB)
    lab = load_lab(tmp_path / "labs" / "flood.md")
    limits = Limits()                               # the defaults: 16 MiB a run
    store = Store(tmp_path / "runs.db", limits)
    pool = Pool(settings, size=0)
    learners = Learners(pool)
    tabs: dict[str, Tab] = {}
    manager = RunManager(store, learners, {lab.id: lab}, lambda ev, payload, to: tabs[to].event(ev, payload)
                         if to in tabs else None)
    tabs["live"] = live = Tab(manager, "live", "ada")
    try:
        wait_for(lambda: learners.check("ada", lab)["state"] == READY, 120, what="the lab host, the lab set up")
        run = manager.start("ada", lab.id, "flood", sid="live")
        live.follow(run)   # the tab that pressed Run, attached by start()
        wait_for(lambda: live.ended, 600, what="the end of the 300 MB run")

        r = store.get_run(run)
        assert r["status"] == "done" and r["limited_by"] == "run"
        assert r["stored_bytes"] <= limits.run
        stored = store._sql.db.execute("SELECT sum(length(data)) FROM chunks WHERE run = ?", (run,)).fetchone()[0]
        assert stored == r["stored_bytes"]
        total = r["stored_bytes"] + r["truncated"]
        assert total > 300_000_000 and total == live.end

        # the live tab was sent every byte, in order, with no gap
        assert live.jumps == [] and live.seqs == list(range(live.seqs[0], r["last_seq"] + 1))
        assert "truncated" not in live.ended

        head, tail, _, omitted = store.output_head_tail(run, 4 << 20, 4 << 20)
        assert head.startswith(b"\x1b[1;34m$ head -c 300000000") and head.endswith(b"y" * 100_000)
        command_line = head.index(b"\r\n") + 2
        assert head[command_line:] == b"y" * (len(head) - command_line)
        body, _, note = tail.partition(b"\r\nTHE-END\r\n")
        assert len(body) > 3 << 20 and body == b"y" * len(body)
        assert note.decode().endswith("To keep all of it, send it to a file on the lab host.]\x1b[0m\r\n")
        assert f"the {r['truncated']:,} bytes between were not stored" in note.decode()
        assert omitted == total - len(head) - len(tail)
        assert live.tail == tail[-(1 << 20):]      # and the note reached the live tab too

        # a tab that comes back with nothing gets the ends, as the page shows them
        tabs["late"] = late = Tab(manager, "late", "ada")
        late.attach(run)
        wait_for(lambda: late.ended, 30, what="the late tab's end")
        snap = late.snapshot
        assert len(snap["head"]) == HEAD_BYTES and len(snap["tail"]) == TAIL_BYTES
        assert snap["head"] == head[:HEAD_BYTES] and snap["tail"] == tail[-TAIL_BYTES:]
        assert snap["end"] == total and snap["omitted"] == total - HEAD_BYTES - TAIL_BYTES

        # a tab that had seen only the first chunks gets the rest of the head, then the tail
        first = store.chunks_since(run, -1, 3)
        seq, pos, data = first[-1]
        tabs["back"] = back = Tab(manager, "back", "ada")
        back.end = pos + len(data)
        back.attach(run, seq, pos + len(data))
        wait_for(lambda: back.ended, 60, what="the returning tab's end")
        assert len(back.jumps) == 1 and back.jumps[0][1] == r["truncated"]
        assert back.end == total and back.ended["seq"] == r["last_seq"] == back.seqs[-1]
        assert back.tail == tail[-(1 << 20):]
    finally:
        for t in tabs.values():
            t.close()
        manager.close()
        learners.close()
        pool.close()
        store.close()
