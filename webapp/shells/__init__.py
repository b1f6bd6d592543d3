"""Shells: the lab page's terminal panel, a free interactive bash on the
learner's lab host (handlers for its Socket.IO events beside the manager).
Unlike runs, nothing typed or printed there is stored."""
from .handlers import register
from .manager import ShellError, ShellManager

__all__ = ["ShellManager", "ShellError", "register"]
