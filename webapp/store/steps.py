"""A step's state, as a grid and the progress count show it, from its latest run."""

from __future__ import annotations

from ..status import DONE, FAILED, RUNNING

NOT_STARTED, PASSED = "not_started", "passed"


def step_state(run: dict | None) -> str:
    """A step as a grid shows it, from its latest run: not_started, running,
    passed (ended 'done' and every check recorded on it passed) or failed."""
    if run is None:
        return NOT_STARTED
    if run["status"] == RUNNING:
        return RUNNING
    return PASSED if run["status"] == DONE and all(c["passed"] for c in run["checks"]) else FAILED
