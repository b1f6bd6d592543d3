"""A run's output: chunks stored as they come, within the run's cap (its head
kept, its tail rolling; see limits.py) and the quotas, and read back for a
returning browser, a download or a cell's ends.

Each chunk is committed before anyone is shown it, so a browser that comes
back (or a restarted server) finds every chunk it was shown, by sequence
number.
"""

from __future__ import annotations

from typing import Any, Iterator

from . import fields
from .limits import NOTE_ROOM, Limits, mib, note
from .quota import Quota
from .schema import Database

ROLL_PARTS = 16           # a run's tail is rolled in steps of its cap / ROLL_PARTS
_RANK = {None: 0, "run": 1, "learner": 2, "store": 3}   # a run keeps the strongest limit that cut it


class Output:
    """Mixed into Store: a run's output."""

    _sql: Database
    _quota: Quota
    limits: Limits

    def append_chunk(self, run_id: str, seq: int, data: bytes) -> None:
        """Store chunk *seq* of a running run, durably, before anyone is shown it.

        Within the limits (see limits.py): a run's head is kept, its
        tail rolls; what is left out is counted in ``truncated``. A seq
        already stored raises the database's IntegrityError.
        """
        run_id, seq = fields.run_id(run_id), fields.integer("seq", seq, 0)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"data: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        with self._sql.write() as db:
            row = db.execute("SELECT status, learner, stored_bytes, truncated, head_seq, limited_by, last_seq"
                             " FROM runs WHERE id = ?" + self._sql.for_update, (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            status, learner, stored, truncated, head_seq, limited_by, last_seq = row
            if status != "running":
                raise ValueError(f"run {run_id}: is {status}, cannot take more output")
            pos = stored + truncated            # where this chunk starts in the whole output
            cap = self.limits.run - NOTE_ROOM
            freed, last_freed = 0, None
            if head_seq is None:                # the head: kept as it comes, up to half the cap
                keep, at = data[: max(0, cap - stored)], pos
                if pos + len(data) >= cap // 2:
                    head_seq = seq
            else:                               # the tail: the oldest chunks after the head make room
                # Free a sixteenth of the cap more than needed: deleting a
                # few chunks at once costs about what deleting one does.
                excess = stored + len(data) - cap
                goal = excess + cap // ROLL_PARTS if excess > 0 else 0
                while freed < goal:
                    after = head_seq if last_freed is None else last_freed
                    rows = db.execute("SELECT seq, length(data) FROM chunks WHERE run = ? AND seq > ?"
                                      " ORDER BY seq LIMIT 16", (run_id, after)).fetchall()
                    if not rows:
                        break
                    for last_freed, n in rows:
                        freed += n
                        if freed >= goal:
                            break
                keep = data[max(0, excess - freed):]
                at = pos + len(data) - len(keep)
            if len(keep) < len(data) or freed:
                limited_by = _strongest(limited_by, "run")
            if len(keep) > freed:
                why = self._quota.make_room(db, learner, len(keep) - freed)
                if why:                         # nothing left to take from: count it, store nothing
                    keep, freed, limited_by = b"", 0, _strongest(limited_by, why)
            if freed:
                db.execute("DELETE FROM chunks WHERE run = ? AND seq > ? AND seq <= ?",
                           (run_id, head_seq, last_freed))
            if keep:
                db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)", (run_id, seq, at, keep))
            db.execute(
                "UPDATE runs SET stored_bytes = ?, truncated = ?, last_seq = ?, head_seq = ?, limited_by = ?"
                " WHERE id = ?",
                (stored + len(keep) - freed, truncated + len(data) - len(keep) + freed,
                 seq if last_seq is None else max(last_seq, seq), head_seq, limited_by, run_id),
            )
            self._quota.count(db, learner, len(keep) - freed)
        self._sql.wrote(len(keep))

    def _end_note(self, db: Any, run_id: str) -> None:
        """At a run's end: if output was left out, a last chunk saying why."""
        learner, stored, truncated, last_seq, limited_by = db.execute(
            "SELECT learner, stored_bytes, truncated, last_seq, limited_by FROM runs WHERE id = ?",
            (run_id,)).fetchone()
        if not truncated:
            return
        total = stored + truncated
        if limited_by == "run":
            half = mib(self.limits.run // 2)
            text = (f"labnb kept about the first and the last {half} of this run's {total:,} bytes of output;"
                    f" the {truncated:,} bytes between were not stored (LABNB_RUN_OUTPUT_MB)."
                    f" To keep all of it, send it to a file on the lab host.")
        else:
            text = (f"{truncated:,} bytes of this run's output were not stored: {self._quota.full(limited_by)},"
                    f" and only running runs were left to make room from."
                    + (" Tell the instructor." if limited_by == "store" else ""))
        last = db.execute("SELECT substr(data, length(data), 1) FROM chunks WHERE run = ?"
                          " ORDER BY seq DESC LIMIT 1", (run_id,)).fetchone()
        line = note(text, at_line_start=last is None or last[0] == b"\n")
        self._quota.make_room(db, learner, len(line))
        seq = (-1 if last_seq is None else last_seq) + 1
        db.execute("INSERT INTO chunks (run, seq, pos, data) VALUES (?, ?, ?, ?)", (run_id, seq, total, line))
        db.execute("UPDATE runs SET stored_bytes = stored_bytes + ?, last_seq = ? WHERE id = ?",
                   (len(line), seq, run_id))
        self._quota.count(db, learner, len(line))

    def chunks_since(self, run_id: str, after_seq: int = -1, limit: int | None = None
                     ) -> list[tuple[int, int, bytes]]:
        """Stored chunks (seq, pos, data) with seq > *after_seq*, in order: what
        a returning browser has not seen. pos is the chunk's place in the whole
        output: where chunks were left out (see Limits), seq and pos jump."""
        run_id, after_seq = fields.run_id(run_id), fields.integer("after_seq", after_seq, -1)
        lim = self._sql.no_limit if limit is None else fields.integer("limit", limit, 0)
        with self._sql.locked() as db:
            return db.execute(
                "SELECT seq, pos, data FROM chunks WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, lim),
            ).fetchall()

    def iter_output(self, run_id: str, batch: int = 256) -> Iterator[bytes]:
        """The stored output chunk by chunk, for a download that streams (the
        lock is held for one batch at a time, never the whole log), with a line
        saying how many bytes were left out wherever some were."""
        seq, end = -1, 0
        while rows := self.chunks_since(run_id, seq, batch):
            for seq, pos, data in rows:
                if pos > end:
                    yield note(f"labnb: {pos - end:,} bytes left out here", at_line_start=False)
                yield data
                end = pos + len(data)

    def output(self, run_id: str) -> bytes:
        """The whole stored output, as iter_output gives it."""
        return b"".join(self.iter_output(run_id))

    def output_head_tail(self, run_id: str, head_bytes: int, tail_bytes: int) -> tuple[bytes, bytes, int, int]:
        """(head, tail, total_bytes, omitted_bytes) of the output, so a huge
        output shows its ends; head + omitted + tail == total_bytes, the whole
        output's length, what was not stored included. The head is at most
        *head_bytes* from the start, the tail at most *tail_bytes* up to the last
        chunk stored, each without a gap in it. Cuts are at byte offsets:
        decode with errors='replace'."""
        run_id = fields.run_id(run_id)
        head_bytes = fields.integer("head_bytes", head_bytes, 0)
        tail_bytes = fields.integer("tail_bytes", tail_bytes, 0)
        with self._sql.read() as db:
            row = db.execute("SELECT stored_bytes + truncated FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LookupError(f"run {run_id}: no such run")
            total = row[0]
            # Walk in from each end and stop early, so the ends of a long
            # output cost a few chunks, not a scan.
            chunks = "SELECT pos, data FROM chunks WHERE run = ? ORDER BY seq"
            last = db.execute(chunks + " DESC LIMIT 1", (run_id,)).fetchone()
            stored_end = last[0] + len(last[1]) if last else 0
            if head_bytes + tail_bytes >= stored_end:
                head_bytes = tail_bytes = stored_end   # all of it: the head, and past a gap the tail
            parts, head_end = [], 0
            for pos, data in db.execute(chunks, (run_id,)) if head_bytes else ():
                if pos != head_end or pos >= head_bytes:
                    break
                parts.append(data)
                head_end += len(data)
            head = b"".join(parts)[:head_bytes]
            if len(head) == stored_end:
                tail_bytes = 0                 # no gap: the head is all of it
            tail_from = max(stored_end - tail_bytes, len(head))
            first, parts = stored_end, []
            for pos, data in db.execute(chunks + " DESC", (run_id,)) if tail_bytes else ():
                if pos + len(data) != first or first <= tail_from:
                    break
                parts.append(data)
                first = pos
            tail = b"".join(reversed(parts))[max(0, tail_from - first):]
        return head, tail, total, total - len(head) - len(tail)


def _strongest(a: str | None, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b
