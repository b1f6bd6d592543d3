"""Catching a learner up: the steps of a lab before a chosen one that have not passed on their lab host
now, run in order in a thread, as their own runs (their tabs show them), stopping at the first that fails.

Who asks: the instructor, for a learner in a workshop's room who fell behind (the dashboard,
workshop/manager.py), and the learner, for their own lab host only, after it was made afresh (a reset, an
idle one given back, a server restarted: their recorded runs say the steps passed, but what the steps made
is gone; notebook/views.py). One catch-up per learner at a time; its state is what the dashboard and the
learner's progress show.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..errors import LabnbError
from ..learners.registry import Learners, NotReady
from ..store import PASSED, Store, passed_here, step_state
from .manager import RunError, RunManager

log = logging.getLogger(__name__)

ENDLESS_FOR = 3.0     # seconds an endless command of a catch-up runs before it is stopped (as ``labnb run``)
SETUP_WAIT = 300.0    # seconds a catch-up waits for the learner's lab host and the lab's setup


class CatchUps:
    """Every learner's catch-up: ``start`` one, read its ``state``; ``on_change`` callbacks hear of each move."""

    def __init__(self, store: Store, runs: RunManager, learners: Learners):
        self.store, self.runs, self.learners = store, runs, learners
        self._states: dict[str, dict] = {}   # learner: {lab, to, step (running now), state, error}
        self._lock = threading.Lock()
        self._on_change: list[Callable[[str], None]] = []

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(learner_id)`` when a learner's catch-up starts a step or ends."""
        self._on_change.append(callback)

    def state(self, learner_id: str) -> dict | None:
        """How the learner's last catch-up goes: running (at ``step``), done or failed (with ``error``)."""
        with self._lock:
            state = self._states.get(learner_id)
            return dict(state) if state else None

    def start(self, learner_id: str, lab, step_id: str, refusal: Callable[[], str | None] = lambda: None) -> None:
        """Catch the learner up to ``step_id`` of ``lab``, in a thread. ``refusal()``, asked before each step,
        says why the learner may not go on (their place in a workshop ended), or None."""
        index = next((i for i, s in enumerate(lab.steps) if s.id == step_id), None)
        if index is None:
            raise RunError(f"lab {lab.id!r} has no step {step_id!r}")
        with self._lock:
            if (self._states.get(learner_id) or {}).get("state") == "running":
                raise RunError("a catch-up is under way already: wait for it to end")
            self._states[learner_id] = {"lab": lab.id, "to": step_id, "step": None, "state": "running",
                                        "error": None}
        threading.Thread(target=self._catch_up, args=(learner_id, lab, lab.steps[:index], refusal),
                         name=f"catch-up-{learner_id[:8]}", daemon=True).start()
        self._tell(learner_id)

    def _catch_up(self, learner_id: str, lab, steps, refusal) -> None:
        try:
            for step in steps:
                why = refusal()
                if why:
                    raise RunError(why)
                learner = self.learners.peek(learner_id)
                if passed_here(self.store.last_runs(learner_id, lab.id).get(step.id), learner and learner.host):
                    continue
                self._update(learner_id, step=step.id)
                run_id = self._start(learner_id, lab, step)
                while self.runs.is_live(run_id):
                    time.sleep(0.1)
                if step_state(self.store.get_run(run_id)) != PASSED:
                    raise RunError(f"step {step.index} ({step.title}) did not pass: its cell says why")
            self._update(learner_id, state="done", step=None)
        except LabnbError as e:   # RunError, NotReady: said as they are
            self._update(learner_id, state="failed", error=str(e))
        except Exception as e:   # a bug: say it, keep serving
            log.exception("catching up learner %s", learner_id)
            self._update(learner_id, state="failed", error=f"unexpected error: {e}")

    def _start(self, learner_id: str, lab, step) -> str:
        """Start the step's run, waiting while the lab host starts or the lab's setup runs."""
        deadline = time.monotonic() + SETUP_WAIT
        while True:
            try:
                return self.runs.start(learner_id, lab.id, step.id, endless_for=ENDLESS_FOR)
            except (RunError, NotReady) as e:
                if "try again in a moment" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _update(self, learner_id: str, **change) -> None:
        with self._lock:
            self._states[learner_id].update(change)
        self._tell(learner_id)

    def _tell(self, learner_id: str) -> None:
        for callback in self._on_change:
            try:
                callback(learner_id)
            except Exception:
                log.exception("telling of the catch-up of learner %s", learner_id)
