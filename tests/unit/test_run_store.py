"""The run store through its public face (``webapp.store``: Store, Limits, is_run_id, step_state), on a
temporary SQLite file: what a run records, its output's ends, the limits, retention, steps' states, rooms,
a cluster's nodes, placements and shared values. tests/test_store_units.py runs these tests again on a real
PostgreSQL. (tests/test_store.py and tests/test_store_quota.py hold the rest: migrations, a SIGKILLed
writer, quotas; tests/test_store_cluster.py: two nodes on one PostgreSQL.)"""
from __future__ import annotations

import time

import pytest

from webapp.config import Settings
from webapp.errors import ConfigError
from webapp.store import Limits, Store, is_run_id, open_store, step_state

KIB = 1024
DAY = 86400


@pytest.fixture
def database(tmp_path) -> str:
    """Where a test's own store is (tests/test_store_units.py: a PostgreSQL database)."""
    return str(tmp_path / "runs.db")


def run_of(store, step="s1", learner="ada", lab="bridge", command="ip -br addr"):
    return store.start_run(learner, lab, step, command, "lh-1")


# -- a run's record ---------------------------------------------------------------------------

def test_a_started_run_is_recorded_as_running_with_what_it_runs(store):
    run = store.start_run("ada", "bridge", "s1", "ip -br addr", None)
    r = store.get_run(run)
    assert is_run_id(run) and r["id"] == run
    assert (r["learner"], r["lab"], r["step"], r["command"], r["lab_host"]) == ("ada", "bridge", "s1", "ip -br addr",
                                                                                None)
    assert (r["status"], r["ended"], r["exit_code"], r["stored_bytes"], r["truncated"], r["last_seq"]) == (
        "running", None, None, 0, 0, None)
    assert r["checks"] == [] and r["limited_by"] is None and r["started"] <= time.time()


def test_every_run_gets_its_own_id(store):
    assert len({run_of(store) for _ in range(20)}) == 20


def test_a_run_may_have_an_empty_command_but_not_an_empty_lab(store):
    assert store.get_run(store.start_run("ada", "bridge", "s1", "", None))["command"] == ""
    with pytest.raises(ValueError, match="lab: must not be empty"):
        store.start_run("ada", "", "s1", "true", None)


@pytest.mark.parametrize("field, args", [
    ("learner", ("a\0b", "bridge", "s1", "true", None)),
    ("command", ("ada", "bridge", "s1", "echo \0", None)),
    ("lab_host", ("ada", "bridge", "s1", "true", "")),
    ("lab", ("ada", 7, "s1", "true", None)),
])
def test_a_run_refuses_bad_text_and_names_the_field(store, field, args):
    with pytest.raises(ValueError, match=f"^{field}: "):
        store.start_run(*args)


def test_an_unknown_run_is_none(store):
    assert store.get_run("f" * 32) is None


@pytest.mark.parametrize("status", ["done", "failed", "interrupted", "timed_out"])
def test_a_run_ends_as_any_finished_status(store, status):
    run = run_of(store)
    assert store.finish_run(run, status, exit_code=None, signal=9 if status == "interrupted" else None)
    r = store.get_run(run)
    assert r["status"] == status and r["ended"] >= r["started"] and r["duration"] >= 0


@pytest.mark.parametrize("status", ["running", "cut_off", "error", "DONE", ""])
def test_a_run_cannot_end_as_what_is_not_a_finished_status(store, status):
    with pytest.raises(ValueError, match="status: expected one of done, failed, interrupted, timed_out"):
        store.finish_run(run_of(store), status)


def test_the_exit_code_and_signal_are_checked_integers(store):
    run = run_of(store)
    with pytest.raises(ValueError, match="exit_code: expected an integer, got bool"):
        store.finish_run(run, "done", exit_code=True)
    with pytest.raises(ValueError, match="signal: must be >= 0"):
        store.finish_run(run, "failed", signal=-9)
    assert store.finish_run(run, "failed", exit_code=-1, signal=15)
    assert (store.get_run(run)["exit_code"], store.get_run(run)["signal"]) == (-1, 15)


def test_checks_come_back_in_their_order_whatever_order_they_were_recorded(store):
    run = run_of(store)
    store.record_check(run, 2, "output", False, "look at eth0", "no match")
    store.record_check(run, 0, "exit_code", True)
    store.record_check(run, 1, "check", True, None, "")
    assert [(c["idx"], c["kind"], c["passed"], c["hint"], c["detail"]) for c in store.get_run(run)["checks"]] == [
        (0, "exit_code", True, None, None), (1, "check", True, None, ""), (2, "output", False, "look at eth0",
                                                                            "no match")]


def test_a_check_refuses_a_negative_index_and_nul_in_its_hint(store):
    run = run_of(store)
    with pytest.raises(ValueError, match="idx: must be >= 0"):
        store.record_check(run, -1, "output", True)
    with pytest.raises(ValueError, match="hint: contains a NUL character"):
        store.record_check(run, 0, "output", False, "a\0b")


def test_mark_cut_off_ends_every_running_run_and_says_how_many(store):
    running = [run_of(store, f"s{i}") for i in range(3)]
    done = run_of(store, "s9")
    store.finish_run(done, "done", exit_code=0)
    assert store.mark_cut_off() == 3
    assert {store.get_run(r)["status"] for r in running} == {"cut_off"}
    assert store.get_run(done)["status"] == "done"


# -- output --------------------------------------------------------------------------------------

def test_a_run_without_output_has_none(store):
    run = run_of(store)
    assert store.output(run) == b"" and store.chunks_since(run) == []
    assert store.output_head_tail(run, 100, 100) == (b"", b"", 0, 0)


def test_chunks_since_takes_a_limit_and_refuses_a_position_before_the_start(store):
    run = run_of(store)
    for seq in range(5):
        store.append_chunk(run, seq, b"%d" % seq)
    assert store.chunks_since(run, -1, limit=0) == []
    assert [seq for seq, _, _ in store.chunks_since(run, 1, limit=2)] == [2, 3]
    with pytest.raises(ValueError, match="after_seq: must be >= -1"):
        store.chunks_since(run, -2)


def test_output_may_be_bytes_bytearray_or_memoryview(store):
    run = run_of(store)
    store.append_chunk(run, 0, b"a")
    store.append_chunk(run, 1, bytearray(b"b"))
    store.append_chunk(run, 2, memoryview(b"c"))
    assert store.output(run) == b"abc"


def test_output_of_an_unknown_run_is_a_lookup_error(store):
    with pytest.raises(LookupError, match="no such run"):
        store.append_chunk("e" * 32, 0, b"x")
    with pytest.raises(LookupError, match="no such run"):
        store.output_head_tail("e" * 32, 10, 10)


def test_a_short_output_is_all_head(store):
    run = run_of(store)
    store.append_chunk(run, 0, b"hello ")
    store.append_chunk(run, 1, b"world")
    assert store.output_head_tail(run, 6, 5) == (b"hello world", b"", 11, 0)   # ends that meet: no seam


def test_a_long_output_shows_its_ends_and_counts_the_middle(store):
    run = run_of(store)
    data = bytes(range(256)) * 40
    for seq in range(0, len(data), 1000):
        store.append_chunk(run, seq // 1000, data[seq:seq + 1000])
    head, tail, total, omitted = store.output_head_tail(run, 1500, 700)
    assert (head, tail, total) == (data[:1500], data[-700:], len(data))
    assert len(head) + omitted + len(tail) == total


def test_head_only_when_no_tail_is_asked(store):
    run = run_of(store)
    for seq in range(10):
        store.append_chunk(run, seq, b"x" * 100)
    head, tail, total, omitted = store.output_head_tail(run, 250, 0)
    assert (len(head), tail, total, omitted) == (250, b"", 1000, 750)


# -- limits ----------------------------------------------------------------------------------------

def test_limits_from_settings_are_mib():
    limits = Limits.from_settings(Settings(run_output_mb=2, learner_output_mb=8, store_output_mb=16,
                                           retention_days=7))
    assert limits == Limits(2 << 20, 8 << 20, 16 << 20, 7)


def test_a_run_cap_below_two_kib_is_refused_and_equal_limits_are_fine():
    with pytest.raises(ValueError, match="LABNB_RUN_OUTPUT_MB: 2047 bytes is too small a cap for a run"):
        Limits(run=2047, learner=1 << 20, total=1 << 20)
    Limits(run=2048, learner=2048, total=2048)


def test_a_limit_smaller_than_the_one_it_holds_says_both_in_bytes_when_not_whole_mib():
    with pytest.raises(ValueError, match="LABNB_STORE_OUTPUT_MB: 3,000 bytes is less than 4,096 bytes"):
        Limits(run=4096, learner=4096, total=3000)


def test_a_run_under_its_cap_is_not_limited(database):
    with Store(database, Limits(run=8 * KIB, learner=1 << 20, total=1 << 20)) as s:
        run = run_of(s)
        s.append_chunk(run, 0, b"x" * 4 * KIB)
        s.finish_run(run, "done", exit_code=0)
        r = s.get_run(run)
        assert (r["limited_by"], r["truncated"], s.output(run)) == (None, 0, b"x" * 4 * KIB)


def test_the_note_of_a_cut_run_starts_a_line_of_its_own(database):
    with Store(database, Limits(run=4 * KIB, learner=1 << 20, total=1 << 20)) as s:
        run = run_of(s)
        for seq in range(8):
            s.append_chunk(run, seq, b"y" * 1000)   # no line end: the note must not follow on its line
        s.finish_run(run, "done", exit_code=0)
        last = s.chunks_since(run)[-1][2]
        assert last.startswith(b"\r\n\x1b[2m[labnb kept about the first and the last")
        assert s.get_run(run)["limited_by"] == "run"


def test_a_run_over_the_learners_quota_stores_nothing_more_and_says_why_at_its_end(database):
    with Store(database, Limits(run=8 * KIB, learner=8 * KIB, total=1 << 20)) as s:
        run = run_of(s)
        s.append_chunk(run, 0, b"a" * 6 * KIB)
        other = run_of(s, "s2")
        s.append_chunk(other, 0, b"b" * 4 * KIB)
        s.finish_run(other, "done", exit_code=0)
        r = s.get_run(other)
        assert (r["limited_by"], r["truncated"]) == ("learner", 4 * KIB)
        assert b"4,096 bytes of this run's output were not stored" in s.output(other)
        assert b"Tell the instructor" not in s.output(other)


# -- retention ----------------------------------------------------------------------------------------

def test_retention_keeps_runs_that_ended_within_it(database):
    with Store(database, Limits(retention_days=2)) as s:
        run = run_of(s)
        s.finish_run(run, "done", exit_code=0)
        assert s.prune_expired(now=time.time() + 1.9 * DAY) == 0 and s.get_run(run) is not None
        assert s.prune_expired(now=time.time() + 2.1 * DAY) == 1 and s.get_run(run) is None


def test_retention_deletes_runs_cut_off_by_a_restart_too(database):
    with Store(database, Limits(retention_days=1)) as s:
        run = run_of(s)
        s.mark_cut_off()
        assert s.prune_expired(now=time.time() + 2 * DAY) == 1 and s.get_run(run) is None


def test_retention_deletes_more_runs_than_one_batch(database):
    with Store(database, Limits(retention_days=1)) as s:
        runs = [run_of(s, f"s{i}") for i in range(150)]
        for run in runs:
            s.finish_run(run, "done", exit_code=0)
        assert s.prune_expired(now=time.time() + 2 * DAY) == 150
        assert all(s.get_run(r) is None for r in runs[::37])


def test_retention_forgets_a_learners_usage_with_their_runs(database):
    """Once a learner's old runs are gone, their quota is theirs again."""
    limits = Limits(run=8 * KIB, learner=8 * KIB, total=1 << 20, retention_days=1)
    with Store(database, limits) as s:
        old = run_of(s)
        s.append_chunk(old, 0, b"o" * 6 * KIB)
        s.finish_run(old, "done", exit_code=0)
        s.prune_expired(now=time.time() + 2 * DAY)
        new = run_of(s, "s2")
        s.append_chunk(new, 0, b"n" * 6 * KIB)
        assert s.get_run(new)["stored_bytes"] == 6 * KIB


# -- steps' states and progress --------------------------------------------------------------------------

def passed(flag):
    return {"idx": 0, "kind": "output", "passed": flag, "hint": None, "detail": None}


@pytest.mark.parametrize("run, state", [
    (None, "not_started"),
    ({"status": "running", "checks": []}, "running"),
    ({"status": "running", "checks": [passed(False)]}, "running"),
    ({"status": "done", "checks": []}, "passed"),
    ({"status": "done", "checks": [passed(True), passed(True)]}, "passed"),
    ({"status": "done", "checks": [passed(True), passed(False)]}, "failed"),
    ({"status": "failed", "checks": [passed(True)]}, "failed"),
    ({"status": "cut_off", "checks": []}, "failed"),
    ({"status": "interrupted", "checks": []}, "failed"),
])
def test_step_state(run, state):
    assert step_state(run) == state


def test_progress_counts_a_step_by_its_latest_run_not_its_best(store):
    good = run_of(store, "s1")
    store.finish_run(good, "done", exit_code=0)
    worse = run_of(store, "s1")
    store.finish_run(worse, "failed", exit_code=1)
    assert store.progress("ada", "bridge", ["s1"]) == (0, 1)


def test_the_latest_runs_of_learners_whose_names_need_quoting(store):
    odd = 'o"brien\'s, [1]'
    run = run_of(store, learner=odd)
    assert [r["id"] for r in store.latest_runs(["bridge"], [odd, "nobody"])] == [run]
    assert store.latest_runs([], [odd]) == []
    with pytest.raises(ValueError, match="lab: must not be empty"):
        store.latest_runs([""], [odd])


# -- rooms -------------------------------------------------------------------------------------------

def test_a_room_needs_a_mark(store):
    with pytest.raises(ValueError, match="mark: must not be empty"):
        store.save_room("", "{}")
    with pytest.raises(ValueError, match="mark: longer than 200 characters"):
        store.room("m" * 201)


def test_rooms_are_kept_apart(store):
    store.save_room("a", '{"n": 1}')
    store.save_room("b", '{"n": 2}')
    assert (store.room("a"), store.room("b"), store.room("c")) == ('{"n": 1}', '{"n": 2}', None)


def test_a_database_url_that_is_not_postgresqls_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="LABNB_DATABASE_URL: 'mysql' is not a PostgreSQL address"):
        open_store(Settings(state_dir=str(tmp_path), database_url="mysql://u:secret@h/db"))
    assert list(tmp_path.iterdir()) == []


# -- a cluster's nodes, placements and shared values; a room's change ----------------------------------

def test_mark_cut_off_by_a_prefix_cuts_only_that_nodes_lab_hosts_runs(store):
    mine = [store.start_run("ada", "bridge", "s1", "yes", f"lh-a-{i}") for i in range(2)]
    others = store.start_run("bob", "bridge", "s1", "yes", "lh-ab-1")   # node "ab": not a prefix of "a"'s
    nowhere = store.start_run("eve", "bridge", "s1", "yes", None)
    tricky = store.start_run("eve", "bridge", "s2", "yes", "lh-a%-1")
    store.append_chunk(mine[0], 0, b"out\n")
    assert store.mark_cut_off("lh-a-") == 2
    assert [store.get_run(r)["status"] for r in mine] == ["cut_off", "cut_off"]
    assert [store.get_run(r)["status"] for r in (others, nowhere, tricky)] == ["running"] * 3
    assert store.mark_cut_off("lh-a%-") == 1 and store.mark_cut_off("lh-a-") == 0
    with pytest.raises(ValueError, match="lab_host_prefix: must not be empty"):
        store.mark_cut_off("")
    assert store.mark_cut_off() == 2


def test_room_tx_reads_and_saves_a_rooms_state_in_one_transaction(store):
    with store.room_tx("m1") as room:
        assert room.state is None               # none yet
    assert store.room("m1") is None
    with store.room_tx("m1") as room:
        room.state = '{"seated": 1}'
    with store.room_tx("m1") as room:
        assert room.state == '{"seated": 1}'    # read, not changed: not saved again
    assert store.room("m1") == '{"seated": 1}'
    with pytest.raises(RuntimeError), store.room_tx("m1") as room:
        room.state = '{"seated": 2}'
        raise RuntimeError("the change failed half-way")
    assert store.room("m1") == '{"seated": 1}'  # nothing of it saved
    with pytest.raises(ValueError, match="state: expected text"), store.room_tx("m1") as room:
        room.state = None
    store.save_room("m1", "{}")
    with store.room_tx("m1") as room:
        assert room.state == "{}"


def test_nodes_beat_and_keep_their_state(store):
    assert store.nodes() == []
    store.node_beat("a", "10.0.0.1:8000", "10.0.0.1:8001", "sha256:1", {"free": 3})
    store.node_beat("b", "10.0.0.2:8000", "", "sha256:1", {})
    store.set_node_state("a", "draining")
    before = time.time()
    store.node_beat("a", "10.0.0.9:8000", "10.0.0.9:8001", "sha256:2", {"free": 1, "lab_hosts": ["lh-a-1"]})
    a, b = store.nodes()
    assert (a["name"], a["address"], a["agent"], a["state"], a["image_id"], a["facts"]) == (
        "a", "10.0.0.9:8000", "10.0.0.9:8001", "draining", "sha256:2", {"free": 1, "lab_hosts": ["lh-a-1"]})
    assert a["heartbeat"] >= before and (b["name"], b["state"]) == ("b", "up")
    with pytest.raises(ValueError, match="state: expected one of up, draining, down"):
        store.set_node_state("a", "gone")
    with pytest.raises(LookupError, match="node c: no such node"):
        store.set_node_state("c", "down")
    with pytest.raises(ValueError, match="name: must not be empty"):
        store.node_beat("", "x", "", "", {})


def test_placements_say_where_a_learners_lab_host_is_and_lose_a_dead_nodes(store):
    assert store.placement("ada") is None
    store.place_learner("ada", "a", None, "starting")
    store.place_learner("ada", "a", "lh-a-1", "ready")
    store.place_learner("bob", "a", "lh-a-2", "ready")
    store.place_learner("eve", "b", "lh-b-1", "ready")
    store.place_learner("zoe", "a", None, "failed", "no lab host could be made")
    ada = store.placement("ada")
    assert {k: ada[k] for k in ("learner", "node", "lab_host", "state", "note")} == {
        "learner": "ada", "node": "a", "lab_host": "lh-a-1", "state": "ready", "note": ""}
    assert ada["since"] <= time.time()
    assert [p["learner"] for p in store.placements("a")] == ["ada", "bob", "zoe"]
    assert [p["learner"] for p in store.placements()] == ["ada", "bob", "eve", "zoe"]
    assert store.lose_node("a", "node a stopped answering") == ["ada", "bob", "zoe"]
    assert store.lose_node("a", "again") == []                   # lost once
    assert store.placement("bob")["state"] == "lost" and store.placement("bob")["note"] == "node a stopped answering"
    assert store.placement("eve")["state"] == "ready"
    store.place_learner("bob", "b", "lh-b-2", "ready")            # moved
    assert [p["learner"] for p in store.placements("b")] == ["bob", "eve"]
    with pytest.raises(ValueError, match="state: expected one of starting, ready, failed, lost"):
        store.place_learner("ada", "a", None, "moving")


def test_a_shared_value_is_the_first_ones(store):
    made = []

    def make(value):
        return lambda: made.append(value) or value
    assert store.shared_value("secret_key", make("k1")) == "k1"
    assert store.shared_value("secret_key", make("k2")) == "k1"
    assert store.shared_value("token", make("t1")) == "t1"
    assert made == ["k1", "t1"]                                   # made only when absent


# -- PostgreSQL's reading of the concerns' SQL and the schema (no server needed) --------------------------

def test_placeholders_are_translated_outside_quotes_and_percent_signs_kept():
    from webapp.store.postgres import translate
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x?%' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x?%%' AND d = %s")
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_the_schema_is_read_with_postgresqls_types_and_runs_get_a_rowid():
    from webapp.store import schema
    from webapp.store.postgres import ddl
    first = " ".join(ddl(s) for s in schema.statements(schema.MIGRATIONS[0], "postgres"))
    assert "REAL" not in first.replace("DOUBLE PRECISION", "") and " INTEGER" not in first and "BLOB" not in first
    assert "started      DOUBLE PRECISION NOT NULL" in first and "data BYTEA NOT NULL" in first
    assert "CREATE TABLE runs ( rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE," in first
    assert first.count("rowid") == 1                      # runs only: the concerns order nothing else by it
    assert schema.statements(schema.MIGRATIONS[-1], "sqlite") == []   # the usage rows are PostgreSQL's
