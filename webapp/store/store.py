"""The ``Store`` face: one object that callers hold, composed of the store's
concerns (runs.py, output.py, retention.py, rooms.py, nodes.py, placements.py,
shared.py as mixins over one database and one quota) and its database:
sqlite.py (one machine, the default) or postgres.py (nodes sharing it),
chosen by ``open_store`` from the settings."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .limits import Limits
from .nodes import Nodes
from .output import Output
from .placements import Placements
from .quota import Quota, TableCounts
from .retention import PRUNE_INTERVAL, Retention
from .rooms import Rooms
from .runs import Runs
from .shared import Shared
from .sqlite import SQLite


class Store(Runs, Output, Retention, Rooms, Nodes, Placements, Shared):
    """The run store of one SQLite file, or of a PostgreSQL database when ``where`` is its address
    (``postgresql://...``); safe to share between threads.

    ``limits`` defaults to those of the default settings."""

    def __init__(self, where: str | os.PathLike, limits: Limits | None = None):
        from ..config import Settings

        self.limits = limits or Limits.from_settings(Settings())
        if is_database_url(where):
            from .postgres import Postgres   # psycopg only where it is used

            self.path = None
            self._sql = Postgres(str(where))
            self._quota = Quota(self.limits, TableCounts(self.limits.total, self._sql.max_connections))
        else:
            self.path = Path(where)
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


def is_database_url(where: object) -> bool:
    """Whether ``where`` names a PostgreSQL database (LABNB_DATABASE_URL), not a SQLite file."""
    return isinstance(where, str) and where.startswith(("postgresql://", "postgres://"))


def open_store(settings) -> Store:
    """The store a server's settings say: PostgreSQL at ``database_url`` when it is set (nodes share it),
    else SQLite at ``state_dir/store_file``. Raises ConfigError for an address that is not PostgreSQL's."""
    if settings.database_url and not is_database_url(settings.database_url):
        raise ConfigError("LABNB_DATABASE_URL", f"{settings.database_url.partition(':')[0]!r} is not a PostgreSQL"
                          " address", "Write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset it to"
                          " keep the run store in SQLite in the state dir")
    where = settings.database_url or os.path.join(settings.state_dir, settings.store_file)
    return Store(where, Limits.from_settings(settings))
