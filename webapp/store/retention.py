"""Retention: runs that ended more than ``Limits.retention_days`` ago are
deleted with their output and checks, at start and hourly, and so are the
learners left with none and the workshop rooms left as long; by one node at a
time where nodes share the store."""

from __future__ import annotations

import logging
import time

from .limits import Limits
from .quota import Quota
from .schema import Database

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0   # seconds between two retention passes
PRUNE_BATCH = 64          # runs deleted per transaction, so readers are not held up
RETENTION_LOCK = 0x6C61626E62_02   # the advisory lock of the retention pass ("labnb", then which)


class Retention:
    """Mixed into Store: deleting what is older than the limits keep."""

    _sql: Database
    _quota: Quota
    limits: Limits

    def prune_expired(self, now: float | None = None) -> int:
        """Delete the runs that ended more than ``retention_days`` before ``now``
        (and learners left with none, and workshop rooms left as long), a batch
        per transaction. Returns how many runs (0 too while another node does it).

        The learners' usage rows are locked before their runs are deleted (quota.py): a run that an
        append pruned meanwhile is not counted twice."""
        if not self.limits.retention_days:
            return 0
        with self._sql.one_at_a_time(RETENTION_LOCK) as mine:
            return self._prune_expired(now) if mine else 0

    def _prune_expired(self, now: float | None) -> int:
        cutoff = (time.time() if now is None else now) - self.limits.retention_days * 86400
        deleted = 0
        while True:
            with self._sql.write() as db:
                old = db.execute("SELECT id, learner FROM runs WHERE status != 'running'"
                                 " AND coalesce(ended, started) < ? LIMIT ?", (cutoff, PRUNE_BATCH)).fetchall()
                self._quota.hold(db, [learner for _, learner in old])
                for run_id, learner in old:
                    gone = db.execute("DELETE FROM runs WHERE id = ? RETURNING stored_bytes", (run_id,)).fetchone()
                    if gone:
                        self._quota.count(db, learner, -gone[0])
                        deleted += 1
                if len(old) < PRUNE_BATCH:
                    # Locked, then deleted if they still have no run: a run being started meanwhile (it
                    # holds its learner's row) is seen by the second statement, never deleted with them.
                    none = [r for (r,) in db.execute(
                        "SELECT id FROM learners WHERE created < ? AND NOT EXISTS (SELECT 1 FROM runs WHERE"
                        " learner = learners.id) ORDER BY id" + self._sql.for_update, (cutoff,)).fetchall()]
                    for i in range(0, len(none), 500):
                        part = none[i:i + 500]
                        for (learner,) in db.execute(
                                f"DELETE FROM learners WHERE id IN ({','.join('?' * len(part))}) AND NOT EXISTS"
                                " (SELECT 1 FROM runs WHERE learner = learners.id) RETURNING id", part).fetchall():
                            self._quota.forget(learner)
                    db.execute("DELETE FROM rooms WHERE saved < ?", (cutoff,))   # names, addresses, hands
            if len(old) < PRUNE_BATCH:
                if deleted:
                    log.info("deleted %d run(s) that ended more than %g days ago", deleted,
                             self.limits.retention_days)
                return deleted
