"""How a command ended."""
from __future__ import annotations

import dataclasses

from ..status import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT

__all__ = ["Outcome", "DONE", "ERROR", "FAILED", "INTERRUPTED", "TIMED_OUT"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """``status`` is one of done (exit 0), failed (non-zero exit or killed by
    someone else), interrupted (stopped on request), timed_out, or error (it
    could not start, its output could not be taken in, or its lab host did not
    answer: ``error`` says why)."""

    status: str
    exit_code: int | None
    signal: int | None
    duration: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DONE
