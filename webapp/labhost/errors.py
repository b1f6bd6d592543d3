"""The lab host layer's error, in a module of its own: the interface (``base.py``) and the spawner's
protocol (``spawn.py``) both raise it without importing each other."""
from __future__ import annotations


class LabHostError(RuntimeError):
    """Something a user or operator can act on: what happened, and what to do."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(f"{what}. {todo}".strip() if todo else what)
        self.what, self.todo = what, todo
