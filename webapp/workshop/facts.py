"""What the instructor's dashboard tells of a learner beside their grid of
steps: the step that fails now (and why, in a line), and an early end of
their place that is worth the instructor's eye.

An early end (idle, or no tab open) is only told once it is near, when the
learner is warned of it too: before that, a learner with a tab open always
had one ten minutes away ("gone in 10 min"), as every poll of the tab moves
it on, which said nothing true about them.
"""
from __future__ import annotations

from ..status import FAILED, label
from ..store import step_state
from .room import GONE, IDLE


def failing(runs: list[dict]) -> dict | None:
    """Of the latest run of each step (``runs``), the one that failed last, as
    ``{"lab", "step", "why", "at"}``, or None: no step fails now (a step that
    failed and then passed is not failing any more)."""
    failed = [run for run in runs if step_state(run) == FAILED]
    if not failed:
        return None
    run = max(failed, key=lambda r: r["ended"] or r["started"])
    return {"lab": run["lab"], "step": run["step"], "why": why_failed(run), "at": run["ended"] or run["started"]}


def why_failed(run: dict) -> str:
    """A failed run in a line: its first failed check's hint, or how its command ended."""
    check = next((c for c in run["checks"] if not c["passed"]), None)
    if check is not None:   # the run's status is then "failed", whatever its command's exit code
        return check["hint"] or f"its {check['kind']} {check['idx'] + 1} failed"
    if run["exit_code"] not in (None, 0):
        return f"{label(run['status'])} (exit code {run['exit_code']})"
    return label(run["status"])


def early_end(left: dict) -> dict | None:
    """From ``Room.time_left``: the place's early end, ``{"why": "idle"|"gone", "in_s"}``, once the learner
    is warned of it; None otherwise (no early end, or one still far)."""
    if left.get("why") in (IDLE, GONE) and left.get("warn"):
        return {"why": left["why"], "in_s": left["ends_in_s"]}
    return None
