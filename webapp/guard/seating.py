"""Who may be seated now: the one policy that the Guard, the Socket.IO events
and the learners' registry ask (each gets it when it is built, webapp/app.py).

The open server seats every holder of the token (``OPEN``); a workshop's room
seats its learners while their place lasts (workshop.manager.RoomSeating).
"""
from __future__ import annotations

from typing import Protocol


class Seating(Protocol):
    def refusal(self, active: bool = True) -> str | None:
        """Why this request's learner may not use learner pages and events now (None: they may). The
        request is a sign of them: ``active``, or only of an open tab."""

    def admits(self, learner_id: str) -> str | None:
        """Why the learner may not get a lab host now (None: they may)."""

    def touch(self, learner_id: str) -> None:
        """A sign of the learner's activity outside a request of theirs (their terminal's output)."""


class OpenSeating:
    """The open server's: every holder of the token is seated, always."""

    def refusal(self, active: bool = True) -> None:
        return None

    def admits(self, learner_id: str) -> None:
        return None

    def touch(self, learner_id: str) -> None:
        return None


OPEN = OpenSeating()
