"""Runs of steps as the browser sees them: the Socket.IO events (handlers)
and the manager that records each run and streams it to browser tabs."""
from .handlers import register
from .manager import RunError, RunManager

__all__ = ["RunManager", "RunError", "register"]
