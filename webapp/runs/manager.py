"""Runs as browsers see them: a step's run wired to the store and to the
browsers watching it.

The server owns each run's output. Output is gathered into chunks, each
chunk is committed to the store with the next sequence number and only then
sent, so whatever a browser was shown survives a crash, and a browser that
comes back asks for what it has not seen (its last seq).

Flow control (webapp/stream/flow.py), end to end: a browser acknowledges the
output position it has taken in (into the cell's queues, drawn soon after).
The step's executor reads the PTY only while the furthest-ahead browser is
less than a window behind (with no browser attached, the store is the
consumer): the run's ``Credit``, so an endless producer is held by the
kernel, not buffered. Each browser also has
a window of its own (its ``Cursor``, a ``Reader``): one that stops reading is
sent nothing more until it acknowledges, then catches up from the store, so
a slow tab never grows the server's memory nor slows a fast one.

Limits: the store keeps a long output's head and tail and counts the
middle (store.Limits), so a replay may jump in seq and in position: each
chunk sent from the store carries its own end position, and a tab that asks
for a seq that is gone gets the chunks after the gap. The store's note of
what was left out is the run's last chunk, sent as any other.

Coalescing: a PTY read gives a few KiB; the store costs one commit per chunk.
One flusher thread per run takes everything gathered while the previous
commit ran (up to MAX_CHUNK), so an idle run sends a byte at once and a
flood goes out in large chunks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable

from prometheus_client import Counter, Histogram

from ..executor import ERROR, FAILED
from ..errors import LabnbError
from ..stream.flow import Credit, Reader
from ..lab import Lab
from ..learners.registry import Learners
from ..learners.events import CheckJudged, CommandEnded, CommandStarted, Event, Output, RunEnded
from ..learners.bench import StepRun, prompt
from ..status import FINISHED
from ..store import Store

log = logging.getLogger(__name__)

MAX_CHUNK = 256 << 10          # bytes per stored chunk at most
CLIENT_WINDOW = 2 << 20        # bytes sent to one browser and not yet acknowledged
HEAD_BYTES = TAIL_BYTES = 1 << 20   # a returning browser gets the ends of a longer output
STEP_WINDOW = 2 << 20          # the executor's window: unacknowledged bytes before it stops reading
FLOOD_GAP = 0.005              # a chunk taken this soon after the last one means a flood ...
FLOOD_WAIT = 0.003             # ... so wait this long at most ...
MIN_FLOOD_CHUNK = 64 << 10     # ... for this much output

# seconds from a run's start to its command's first output: a command starting (milliseconds) to a slow image pull
FIRST_OUTPUT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REMOVED = "run {} was removed to make room in the run store; run its step again"

Emit = Callable[[str, dict, str], None]   # (event, payload, to: a sid or channel)


class RunError(LabnbError):
    """A request about runs that cannot be met; the message is for the learner."""


@dataclasses.dataclass(eq=False)
class Cursor(Reader):
    """How far one browser tab (a Socket.IO sid) is in one run's output."""

    run_id: str = ""
    window: int = CLIENT_WINDOW
    sent_seq: int = -1
    behind: bool = True    # chunks were not sent live: the next pump reads them from the store
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class LiveRun:
    """A run still going: its output buffer, flusher thread and executor run."""

    def __init__(self, run_id: str, learner: str, lab_id: str, step_id: str):
        self.id, self.learner, self.lab_id, self.step_id = run_id, learner, lab_id, step_id
        self.lock = threading.Lock()        # appends and attaches; taken before a Cursor's lock
        self._cond = threading.Condition()  # guards the buffer
        self._buf = bytearray()
        self._closing = False
        self._last_take = 0.0
        self.received = 0                   # bytes put into the buffer, ours included
        self.ours: list[tuple[int, int]] = []   # (position, length) of lines we wrote (command prompts)
        self.seq = -1
        self.pos = 0                        # bytes stored and sent so far
        self.step_run: StepRun | None = None
        self.begun, self.silent = time.monotonic(), True   # for the first output's latency
        self.flusher: threading.Thread | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.store_error = ""
        self.credit = Credit(own=self.step_bytes)   # the executor reads on as far as the furthest tab

    def feed(self, data: bytes, ours: bool = False) -> None:
        with self._cond:
            if ours:
                self.ours.append((self.received, len(data)))
            self._buf += data
            self.received += len(data)
            self._cond.notify()

    def take(self) -> bytes | None:
        """The next chunk to store, waiting for one; None once closed and drained.

        Output that comes after a pause goes at once; in a flood (the last
        chunk was just taken) a few milliseconds more make one large chunk."""
        with self._cond:
            self._cond.wait_for(lambda: self._buf or self._closing)
            if time.monotonic() - self._last_take < FLOOD_GAP:
                self._cond.wait_for(lambda: len(self._buf) >= MIN_FLOOD_CHUNK or self._closing, FLOOD_WAIT)
            self._last_take = time.monotonic()
            if not self._buf:
                return None
            data = bytes(self._buf[:MAX_CHUNK])
            del self._buf[:MAX_CHUNK]
            return data

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()

    def step_bytes(self, position: int) -> int:
        """An output position as the executor counts it: without our own lines."""
        return position - sum(min(n, max(0, position - at)) for at, n in self.ours)


class RunManager:
    """Starts runs, records them, and streams them to attached browser tabs."""

    def __init__(self, store: Store, learners: Learners, labs: dict[str, Lab], emit: Emit):
        self.store, self.learners, self.labs, self.emit = store, learners, labs, emit
        self.live: dict[str, LiveRun] = {}
        self.cursors: dict[tuple[str, str], Cursor] = {}
        self._lock = threading.Lock()
        self._watchers: list[Callable[[str], None]] = []
        # this server's own, for the operator's metrics (webapp/web/metrics.py collects them)
        self.starts = Counter("labnb_run_starts", "Runs started on this node, by lab", ["lab"], registry=None)
        self.first_output = Histogram(
            "labnb_run_first_output_seconds", "Seconds from a run's start to its command's first output (not "
            "labnb's own prompt line): what a learner waits for after Run", buckets=FIRST_OUTPUT_BUCKETS,
            registry=None)
        for lab_id in labs:   # every lab's series from the start, at 0
            self.starts.labels(lab_id)

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(learner_id)`` when one of their runs starts or ends (a workshop's dashboard)."""
        self._watchers.append(callback)

    def _tell(self, learner_id: str) -> None:
        for callback in self._watchers:
            try:
                callback(learner_id)
            except Exception:
                log.exception("telling of a run of learner %s", learner_id)

    # -- requests from browsers ----------------------------------------------
    def start(self, learner_id: str, lab_id: str, step_id: str, sid: str | None = None,
              endless_for: float | None = None) -> str:
        """Start a run of a step on the learner's lab host; returns the run id.

        The learner's tabs showing the lab hear ``run_started`` before any
        output; the tab ``sid`` that asked is attached already. With
        ``endless_for``, an endless command is stopped after that many
        seconds (as ``labnb run`` does), else it runs until stopped."""
        lab = self.labs.get(lab_id)
        if lab is None:
            raise RunError(f"there is no lab {lab_id!r}")
        step = lab.step(step_id)
        if step is None:
            raise RunError(f"lab {lab_id!r} has no step {step_id!r}")
        learner = self.learners.get(learner_id)   # NotReady if its lab host cannot take commands now
        with learner.lock:
            bench = self.learners.bench(learner, lab)
            if bench.current is not None:
                raise RunError(f"step {bench.current.step.title!r} is still running; stop it first")
            command = "\n".join(c.text for c in step.commands if c.run)
            run_id = self.store.start_run(learner_id, lab_id, step_id, command, bench.lab_host.id)
            live = LiveRun(run_id, learner_id, lab_id, step_id)
            self.starts.labels(lab_id).inc()
            with self._lock:
                self.live[run_id] = live
                if sid is not None:
                    self.cursors[(sid, run_id)] = Cursor(sid, run_id=run_id, behind=False)
            self.emit("run_started", {"run": run_id, "lab": lab_id, "step": step_id}, lab_channel(learner_id, lab_id))
            live.flusher = threading.Thread(target=self._flusher, args=(live,), name=f"flush-{run_id[:8]}",
                                            daemon=True)
            live.flusher.start()
            live.step_run = bench.run_step(step, lambda ev: self._on_event(live, ev), window=STEP_WINDOW,
                                             endless_for=endless_for)
        live.credit.attach(live.step_run.ack)   # with what was taken in before the step's run was known
        self._tell(learner_id)
        return run_id

    def attach(self, sid: str, learner_id: str, run_id: str, after: int, position: int) -> dict:
        """Send a tab the run's output after seq ``after`` (it has taken in up to
        ``position``), then its live output and its end. With ``after`` = -1
        and a long output, the tab gets the output's head and tail instead."""
        self._owned(learner_id, run_id)
        with self._lock:
            live = self.live.get(run_id)
        # The run's lock keeps appends out while we look at the store, so the
        # replay and the live chunks meet with no gap and no duplicate; the
        # cursor is made under it too, or a chunk stored meanwhile would go to
        # it live and then again from the store.
        with live.lock if live else contextlib.nullcontext():
            with self._lock:
                cursor = self.cursors.get((sid, run_id))
                if cursor is None:
                    cursor = self.cursors[(sid, run_id)] = Cursor(sid, run_id=run_id)
            with cursor.lock:
                return self._replay(cursor, after, position)

    def _replay(self, cursor: Cursor, after: int, position: int) -> dict:
        """``attach``'s work, under the run's lock (if live) and the cursor's."""
        sid, run_id = cursor.sid, cursor.run_id
        run = self.store.get_run(run_id)
        if run is None:
            raise RunError(REMOVED.format(run_id))
        if after < 0 and run["stored_bytes"] > HEAD_BYTES + TAIL_BYTES:
            head, tail, total, omitted = self.store.output_head_tail(run_id, HEAD_BYTES, TAIL_BYTES)
            self.emit("snapshot", {"run": run_id, "head": head, "tail": tail,
                                   "omitted": omitted, "seq": run["last_seq"], "end": total}, sid)
            cursor.sent_seq, cursor.sent, cursor.acked = run["last_seq"], total, omitted
        else:
            cursor.sent_seq = after
            cursor.sent = cursor.acked = position
        cursor.behind = True
        self._pump(cursor)
        return {"status": run["status"]}

    def ack(self, sid: str, learner_id: str, run_id: str, position: int) -> None:
        """A tab has taken in the output up to ``position``."""
        cursor = self.cursors.get((sid, run_id))
        if cursor is None:
            self._owned(learner_id, run_id)   # a late ack of an ended run is fine; another's run is not
            return
        with cursor.lock:
            cursor.ack(position)
            if cursor.behind:
                self._pump(cursor)
        live = self.live.get(run_id)
        if live is not None:
            self._credit(live)

    def stop(self, learner_id: str, run_id: str) -> None:
        self._owned(learner_id, run_id)
        live = self.live.get(run_id)
        if live is not None and live.step_run is not None:
            live.step_run.stop()

    def detach(self, sid: str) -> None:
        """A tab went away: forget its cursors; its runs go on."""
        with self._lock:
            gone = [k for k in self.cursors if k[0] == sid]
            for k in gone:
                del self.cursors[k]
        for _, run_id in gone:
            live = self.live.get(run_id)
            if live is not None:
                self._credit(live)

    def is_live(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self.live

    def busy(self, learner_id: str) -> bool:
        """Whether a run of the learner's goes on that is not waiting for their Stop (``Learner.working``)."""
        return self.learners.working(learner_id)

    def running(self, learner_id: str, lab_id: str) -> list[dict]:
        with self._lock:
            return [{"run": r.id, "step": r.step_id} for r in self.live.values()
                    if r.learner == learner_id and r.lab_id == lab_id]

    def close(self, timeout: float = 10) -> None:
        """Stop every run and wait until each is recorded as ended."""
        with self._lock:
            runs = list(self.live.values())
        for r in runs:
            if r.step_run is not None:
                r.step_run.stop()
        for r in runs:
            if r.step_run is not None:
                r.step_run.wait(timeout)

    # -- internals -----------------------------------------------------------
    def _owned(self, learner_id: str, run_id: str) -> dict:
        run = self.store.get_run(run_id)
        if run is None or run["learner"] != learner_id:
            raise RunError(f"you have no run {run_id}")
        return run

    def _cursors_of(self, run_id: str) -> list[Cursor]:
        with self._lock:
            return [c for (_, r), c in self.cursors.items() if r == run_id]

    def _on_event(self, live: LiveRun, event: Event) -> None:
        match event:
            case Output(data=data):
                if data:
                    if live.silent:
                        live.silent = False
                        self.first_output.observe(time.monotonic() - live.begun)
                    live.feed(data)
            case CommandStarted(command=command, terminal=None, host=host):   # a terminal shows what is typed
                lines = command.split("\n")
                text = "\r\n".join((prompt(host) if i == 0 else "> ") + line for i, line in enumerate(lines))
                live.feed(f"\x1b[1;34m{text}\x1b[0m\r\n".encode(), ours=True)
            case CommandEnded(outcome=outcome, note=note):
                live.exit_code, live.signal = outcome.exit_code, outcome.signal
                if note:
                    live.feed(f"\x1b[2m[{note}]\x1b[0m\r\n".encode(), ours=True)
            case CheckJudged(idx=idx, kind=kind, passed=passed, hint=hint):
                detail = event.detail[-4000:]
                try:
                    self.store.record_check(live.id, idx, kind, passed, hint, detail)
                except Exception as e:
                    log.exception("recording check %s of run %s", idx, live.id)
                    live.store_error = live.store_error or str(e)
                payload = {"run": live.id, "idx": idx, "kind": kind, "passed": passed, "hint": hint, "detail": detail}
                for c in self._cursors_of(live.id):
                    self.emit("check", payload, c.sid)
            case RunEnded(status=status):
                self._end(live, status)

    def _flusher(self, live: LiveRun) -> None:
        while (data := live.take()) is not None:
            with live.lock:
                seq = live.seq + 1
                try:
                    self.store.append_chunk(live.id, seq, data)
                except Exception as e:  # a full disk: stop the run rather than show what is not kept
                    log.exception("storing output of run %s", live.id)
                    if not live.store_error:
                        live.store_error = f"its output could not be saved ({e}), so it was stopped"
                        if live.step_run is not None:
                            live.step_run.stop()
                    live.pos += len(data)
                    continue
                live.seq, live.pos = seq, live.pos + len(data)
                for c in self._cursors_of(live.id):
                    with c.lock:
                        if c.sent_seq == seq - 1 and c.has_room:
                            self._send(c, seq, data, c.sent + len(data))
                            c.behind = False
                        else:
                            c.behind = True
            self._credit(live)

    def _credit(self, live: LiveRun) -> None:
        """Let the executor read on, as far as the furthest tab has taken in."""
        cursors = self._cursors_of(live.id)
        live.credit.reached(max(c.acked for c in cursors) if cursors else live.pos)

    def _pump(self, cursor: Cursor) -> None:
        """Send a tab (its lock held) what the store has and it lacks, within its
        window; once it has everything of an ended run, send the end."""
        while rows := self.store.chunks_since(cursor.run_id, cursor.sent_seq, 8):
            if not cursor.has_room:
                return   # the tab's acknowledgement pumps again
            for seq, pos, data in rows:
                self._send(cursor, seq, data, pos + len(data))
        live = self.live.get(cursor.run_id)
        if live is not None:
            cursor.behind = cursor.sent_seq < live.seq
            return
        run = self.store.get_run(cursor.run_id)
        if run is None:   # removed to make room while the tab replayed it
            self.emit("error", {"event": "attach", "message": REMOVED.format(cursor.run_id)}, cursor.sid)
        else:
            self.emit("end", end_payload(run), cursor.sid)
        with self._lock:
            if self.cursors.get((cursor.sid, cursor.run_id)) is cursor:
                del self.cursors[(cursor.sid, cursor.run_id)]

    def _send(self, cursor: Cursor, seq: int, data: bytes, end: int) -> None:
        """Send one chunk, raw bytes, that ends at output position ``end``: the
        tab decodes UTF-8 (natively, completing a character split between chunks)."""
        cursor.sent_seq, cursor.sent = seq, end
        self.emit("output", {"run": cursor.run_id, "seq": seq, "end": end, "data": data}, cursor.sid)

    def _end(self, live: LiveRun, status: str) -> None:
        live.close()
        live.flusher.join()
        if status == ERROR or live.store_error:
            status = FAILED
        try:
            self.store.finish_run(live.id, status if status in FINISHED else FAILED, live.exit_code, live.signal)
        except Exception:
            log.exception("recording the end of run %s", live.id)
        with live.lock:
            with self._lock:
                del self.live[live.id]
            for c in self._cursors_of(live.id):
                with c.lock:
                    self._pump(c)
        self.emit("run_ended", {"run": live.id, "step": live.step_id}, lab_channel(live.learner, live.lab_id))
        self._tell(live.learner)


def lab_channel(learner_id: str, lab_id: str) -> str:
    """The channel (a Socket.IO room) of a learner's tabs showing one lab."""
    return f"lab:{learner_id}:{lab_id}"


def end_payload(run: dict) -> dict:
    return {"run": run["id"], "step": run["step"], "status": run["status"], "exit_code": run["exit_code"],
            "signal": run["signal"], "duration": run["duration"], "checks": run["checks"],
            "seq": run["last_seq"] if run["last_seq"] is not None else -1}
