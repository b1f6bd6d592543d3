"""What a run of a step reports as it goes (``StepRun``), one typed event per
thing that happened, told to one callback in order. The web's run manager
turns them into a stored, streamed run; the headless runner into its record
and live text. Consumers dispatch with ``match`` (``Output`` comes first:
there is one per read of output).

These are the server's own events, not Socket.IO's (webapp/stream/protocol.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Literal

from ..executor import Outcome

_event = dataclasses.dataclass(frozen=True, slots=True)


@_event
class Output:
    """Output, in order: ``data`` as read, ``text`` it decoded by the run's one incremental decoder."""
    data: bytes
    text: str


@_event
class CommandStarted:
    block: int          # the command's index among the step's blocks
    line: int           # its line in the lab file
    command: str
    terminal: str | None = None   # typed into this named terminal: its output shows the command, after
                                  # the terminal's prompt, as typed there (a consumer adds no header)
    host: str | None = None       # the lab's name for the host it runs on; None in a lab of one lab host


@_event
class CommandEnded:
    block: int
    outcome: Outcome
    ok: bool            # it did what its block says (an endless command stopped is ok)
    note: str           # for the learner: why not, or how


@_event
class CheckJudged:
    idx: int            # the check's index among the step's checks
    kind: Literal["check", "match"]
    passed: bool
    hint: str
    detail: str


@_event
class RunEnded:
    status: str         # done|failed|interrupted|timed_out|error


Event = Output | CommandStarted | CommandEnded | CheckJudged | RunEnded
OnEvent = Callable[[Event], None]
