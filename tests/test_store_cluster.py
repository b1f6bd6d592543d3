"""Two nodes on one PostgreSQL (tests/pg_support.py): two ``Store`` objects on one database, each with its
own connections, as two labnb nodes have. What one machine got from one process must hold across them:
a room's last place taken once, the quotas, one retention pass at a time, a node's runs cut off alone,
the first node's shared values."""
from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from pg_support import pg_database_url, postgres_server  # noqa: F401 (fixtures)
from webapp.store import Limits, Store
from webapp.store.retention import RETENTION_LOCK

sys.path.insert(0, str(Path(__file__).parent / "unit"))   # apps.py: an app in this process on fake lab hosts

KIB = 1 << 10
DAY = 86400


@pytest.fixture
def nodes(pg_database_url):
    """Two stores on one database: node a's and node b's."""
    return lambda limits=None: (Store(pg_database_url, limits or Limits()), Store(pg_database_url, limits or Limits()))


def race(*targets, times: int = 1):
    """Run each target in ``times`` threads at once, started together; the errors they raised."""
    start, errors = threading.Barrier(len(targets) * times), []

    def run(target):
        start.wait()
        try:
            target()
        except Exception as e:   # reported to the test
            errors.append(e)
    threads = [threading.Thread(target=run, args=(t,)) for t in targets for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a racer never finished"
    return errors


def counts(store):
    """(each learner's stored bytes as counted, as summed from their runs; the store's total as counted)"""
    with store._sql.read() as db:
        counted = dict(db.execute("SELECT id, stored_bytes FROM learners").fetchall())
        summed = {k: int(v) for k, v in db.execute("SELECT learner, sum(stored_bytes) FROM runs GROUP BY learner")}
        total = db.execute("SELECT sum(bytes)::bigint FROM usage").fetchone()[0]
    return counted, {k: summed.get(k, 0) for k in counted}, total


def test_room_tx_lets_one_node_at_a_time_take_the_rooms_last_place(nodes):
    a, b = nodes()
    with a, b:
        a.save_room("room", json.dumps({"capacity": 3, "seated": ["ada", "bob"]}))
        won = []

        def take(store, who):
            def go():
                with store.room_tx("room") as room:
                    state = json.loads(room.state)
                    time.sleep(0.01)                        # a change takes a while: the others must wait
                    if len(state["seated"]) < state["capacity"]:
                        state["seated"].append(who)
                        room.state = json.dumps(state)
                        won.append(who)
            return go
        assert race(*[take(store, f"{name}{i}") for store, name in ((a, "a"), (b, "b")) for i in range(6)]) == []
        assert len(won) == 1
        assert json.loads(b.room("room"))["seated"] == ["ada", "bob", won[0]]

        # a room no node saved yet: made on the first change, once
        def first(store, who):
            def go():
                with store.room_tx("new") as room:
                    seated = json.loads(room.state or "[]")
                    time.sleep(0.01)
                    room.state = json.dumps(seated + [who])
            return go
        assert race(first(a, "x"), first(b, "y"), times=4) == []
        assert sorted(json.loads(a.room("new"))) == sorted(["x", "y"] * 4)


def test_a_learners_quota_holds_across_nodes(nodes):
    limits = Limits(run=64 * KIB, learner=128 * KIB, total=1 << 30)
    a, b = nodes(limits)
    with a, b:
        for store in (a, b):   # finished runs to prune
            for step in ("s1", "s2"):
                run = store.start_run("ada", "bridge", step, "yes", None)
                store.append_chunk(run, 0, b"o" * 30 * KIB)
                store.finish_run(run, "done", exit_code=0)

        def flood(store, lab):
            def go():
                run = store.start_run("ada", lab, "s1", "yes", None)
                for seq in range(40):
                    store.append_chunk(run, seq, b"x" * 4 * KIB)
                store.finish_run(run, "done", exit_code=0)
            return go
        assert race(flood(a, "lab-a"), flood(b, "lab-b"), times=2) == []
        counted, summed, total = counts(a)
        assert counted == summed and total == sum(summed.values())
        assert counted["ada"] <= limits.learner


def test_the_stores_quota_holds_across_nodes_and_takes_from_the_biggest(nodes):
    limits = Limits(run=64 * KIB, learner=256 * KIB, total=512 * KIB)
    a, b = nodes(limits)
    with a, b:
        def learner(store, name):
            def go():
                for step in range(6):
                    run = store.start_run(name, "bridge", f"s{step}", "yes", None)
                    for seq in range(15):
                        store.append_chunk(run, seq, bytes([65 + seq]) * 4 * KIB)
                    store.finish_run(run, "done", exit_code=0)
            return go
        assert race(*[learner(store, f"{store_name}{i}") for store, store_name in ((a, "a"), (b, "b"))
                      for i in range(3)]) == []
        counted, summed, total = counts(b)
        assert counted == summed and total == sum(summed.values())
        assert total <= limits.total
        with a._sql.read() as db:
            limited = db.execute("SELECT count(*) FROM runs WHERE limited_by = 'store'").fetchone()[0]
        assert limited > 0                                   # the limit was met, and finished runs made room


def test_a_store_far_from_its_limit_counts_every_byte_of_both_nodes(nodes):
    a, b = nodes()

    def appends(store, name):
        def go():
            run = store.start_run(name, "bridge", "s1", "yes", None)
            for seq in range(50):
                store.append_chunk(run, seq, b"y" * 1000)
            store.finish_run(run, "done", exit_code=0)
        return go
    with a, b:
        assert race(*[appends(store, f"{n}{i}") for store, n in ((a, "a"), (b, "b")) for i in range(4)]) == []
        counted, summed, total = counts(a)
        assert counted == summed == {f"{n}{i}": 50_000 for n in "ab" for i in range(4)}
        assert total == sum(summed.values())


def test_one_node_at_a_time_prunes_and_nothing_is_counted_twice(nodes):
    limits = Limits(run=64 * KIB, learner=1 << 20, total=1 << 30, retention_days=1)
    a, b = nodes(limits)
    with a, b:
        for i in range(150):
            store = (a, b)[i % 2]
            run = store.start_run(f"l{i % 7}", "bridge", f"s{i}", "true", None)
            store.append_chunk(run, 0, b"z" * 100)
            store.finish_run(run, "done", exit_code=0)
        later = time.time() + 2 * DAY
        with a._sql.one_at_a_time(RETENTION_LOCK) as mine:
            assert mine and b.prune_expired(now=later) == 0    # node a prunes: node b does not
        done = []
        assert race(lambda: done.append(a.prune_expired(now=later)),
                    lambda: done.append(b.prune_expired(now=later))) == []
        while sum(done) < 150:                             # the one that found the lock taken did nothing
            done.append(b.prune_expired(now=later))
        assert sum(done) == 150
        counted, summed, total = counts(a)
        assert counted == {} and total == 0


def test_mark_cut_off_by_a_nodes_prefix_leaves_the_other_nodes_runs_running(nodes):
    a, b = nodes()
    with a, b:
        on_a = a.start_run("ada", "bridge", "s1", "yes", "lh-a-1")
        on_b = [b.start_run(who, "bridge", "s1", "yes", "lh-b-1") for who in ("bob", "eve")]
        a.append_chunk(on_a, 0, b"a\n")
        b.append_chunk(on_b[0], 0, b"b\n")
        b.close()
        with Store(a._sql.url) as b_again:                  # node b starts again: its lab hosts' runs are lost
            assert b_again.mark_cut_off("lh-b-") == 2
            assert [a.get_run(r)["status"] for r in on_b] == ["cut_off", "cut_off"]
        assert a.get_run(on_a)["status"] == "running"
        a.append_chunk(on_a, 1, b"still going\n")          # node a's run goes on
        assert a.output(on_a) == b"a\nstill going\n"


def test_nodes_and_placements_are_seen_by_every_node_and_a_dead_nodes_are_lost(nodes):
    a, b = nodes()
    with a, b:
        a.node_beat("a", "127.0.0.1:8001", "127.0.0.1:9001", "sha256:1", {"free": 4})
        b.node_beat("b", "127.0.0.1:8002", "127.0.0.1:9002", "sha256:1", {"free": 2})
        a.place_learner("ada", "a", "lh-a-1", "ready")
        b.place_learner("bob", "b", "lh-b-1", "ready")
        a.place_learner("eve", "a", "lh-a-2", "starting")
        assert [n["name"] for n in b.nodes()] == ["a", "b"] and b.placement("ada")["node"] == "a"
        b.set_node_state("a", "down")                       # node a stopped beating: b says so
        assert b.lose_node("a", "node a stopped answering") == ["ada", "eve"]
        assert {p["learner"]: p["state"] for p in a.placements()} == {"ada": "lost", "bob": "ready", "eve": "lost"}
        a.node_beat("a", "127.0.0.1:8001", "127.0.0.1:9001", "sha256:1", {"free": 4})
        assert [n["state"] for n in b.nodes()] == ["down", "up"]   # a heartbeat does not undo what b decided

        # two nodes losing a third at once: its learners are handed to one of them
        a.place_learner("zoe", "c", "lh-c-1", "ready")
        lost = []
        assert race(lambda: lost.append(a.lose_node("c", "gone")), lambda: lost.append(b.lose_node("c", "gone"))) == []
        assert sorted(lost) == [[], ["zoe"]]


def test_the_first_nodes_shared_value_wins_a_race(nodes):
    a, b = nodes()
    made = []

    def ask(store, n):
        def go():
            got.append(store.shared_value("secret_key", lambda: made.append(n) or f"key-{n}"))
        return go
    got: list[str] = []
    with a, b:
        assert race(*[ask(store, f"{name}{i}") for store, name in ((a, "a"), (b, "b")) for i in range(8)]) == []
        assert len(set(got)) == 1 and len(got) == 16
        assert got[0] in {f"key-{n}" for n in made}
        assert a.shared_value("secret_key", lambda: "late") == got[0]


def test_appends_finishes_and_retention_on_two_nodes_never_wait_on_each_other_in_a_circle(nodes):
    """Near the store's limit (its exclusive lock), learners' rows, shard rows and runs are taken in one
    order: many writers on both nodes, pruning each other's runs, end without a deadlock."""
    limits = Limits(run=16 * KIB, learner=48 * KIB, total=160 * KIB, retention_days=1)
    a, b = nodes(limits)
    with ExitStack() as stack:
        for store in (a, b):
            stack.enter_context(store)

        def writer(store, name):
            def go():
                for step in range(8):
                    run = store.start_run(name, "bridge", f"s{step % 3}", "yes", None)
                    for seq in range(6):
                        store.append_chunk(run, seq, b"w" * 3 * KIB)
                    store.finish_run(run, "done", exit_code=0)
                    store.prune_expired(now=time.time() + 2 * DAY if step == 5 else None)
            return go
        assert race(*[writer(store, f"{n}{i}") for store, n in ((a, "a"), (b, "b")) for i in range(4)]) == []
        counted, summed, total = counts(a)
        assert counted == summed and total == sum(summed.values()) and total <= limits.total


def test_a_server_with_a_database_url_keeps_its_runs_in_postgresql(tmp_path, pg_database_url):
    """The composition root opens the store the settings say (``open_store``): a run of a learner of an app
    built with LABNB_DATABASE_URL is in PostgreSQL, and no SQLite file is made in its state dir."""
    from apps import Tab, browser, ready, serving

    with serving(tmp_path / "state", database_url=pg_database_url) as app:
        http = browser(app)
        ready(http)
        tab = Tab(app, http)
        try:
            run = tab.run("echo")
            tab.wait_end(run)
        finally:
            tab.close()
    assert not list((tmp_path / "state").rglob("*.sqlite*"))
    with Store(pg_database_url) as other_node:
        r = other_node.get_run(run)
        assert r["status"] == "done" and other_node.output(run).decode() == tab.text(run) != ""


def test_a_write_after_the_database_dropped_a_nodes_connections_does_not_fail(pg_database_url):
    """A restart of PostgreSQL (here: every connection of the node ended by the server) leaves the pool's
    idle connections dead: the next write finds it out at its BEGIN and runs on a new connection."""
    import psycopg

    with Store(pg_database_url) as node:
        run = node.start_run("ada", "bridge", "s1", "yes", None)
        errors = race(*[lambda: node.get_run(run)] * 4)          # a few connections in the pool
        assert errors == []
        with psycopg.connect(pg_database_url, autocommit=True) as admin:
            ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
                                  " application_name = 'labnb' AND datname = current_database()").fetchone()[0]
        assert ended >= 1
        node.append_chunk(run, 0, b"after\n")
        assert node.finish_run(run, "done", exit_code=0) and node.output(run) == b"after\n"
