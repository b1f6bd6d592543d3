"""A step's state, as a grid and the progress count show it, from its latest run; and whether that run
was on the learner's lab host now (a reset, an idle lab host given back or a server restarted gives them a
fresh one, and their runs stay recorded)."""

from __future__ import annotations

import dataclasses

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


def on_lab_host(run: dict | None, lab_host) -> bool:
    """Whether ``run`` ran on ``lab_host`` (a LabHost; None: the learner has none now). Its id alone does
    not say (the plain backend's is always "plain"), so the run must also have started after it was made;
    the time alone does not either (a lab host waits in the warm pool, made before the runs of the one it
    replaces)."""
    return (run is not None and lab_host is not None and run["lab_host"] == lab_host.id
            and run["started"] >= lab_host.created)


def passed_here(run: dict | None, lab_host) -> bool:
    """Whether a step whose latest run is ``run`` has passed on ``lab_host``: what it made is there."""
    return on_lab_host(run, lab_host) and step_state(run) == PASSED


@dataclasses.dataclass(frozen=True)
class Progress:
    """A learner's progress in a lab, as the recorded runs say and as their lab host now stands."""

    total: int       # steps in the lab
    passed: int      # steps whose latest run passed, wherever it ran
    here: int        # steps passed on the lab host the learner has now
    earlier: tuple[str, ...]   # the steps whose latest run was on an earlier lab host: what it made is gone

    @classmethod
    def of(cls, last: dict[str, dict], step_ids: list[str], lab_host) -> "Progress":
        """From ``last`` ({step: its latest run}, ``Store.last_runs``) and the learner's lab host now."""
        runs = [last.get(step) for step in step_ids]
        return cls(total=len(step_ids), passed=sum(step_state(r) == PASSED for r in runs),
                   here=sum(passed_here(r, lab_host) for r in runs),
                   earlier=tuple(step for step, r in zip(step_ids, runs) if r is not None
                                 and not on_lab_host(r, lab_host)))
