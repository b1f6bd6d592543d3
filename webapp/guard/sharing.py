"""Something costly a page asks of a lab host (its network picture, its ports), read once and shared.

Each asker holds a server thread, and a tab may ask in a loop, or a lab host be made slow to read: so at
most one read per key at a time (and ``most`` in all), at most one per ``interval`` (or ``cooldown`` times
as long as the last read took), and nobody waits for one. Askers meanwhile get the last result, marked
not fresh; with none yet, ``Busy``.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")
KEEP = 60   # seconds a result is kept for a key nobody asks about


class Busy(Exception):
    """Nothing to give now: a read is under way and there is no result yet to share."""


class Sharing:
    def __init__(self, interval: float, cooldown: float = 0, most: int = 0):
        self.interval, self.cooldown = interval, cooldown
        self._lock = threading.Lock()
        self._reading: set[str] = set()
        self._last: dict[str, tuple[float, float, object]] = {}   # key: (when read, how long it took, result)
        self._readers = threading.BoundedSemaphore(most) if most else None

    def get(self, key: str, read: Callable[[], T], busy: str) -> tuple[T, bool]:
        """The result for ``key`` and whether it was read just now (``busy``: why there is none, if so)."""
        with self._lock:
            now = time.monotonic()
            self._last = {k: v for k, v in self._last.items() if now - v[0] < KEEP}
            last = self._last.get(key)
            if last and now - last[0] < max(self.interval, self.cooldown * last[1]) or key in self._reading:
                return _shared(last, busy)
            self._reading.add(key)
        try:
            if self._readers is not None and not self._readers.acquire(blocking=False):
                return _shared(last, busy)
            try:
                started = time.monotonic()
                result = read()
            finally:
                if self._readers is not None:
                    self._readers.release()
            with self._lock:
                self._last[key] = (time.monotonic(), time.monotonic() - started, result)
            return result, True
        finally:
            with self._lock:
                self._reading.discard(key)

    def known(self) -> set[str]:
        """The keys whose result is kept."""
        with self._lock:
            return set(self._last)


def _shared(last, busy: str):
    if last is None:
        raise Busy(busy)
    return last[2], False
