"""Run store benchmark: appends per second on SQLite and on PostgreSQL, one writer and several, through
``Store`` alone (no server, no lab host).

PostgreSQL is a real server of the benchmark's own (tests/pg_support.py, loopback), with fsync and
synchronous commits on, as in production; "2 nodes" is two Store objects on one database, as two labnb
nodes are. Each writer appends to runs of a learner of its own (far from every limit: the quotas' shared
lock), then, with ``near``, all of them within a store whose limit is nearly met (the exclusive lock).

    python bench/store.py [SECONDS_PER_CASE]

The last line printed is one JSON object with the numbers (appends/s).
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg_support import Postgres  # noqa: E402

from webapp.store import Limits, Store  # noqa: E402

SIZES = {"100B": 100, "4KiB": 4096, "64KiB": 65536}


def appends_per_s(stores: list[Store], writers: int, size: int, seconds: float) -> float:
    """Appends of ``size`` bytes per second by ``writers`` threads on each store, for ``seconds``."""
    data, done, stop = b"x" * size, [], time.monotonic() + seconds
    start = threading.Barrier(len(stores) * writers)

    def write(store: Store, name: str) -> None:
        n, seq, run = 0, 0, None
        start.wait()
        while time.monotonic() < stop:
            if run is None or seq == 200:          # a run's cap is not what is measured: a new run now and then
                if run is not None:
                    store.finish_run(run, "done", exit_code=0)
                run, seq = store.start_run(name, "bench", f"s{n}", "yes", None), 0
            store.append_chunk(run, seq, data)
            seq, n = seq + 1, n + 1
        done.append(n)
    threads = [threading.Thread(target=write, args=(s, f"w{i}-{j}")) for i, s in enumerate(stores)
               for j in range(writers)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - began)


def cases(fresh, seconds: float, two_nodes: bool) -> dict:
    """Every case on a fresh database of its own (``fresh()``, a context manager giving where it is)."""
    far = Limits(run=1 << 30, learner=1 << 30, total=1 << 40)
    near = Limits(run=1 << 20, learner=64 << 20, total=96 << 20)   # within the quota's margin: exclusive
    plan = [(f"1 writer {label}", far, 1, 1, size) for label, size in SIZES.items()]
    plan += [("8 writers 4KiB", far, 1, 8, 4096)]
    plan += [("2 nodes x 4 writers 4KiB", far, 2, 4, 4096)] if two_nodes else []
    plan += [("8 writers 4KiB near the store's limit", near, 1, 8, 4096)]
    out = {}
    for case, limits, nodes, writers, size in plan:
        with fresh() as where, ExitStack() as stores:
            opened = [stores.enter_context(Store(where, limits)) for _ in range(nodes)]
            out[case] = round(appends_per_s(opened, writers, size, seconds))
    return out


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        n = iter(range(100))
        result["sqlite"] = cases(lambda: nullcontext(Path(tmp) / f"s{next(n)}.db"), seconds, False)
    pg = Postgres(durable=True).start()
    try:
        result["postgres"] = cases(pg.database, seconds, True)
    finally:
        pg.stop()
    for db, numbers in result.items():
        for case, rate in numbers.items():
            print(f"{db:9} {case:40} {rate:8,} appends/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
