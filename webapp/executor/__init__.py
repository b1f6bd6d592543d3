"""The command executor: runs commands in a lab host under a PTY and streams
what they print. ``start`` starts a one-shot command (``capture`` runs one
to its end); ``open_terminal`` a named shell that later commands are typed
into (``Terminal.type``)."""
from __future__ import annotations

from .launch import capture, open_terminal, start
from .outcome import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome
from .process import DEFAULT_WINDOW, PtyProcess
from .terminal import Terminal, TerminalBusy, TypedCommand

__all__ = ["start", "capture", "open_terminal", "PtyProcess", "Terminal", "TypedCommand", "TerminalBusy", "Outcome",
           "DONE", "ERROR", "FAILED", "INTERRUPTED", "TIMED_OUT", "DEFAULT_WINDOW"]
