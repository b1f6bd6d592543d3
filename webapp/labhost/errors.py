"""The lab host layer's error, in a module of its own: the interface (``base.py``) and the spawner's
protocol (``spawn.py``) both raise it without importing each other."""
from __future__ import annotations

from ..errors import LabnbError


class LabHostError(LabnbError, RuntimeError):
    """A lab host that cannot be made or used: what happened, and what to do."""
