"""The lab host layer's error, in a module of its own: the interface (``base.py``) and the spawner's
protocol (``spawn.py``) both raise it without importing each other."""
from __future__ import annotations

from ..errors import LabnbError


class LabHostError(LabnbError, RuntimeError):
    """A lab host that cannot be made or used: what happened, and what to do."""


class CannotMake(LabHostError):
    """The machine lets this server make no lab host now, whoever asks (every uid range of the machine is
    claimed, or its settings leave none): not one lab host's failure. A join or a claim is told at once,
    with what the operator must do; the warm pool waits for the cause to go (a range freed)."""
