"""Runs of steps as the browser sees them: the Socket.IO events (handlers)
and the manager that records each run and streams it to browser tabs; a
learner's catch-up (catchup.py), runs of the steps before one."""
from .catchup import CatchUps
from .handlers import register
from .manager import RunError, RunManager

__all__ = ["CatchUps", "RunManager", "RunError", "register"]
