"""The run store against real SQLite files and a real PostgreSQL (tests/pg_support.py), each test that
is not about one database's files on both, including a SIGKILLed writer."""

import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pg_support import database, pg_database_url, postgres_server  # noqa: F401 (fixtures)
from web_support import wait_for
from webapp.config import Settings
from webapp.errors import ConfigError
from webapp.store import NOTE_ROOM, Limits, Store, is_run_id, open_store
from webapp.store import schema
from webapp.store import sqlite as store_sqlite


@pytest.fixture
def store(database):
    with Store(database, Limits()) as s:
        yield s


def execute(store, sql, params=()):
    """A statement of the test's own on the store's database (as another program would), in the
    concerns' SQL."""
    with store._sql.write() as db:
        return db.execute(sql, params).rowcount


def new_run(store, step="s1", learner="ada", lab="bridge"):
    return store.start_run(learner, lab, step, "docker run --rm busybox ifconfig", "lh-1")


def test_files_private_and_wal(tmp_path):
    path = tmp_path / "data" / "runs.db"
    with Store(path) as s:
        s.append_chunk(new_run(s), 0, b"x")  # makes -wal and -shm exist
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    db.close()


def test_a_store_of_an_older_labnb_is_migrated_and_keeps_its_runs(tmp_path):
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    for migration in schema.MIGRATIONS[:2]:   # schema 2: runs had a kind column, always 'step'
        for statement in schema.statements(migration, "sqlite"):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO learners VALUES ('ada', 0)")
    db.execute("INSERT INTO runs (id, learner, lab, step, kind, command, started, status)"
               " VALUES (?, 'ada', 'bridge', 's1', 'step', 'true', ?, 'done')", ("a" * 32, time.time()))
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.get_run("a" * 32)["status"] == "done"
        assert "kind" not in s.get_run("a" * 32)
        s.append_chunk(new_run(s), 0, b"new")
    db = sqlite3.connect(path)
    assert "kind" not in [c[1] for c in db.execute("PRAGMA table_info(runs)")]
    db.close()


def test_a_postgres_store_of_an_older_labnb_is_migrated_and_keeps_its_runs(pg_database_url):
    import psycopg

    from webapp.store.postgres import ddl
    with psycopg.connect(pg_database_url, autocommit=True) as pg:
        for migration in schema.MIGRATIONS[:2]:
            for statement in schema.statements(migration, "postgres"):
                pg.execute(ddl(statement))
        pg.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        pg.execute("INSERT INTO schema_version VALUES (2)")
        pg.execute("INSERT INTO learners VALUES ('ada', 0)")
        pg.execute("INSERT INTO runs (id, learner, lab, step, kind, command, started, status)"
                   " VALUES (%s, 'ada', 'bridge', 's1', 'step', 'true', %s, 'done')", ("a" * 32, time.time()))
    with Store(pg_database_url) as s:
        assert s.get_run("a" * 32)["status"] == "done" and "kind" not in s.get_run("a" * 32)
        later = new_run(s)
        assert [r["id"] for r in s.latest_runs(["bridge"], ["ada"])] == [later]   # ordered after the old one
    with psycopg.connect(pg_database_url) as pg:
        assert pg.execute("SELECT version FROM schema_version").fetchone()[0] == len(schema.MIGRATIONS)


def test_reopen_keeps_schema_and_data(database):
    with Store(database) as s:
        run = new_run(s)
        s.append_chunk(run, 0, b"kept")
    with Store(database) as s:
        assert s.output(run) == b"kept"


def test_newer_schema_refused(database):
    with Store(database) as s:
        if database.startswith("postgresql:"):
            execute(s, "UPDATE schema_version SET version = 99")
        else:
            execute(s, "PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        Store(database)


def test_open_store_picks_the_database_of_the_settings(tmp_path, pg_database_url):
    with open_store(Settings(state_dir=str(tmp_path), store_file="x.sqlite")) as s:
        assert s.path == tmp_path / "x.sqlite" and (tmp_path / "x.sqlite").exists()
    with open_store(Settings(state_dir=str(tmp_path / "none"), database_url=pg_database_url)) as s:
        assert s.path is None and s.get_run("0" * 32) is None and not (tmp_path / "none").exists()


def test_a_database_that_cannot_be_reached_is_named_with_its_setting_not_its_password():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    where = f"LABNB_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}/x"
    with pytest.raises(ConfigError, match=where) as e:
        Store(f"postgresql://labnb:s3cret@127.0.0.1:{port}/x")
    assert "s3cret" not in str(e.value) and "PostgreSQL runs" in str(e.value)


def test_append_and_read_in_order(store):
    run = new_run(store)
    assert is_run_id(run)
    parts = [f"line {i}\r\n".encode() for i in range(50)] + [b"\xe2\x82", b"\xac\x00\xff"]
    for seq, data in enumerate(parts):
        store.append_chunk(run, seq, data)
    assert store.output(run) == b"".join(parts)
    assert [(seq, data) for seq, _, data in store.chunks_since(run)] == list(enumerate(parts))
    ends = [pos + len(data) for _, pos, data in store.chunks_since(run)]
    assert ends == [len(b"".join(parts[: i + 1])) for i in range(len(parts))]
    assert [seq for seq, _, _ in store.chunks_since(run, 49)] == [50, 51]
    assert [(seq, data) for seq, _, data in store.chunks_since(run, 10, limit=2)] == [(11, parts[11]), (12, parts[12])]
    assert store.chunks_since(run, 51) == []
    with pytest.raises(store._sql.IntegrityError):
        store.append_chunk(run, 3, b"again")
    r = store.get_run(run)
    assert (r["status"], r["stored_bytes"], r["truncated"], r["last_seq"]) == (
        "running", len(b"".join(parts)), 0, 51)


def test_finish_and_checks(store):
    run = new_run(store)
    store.record_check(run, 0, "exit_code", True, None, None)
    store.record_check(run, 1, "output", False, "look at eth0", "no 172.17.0.2")
    assert store.finish_run(run, "done", exit_code=0) is True
    assert store.finish_run(run, "interrupted") is False  # stop racing the exit
    r = store.get_run(run)
    assert r["status"] == "done" and r["exit_code"] == 0 and r["duration"] >= 0
    assert [(c["idx"], c["passed"], c["hint"]) for c in r["checks"]] == [
        (0, True, None), (1, False, "look at eth0")]
    with pytest.raises(ValueError, match="cannot take more output"):
        store.append_chunk(run, 0, b"late")
    with pytest.raises(ValueError, match="status"):
        store.finish_run(new_run(store), "running")
    with pytest.raises(LookupError):
        store.finish_run("0" * 32, "done")


def test_hostile_input(store):
    for bad in ["", "x" * 32, "A" * 32, "0" * 31, "0" * 33, "'; DROP TABLE runs; --", None, 7]:
        assert not is_run_id(bad)
        with pytest.raises(ValueError, match="run id"):
            store.chunks_since(bad)
    with pytest.raises(ValueError, match="learner"):
        store.start_run("", "lab", "s", "true", None)
    with pytest.raises(ValueError, match="step"):
        store.start_run("a", "lab", "s" * 1000, "true", None)
    with pytest.raises(ValueError, match="seq"):
        store.append_chunk(new_run(store), -1, b"")
    with pytest.raises(ValueError, match="data"):
        store.append_chunk(new_run(store), 0, "text, not bytes")
    evil = "ada'); DELETE FROM runs; --"
    run = store.start_run(evil, "lab", "s1", "echo '\"; --", None)
    assert store.get_run(run)["learner"] == evil and store.last_runs(evil, "lab")["s1"]["id"] == run


def test_a_run_keeps_its_head_and_tail_and_counts_the_middle(database):
    cap = 64 << 10
    with Store(database, Limits(run=cap, learner=cap, total=cap)) as s:
        run = new_run(s)
        data = bytes(i * 7 % 251 for i in range(1_000_000))
        for seq, pos in enumerate(range(0, len(data), 1000)):
            s.append_chunk(run, seq, data[pos : pos + 1000])
            r = s.get_run(run)
            assert r["stored_bytes"] <= cap - NOTE_ROOM
            assert r["stored_bytes"] + r["truncated"] == pos + 1000 and r["last_seq"] == seq
        rows = s.chunks_since(run)
        for seq, pos, chunk in rows:       # every stored chunk is where it was in the output
            assert chunk == data[pos : pos + len(chunk)] and pos == seq * 1000
        head, tail, total, omitted = s.output_head_tail(run, 20_000, 20_000)
        assert (head, tail, total) == (data[:20_000], data[-20_000:], len(data))
        assert omitted == len(data) - 40_000
        assert r["limited_by"] == "run"
        s.finish_run(run, "done", exit_code=0)
        r = s.get_run(run)
        assert r["stored_bytes"] <= cap
        log = s.output(run)
        assert log.startswith(data[:20_000]) and b"bytes left out here" in log
        note = s.chunks_since(run, r["last_seq"] - 1)[0][2].decode()
        assert f"of this run's {len(data):,} bytes of output" in note and "LABNB_RUN_OUTPUT_MB" in note
        assert f"the {r['truncated']:,} bytes between were not stored" in note


def test_limits_say_what_is_wrong():
    with pytest.raises(ValueError, match="LABNB_LEARNER_OUTPUT_MB: 1 MiB is less than 16 MiB"):
        Limits(run=16 << 20, learner=1 << 20)
    with pytest.raises(ValueError, match="LABNB_STORE_OUTPUT_MB"):
        Limits(total=1 << 20)
    with pytest.raises(ValueError, match="LABNB_RETENTION_DAYS"):
        Limits(retention_days=-1)


def test_head_tail_of_10_mb(store):
    run = new_run(store)
    chunk = 4096
    data = bytes(i * 7 % 251 for i in range(10 * 1024 * 1024 + 123))
    for seq, pos in enumerate(range(0, len(data), chunk)):
        store.append_chunk(run, seq, data[pos : pos + chunk])
    head, tail, total, omitted = store.output_head_tail(run, 100_000, 50_001)
    assert head == data[:100_000] and tail == data[-50_001:]
    assert (total, omitted) == (len(data), len(data) - 150_001)
    assert store.output_head_tail(run, 0, 0) == (b"", b"", len(data), len(data))
    assert store.output_head_tail(run, 1, 4097)[:2] == (data[:1], data[-4097:])
    assert store.output_head_tail(run, 6_000_000, 6_000_000) == (data, b"", len(data), 0)
    assert store.output(run) == data
    assert store.output_head_tail(new_run(store), 10, 10) == (b"", b"", 0, 0)


def test_last_runs_progress_and_delete(store):
    a1 = new_run(store, "s1")
    store.finish_run(a1, "failed", exit_code=1)
    a2 = new_run(store, "s1")
    store.record_check(a2, 0, "exit_code", True)
    store.finish_run(a2, "done", exit_code=0)
    b1 = new_run(store, "s2")
    store.record_check(b1, 0, "output", False, "hint")
    store.finish_run(b1, "done", exit_code=0)
    c1 = new_run(store, "s3")  # still running
    other = new_run(store, "s1", learner="bob")
    store.finish_run(other, "done", exit_code=0)

    assert {k: v["id"] for k, v in store.last_runs("ada", "bridge").items()} == {
        "s1": a2, "s2": b1, "s3": c1}
    assert store.progress("ada", "bridge", ["s1", "s2", "s3", "s4"]) == (1, 4)
    assert store.progress("bob", "bridge", ["s1", "s2"]) == (1, 2)
    assert store.progress("ada", "host", ["s1"]) == (0, 1)


def test_latest_runs_of_a_workshops_members_only(store):
    first, latest = new_run(store, "s1"), new_run(store, "s1")
    bobs = new_run(store, "s2", learner="bob")
    new_run(store, "s1", learner="eve")                 # not a member: another workshop's, say
    new_run(store, "s1", lab="host")                    # not the workshop's lab
    got = {(r["learner"], r["step"]): r["id"] for r in store.latest_runs(["bridge"], ["ada", "bob", "nobody"])}
    assert got == {("ada", "s1"): latest, ("bob", "s2"): bobs} and first not in got.values()
    assert store.latest_runs(["bridge"], []) == []


def test_mark_cut_off(database):
    with Store(database) as s:
        running, done = new_run(s), new_run(s)
        s.finish_run(done, "done", exit_code=0)
    with Store(database) as s:
        assert s.mark_cut_off() == 1
        r = s.get_run(running)
        assert r["status"] == "cut_off" and r["ended"] >= r["started"]
        assert s.get_run(done)["status"] == "done"
        assert s.mark_cut_off() == 0


CHILD = textwrap.dedent(
    """
    import sys
    from webapp.store import Store
    s = Store(sys.argv[1])
    run = s.start_run("ada", "bridge", "s1", "yes", "lh-1")
    print(run, flush=True)
    seq = 0
    while True:
        s.append_chunk(run, seq, b"chunk %d\\n" % seq)
        print(seq, flush=True)  # reported to the "browser" only once stored
        seq += 1
    """
)


def test_sigkill_mid_run_loses_nothing_reported(database):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database], stdout=subprocess.PIPE, text=True
    )
    try:
        run = child.stdout.readline().strip()
        reported = []
        while len(reported) < 300:
            line = child.stdout.readline()
            assert line, "child died early"
            reported.append(int(line))
        child.send_signal(signal.SIGKILL)
        # The pipe may hold more lines the child wrote before it died.
        reported += [int(line) for line in child.stdout.read().split() if line.strip()]
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with Store(database) as s:
        stored = {seq: data for seq, _, data in s.chunks_since(run)}
        for seq in reported:
            assert stored[seq] == b"chunk %d\n" % seq
        assert sorted(stored) == list(range(len(stored)))  # no holes
        assert s.get_run(run)["status"] == "running"
        assert s.mark_cut_off() == 1
        assert s.get_run(run)["status"] == "cut_off"


def test_threads_append_to_different_runs(store):
    runs = [new_run(store, f"s{i}") for i in range(8)]
    errors = []

    def work(run):
        try:
            for seq in range(200):
                store.append_chunk(run, seq, b"%s %d\n" % (run.encode(), seq))
                if seq % 50 == 0:
                    store.chunks_since(run, max(seq - 10, -1))
            store.finish_run(run, "done", exit_code=0)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for run in runs:
        assert store.output(run) == b"".join(b"%s %d\n" % (run.encode(), i) for i in range(200))
        assert store.get_run(run)["status"] == "done"


def test_wal_is_checkpointed_aside_and_truncated_when_quiet(tmp_path, monkeypatch):
    """Commits never run the checkpoint: the store's own thread copies the WAL
    into the database while output floods, and empties it once writes pause."""
    monkeypatch.setattr(store_sqlite, "CHECKPOINT_INTERVAL", 0.2)
    path = tmp_path / "runs.db"
    wal = Path(f"{path}-wal")
    chunk = bytes(range(256)) * 1024
    with Store(path, Limits(run=64 << 20, learner=64 << 20, total=64 << 20)) as s:
        assert s._sql.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        run = new_run(s)
        for seq in range(3 * store_sqlite.CHECKPOINT_BYTES // len(chunk)):
            s.append_chunk(run, seq, chunk)
        # the checkpoints went to the database file while the run wrote
        wait_for(lambda: path.stat().st_size > 2 * store_sqlite.CHECKPOINT_BYTES, 20, what="a checkpoint")
        wait_for(lambda: wal.stat().st_size == 0, 20, what="the WAL truncated")
        total = 3 * store_sqlite.CHECKPOINT_BYTES
        assert s.get_run(run)["stored_bytes"] == total
        assert b"".join(d for _, _, d in s.chunks_since(run, -1, 10_000)) == chunk * (total // len(chunk))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_rooms_state_is_kept_and_replaced(database):
    with Store(database) as s:
        assert s.room("m1") is None
        s.save_room("m1", '{"members": []}')
        s.save_room("m1", '{"members": [1]}')
        s.save_room("m2", "{}")
    with Store(database) as s:   # as after a restart
        assert s.room("m1") == '{"members": [1]}' and s.room("m2") == "{}"


def test_a_room_left_alone_past_the_retention_is_forgotten(database):
    with Store(database) as s:
        s.save_room("old", "{}")
        s.save_room("new", "{}")
        execute(s, "UPDATE rooms SET saved = ? WHERE mark = 'old'", (time.time() - 31 * 86400,))
    with Store(database, Limits(retention_days=30)) as s:
        s.prune_expired()
        assert s.room("old") is None and s.room("new") == "{}"
