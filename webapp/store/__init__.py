"""The run store: every run, its output and its checks, kept in a database
(SQLite on one machine, PostgreSQL when nodes share it: ``open_store``).

Why it exists: nothing a learner ran may be lost, not even when the server is
killed mid-run. Each output chunk is committed before it is sent to a browser,
so a browser that comes back (or a restarted server) finds every chunk it was
shown, by sequence number. What it keeps is bounded (limits.py,
docs/run-store.md), so that no learner and no flood can fill the disk.

Callers hold one ``Store`` (store.py); its concerns are modules of their own:
runs.py (a run's record), output.py (its chunks), quota.py (the learner's and
the store's quotas), retention.py, rooms.py (workshop rooms), nodes.py and
placements.py (a cluster's nodes, and which holds a learner's lab host),
shared.py (values every node shares), steps.py (a step's state), fields.py
(checking what callers pass); schema.py (the schema, for both databases), and
the databases: sqlite.py and postgres.py (connections, migrations,
transactions; SQLite's checkpoints).
"""

from .fields import is_run_id
from .limits import NOTE_ROOM, Limits
from .steps import NOT_STARTED, PASSED, Progress, on_lab_host, passed_here, step_state
from .store import Store, open_store

__all__ = ["Store", "open_store", "Limits", "PASSED", "Progress", "is_run_id", "on_lab_host", "passed_here",
           "step_state"]
