"""How a run stands: one set of words for the executor, the store, the lab
page, ``labnb run`` and the export, and the one label a reader sees for each."""
from __future__ import annotations

# how a command ended (executor.Outcome)
DONE, FAILED, INTERRUPTED, TIMED_OUT, ERROR = "done", "failed", "interrupted", "timed_out", "error"
RUNNING = "running"       # stored while it runs
CUT_OFF = "cut_off"       # stored: the server stopped while it ran
SKIPPED = "skipped"       # `labnb run`: a step after one that failed

FINISHED = (DONE, FAILED, INTERRUPTED, TIMED_OUT)   # what a stored run ends as (an error is stored as failed)
STORED = (RUNNING, *FINISHED, CUT_OFF)

LABELS = {
    DONE: "done",
    FAILED: "failed",
    INTERRUPTED: "stopped",
    TIMED_OUT: "timed out",
    ERROR: "error",   # it could not start, its lab host did not answer...: the outcome's error says which
    RUNNING: "running",
    CUT_OFF: "cut off by a server restart",
    SKIPPED: "skipped",
}


def label(status: str) -> str:
    return LABELS.get(status, status)
