"""The ``Store`` face: one object that callers hold, composed of the store's
concerns (runs.py, output.py, retention.py, rooms.py as mixins over one
database and one quota) and its database (sqlite.py). A second database is a
second module like sqlite.py that ``Store`` opens instead."""

from __future__ import annotations

import os
from pathlib import Path

from .limits import Limits
from .output import Output
from .quota import Quota
from .retention import PRUNE_INTERVAL, Retention
from .rooms import Rooms
from .runs import Runs
from .sqlite import SQLite


class Store(Runs, Output, Retention, Rooms):
    """The run store of one SQLite file; safe to share between threads.

    ``limits`` defaults to those of the default settings."""

    def __init__(self, path: str | os.PathLike, limits: Limits | None = None):
        from ..config import Settings

        self.path = Path(path)
        self.limits = limits or Limits.from_settings(Settings())
        self._quota = Quota(self.limits)
        self._sql = SQLite(self.path, recount=self._quota.recount)
        self.prune_expired()
        self._sql.start(self.prune_expired, PRUNE_INTERVAL)

    def close(self) -> None:
        self._sql.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
