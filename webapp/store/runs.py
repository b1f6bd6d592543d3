"""A run's record: started as 'running' before its command, its checks, its
end (or, at startup, 'cut_off'), and the runs a page, a grid or the progress
count read."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ..status import FINISHED
from . import fields
from .limits import NOTE_ROOM
from .quota import Quota
from .schema import Database
from .steps import PASSED, step_state

_RUN_COLUMNS = (
    "id, learner, lab, step, command, lab_host, started, ended, exit_code,"
    " signal, status, duration, stored_bytes, truncated, last_seq, limited_by"
)


class Runs:
    """Mixed into Store, with Output (whose ``_end_note`` ends a run's output)."""

    _sql: Database
    _quota: Quota

    def start_run(self, learner: str, lab: str, step: str, command: str, lab_host: str | None) -> str:
        """Record a run as 'running' before its command starts; returns its id."""
        learner, lab, step = (fields.text(f, v) for f, v in (("learner", learner), ("lab", lab), ("step", step)))
        command = fields.text("command", command, fields.MAX_TEXT, empty=True)
        if lab_host is not None:
            lab_host = fields.text("lab_host", lab_host)
        run_id, now = uuid.uuid4().hex, time.time()
        with self._sql.write() as db:
            # an upsert, not DO NOTHING: it holds the learner's row, so the retention pass cannot delete
            # them (and their new run with them) until this run is in (nodes sharing the store)
            db.execute("INSERT INTO learners (id, created) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
                       " SET created = learners.created", (learner, now))
            db.execute(
                "INSERT INTO runs (id, learner, lab, step, command, lab_host, started, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (run_id, learner, lab, step, command, lab_host, now),
            )
        return run_id

    def finish_run(
        self, run_id: str, status: str, exit_code: int | None = None, signal: int | None = None
    ) -> bool:
        """End a running run. Returns False if it had already ended (a stop
        racing the command's own exit is not an error)."""
        run_id = fields.run_id(run_id)
        if status not in FINISHED:
            raise ValueError(f"status: expected one of {', '.join(FINISHED)}, got {str(status)[:40]!r}")
        if exit_code is not None:
            fields.integer("exit_code", exit_code)
        if signal is not None:
            fields.integer("signal", signal, 0)
        now = time.time()
        with self._sql.write() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, exit_code = ?, signal = ?, ended = ?, duration = ? - started"
                " WHERE id = ? AND status = 'running'",
                (status, exit_code, signal, now, now, run_id),
            )
            if cur.rowcount == 0 and db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise LookupError(f"run {run_id}: no such run")
            if cur.rowcount == 1:
                self._end_note(db, run_id)
            return cur.rowcount == 1

    def record_check(
        self, run_id: str, idx: int, kind: str, passed: bool, hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record check *idx* of a run. Record checks before finish_run, so
        that progress never counts a run whose checks are still coming."""
        run_id, idx, kind = fields.run_id(run_id), fields.integer("idx", idx, 0), fields.text("kind", kind)
        hint = None if hint is None else fields.text("hint", hint, fields.MAX_TEXT, empty=True)
        detail = None if detail is None else fields.text("detail", detail, fields.MAX_TEXT, empty=True)
        with self._sql.write() as db:
            db.execute(
                "INSERT INTO checks (run, idx, kind, passed, hint, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, idx, kind, 1 if passed else 0, hint, detail),
            )

    def mark_cut_off(self, lab_host_prefix: str | None = None) -> int:
        """At startup: runs still 'running' lost their server; mark them
        'cut_off' (ended = now, duration unknown). Returns how many.

        ``lab_host_prefix``: only the runs of lab hosts whose id starts with it
        (a node starting, or found dead, cuts off its own lab hosts' runs, not
        those other nodes are running); None: all of them (one machine)."""
        where, args = "status = 'running'", ()
        if lab_host_prefix is not None:
            prefix = fields.text("lab_host_prefix", lab_host_prefix)
            where, args = where + " AND substr(lab_host, 1, ?) = ?", (len(prefix), prefix)
        with self._sql.write() as db:
            # by learner: their usage rows are locked in one order (quota.py)
            runs = [r for (r,) in db.execute(f"SELECT id FROM runs WHERE {where} ORDER BY learner, id",
                                             args).fetchall()]
            db.execute(f"UPDATE runs SET status = 'cut_off', ended = ? WHERE {where}", (time.time(), *args))
            if runs:
                self._quota.reserve(db, len(runs) * NOTE_ROOM)   # the notes' room, under one lock
            for run_id in runs:
                self._end_note(db, run_id)
            return len(runs)

    def _runs(self, db: Any, where: str, args: tuple) -> list[dict]:
        """The runs that ``where`` selects, each with its checks (fetched in batches: a workshop's grid
        reads hundreds of runs at a time)."""
        cur = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        runs = [dict(zip(names, row)) for row in cur.fetchall()]
        by_id = {run["id"]: run for run in runs}
        for run in runs:
            run["checks"] = []
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for run_id, idx, kind, passed, hint, detail in db.execute(
                f"SELECT run, idx, kind, passed, hint, detail FROM checks WHERE run IN ({','.join('?' * len(part))})"
                " ORDER BY run, idx", part,
            ):
                by_id[run_id]["checks"].append(
                    {"idx": idx, "kind": kind, "passed": bool(passed), "hint": hint, "detail": detail})
        return runs

    def get_run(self, run_id: str) -> dict | None:
        """One run as a dict (its columns plus ``checks``), or None."""
        run_id = fields.run_id(run_id)
        with self._sql.read() as db:
            runs = self._runs(db, "id = ?", (run_id,))
        return runs[0] if runs else None

    def last_runs(self, learner: str, lab: str) -> dict[str, dict]:
        """{step: its latest run}: what the notebook view shows."""
        learner, lab = fields.text("learner", learner), fields.text("lab", lab)
        with self._sql.read() as db:
            runs = self._runs(
                db,
                "rowid IN (SELECT max(rowid) FROM runs WHERE learner = ? AND lab = ? GROUP BY step)",
                (learner, lab),
            )
        return {run["step"]: run for run in runs}

    def latest_runs(self, labs: list[str], learners: list[str]) -> list[dict]:
        """The latest run of each step of ``labs`` of each of ``learners`` (those with a place in a
        workshop's room): its grid. The learners go as one JSON array, however many there are."""
        labs = [fields.text("lab", lab) for lab in labs]
        if not labs or not learners:
            return []
        with self._sql.read() as db:
            return self._runs(
                db,
                f"rowid IN (SELECT max(rowid) FROM runs WHERE lab IN ({','.join('?' * len(labs))})"
                f" AND learner IN ({self._sql.json_texts}) GROUP BY learner, lab, step)",
                (*labs, json.dumps([fields.text("learner", x) for x in learners])),
            )

    def progress(self, learner: str, lab: str, step_ids: list[str]) -> tuple[int, int]:
        """(passed steps, len(step_ids)), by ``step_state`` of each step's latest run."""
        last = self.last_runs(learner, lab)
        passed = sum(1 for step in step_ids if step_state(last.get(step)) == PASSED)
        return passed, len(step_ids)
