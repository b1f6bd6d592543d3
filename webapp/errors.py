"""The errors a user or an operator can meet, under one base class.

Each says what went wrong and what to do about it, so that the command line
and the pages can show it as it is (the CLI prints a ``LabnbError`` without a
traceback). Module errors (lab hosts, labs, runs, the workshop's room)
subclass ``LabnbError``; a mistake in the settings is a ``ConfigError``,
which names the setting to change.
"""
from __future__ import annotations


class LabnbError(Exception):
    """Something a user or operator can act on: what happened, and what to do."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(f"{what}. {todo}".strip() if todo else what)
        self.what, self.todo = what, todo


class ConfigError(LabnbError):
    """A setting that cannot work: which one (``LABNB_<NAME>``), what is wrong with it, how to fix it."""

    def __init__(self, setting: str, problem: str, fix: str):
        super().__init__(problem if setting in problem else f"{setting}: {problem}", fix)
        self.setting = setting
