"""Admission: who may use the learner pages and events, and have a lab host,
now: the one policy that the Guard, the Socket.IO events and the learners'
registry ask (each gets it when it is built, webapp/app.py).

The open server admits every holder of the token (``OPEN``); a workshop's room
admits its learners while their place is seated (workshop.manager.RoomAdmission).
"""
from __future__ import annotations

from typing import Protocol


class Admission(Protocol):
    def refusal(self, active: bool = True) -> str | None:
        """Why this request's learner may not use learner pages and events now (None: they may). The
        request is a sign of them: ``active``, or only of an open tab."""

    def admits(self, learner_id: str) -> str | None:
        """Why the learner may not get a lab host now (None: they may)."""

    def touch(self, learner_id: str) -> None:
        """A sign of the learner's activity outside a request of theirs (their terminal's output)."""


class OpenAdmission:
    """The open server's: every holder of the token is admitted, always."""

    def refusal(self, active: bool = True) -> None:
        return None

    def admits(self, learner_id: str) -> None:
        return None

    def touch(self, learner_id: str) -> None:
        return None


OPEN = OpenAdmission()
