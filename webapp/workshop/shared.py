"""A room that several nodes share through the store (PostgreSQL): each
change (a join, a seat, the queue, an end, an extension, a hand, the banner,
a resume link, a reset notice: room.py's ``@change`` methods) is one
transaction, ``store.room_tx``, that loads the room's state with its row
locked, applies the change with room.py's own logic and saves it: two nodes
never seat the same place twice, and the queue keeps one order, as the row
lock makes them take turns. The ends of places whose time is up
(``expire``) are changes too, so whichever node runs them, one runs them
at a time on the state as it is.

Reads (every request's admission, the pages, the dashboard) are of this
node's copy, loaded again when it is older than STALE seconds, at once
after a change made here, and when another node says the room changed (the
workshop's note over Redis, ``invalidate``): a read may be STALE s behind
another node's change only if that note was lost.

The learners' last signs (a request, a visible tab: ``touch``) come with
nearly every request; they are kept here and merged into the state (the later
of both) by this node's next transaction, which the workshop makes at least
every SIGNS_EVERY s while there are some (``keep_signs``): another node
that ends idle places sees them that late at most, against limits of minutes.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time

from .room import Room, Times, change

STALE = 1.0          # seconds a read may use this node's copy of the room without loading it again
SIGNS_EVERY = 5.0    # seconds the learners' signs may wait here before a transaction saves them


class SharedRoom(Room):
    """A Room whose state is the store's row ``key`` (``store.room_tx``, ``store.room``)."""

    shared = True

    def __init__(self, capacity: int, times: Times, store, key: str):
        super().__init__(capacity, times)
        self.store, self.key = store, key
        self._tx_lock = threading.Lock()    # this node's transactions one at a time; a reload waits for none
        self._in_tx = threading.local()     # a change made within another (this thread's) joins its transaction
        self._fresh_until = 0.0             # monotonic: the copy may be read without loading it until then
        self._signs: dict[str, tuple[float, float]] = {}   # learner: (active, seen) not saved yet
        self._signs_since: float | None = None             # when the oldest of them came

    # -- changes ------------------------------------------------------------------
    @contextlib.contextmanager
    def _changing(self):
        if getattr(self._in_tx, "pending", None) is not None:
            yield
            return
        self._in_tx.pending = pending = []   # what _changed heard, told once the change is saved
        try:
            with self._tx_lock, self.store.room_tx(self.key) as tx:
                signs = dict(self._signs)
                self._load(tx.state)
                yield
                tx.state = json.dumps(self.state(signs=True), sort_keys=True)
            for learner_id, sign in signs.items():   # saved: forget those no newer one replaced
                if self._signs.get(learner_id) == sign:
                    del self._signs[learner_id]
            self._signs_since = time.monotonic() if self._signs else None
            self._fresh_until = time.monotonic() + STALE
        except BaseException:
            self._fresh_until = 0.0   # the copy may hold a change that was not saved: load it again
            raise
        finally:
            self._in_tx.pending = None
        for ids in pending:
            super()._changed(ids)

    def _changed(self, ids: list[str] | None) -> None:
        pending = getattr(self._in_tx, "pending", None)
        if pending is None:
            super()._changed(ids)
        else:
            pending.append(ids)

    def _load(self, saved: str | None) -> None:
        """This node's copy becomes ``saved`` (none: an empty room), with the signs not saved yet."""
        self._adopt(json.loads(saved) if saved else {}, None)
        with self._lock:
            for learner_id, (active, seen) in list(self._signs.items()):
                place = self._places.get(learner_id)
                if place is not None:
                    place.active, place.seen = max(place.active, active), max(place.seen, seen)

    def resume(self) -> None:
        """As a restarted server continues its room (``Room.restore``): the learners' signs are now (the time
        this node was down is nobody's idleness), and a room now larger seats who waited."""
        with self._changing():
            now = time.time()
            with self._lock:
                for place in self._places.values():
                    place.active = place.seen = now
                self._promote()

    @change
    def keep_signs(self) -> None:
        """Save the learners' signs kept here (the transaction itself does)."""

    def signs_due(self) -> bool:
        since = self._signs_since
        return since is not None and time.monotonic() - since >= SIGNS_EVERY

    def touch(self, learner_id: str, active: bool = True) -> None:
        super().touch(learner_id, active)
        place = self._places.get(learner_id)
        if place is not None:
            self._signs[learner_id] = (place.active, place.seen)
            if self._signs_since is None:
                self._signs_since = time.monotonic()

    # -- reads ----------------------------------------------------------------------
    def invalidate(self) -> None:
        """Another node changed the room: the next read loads it."""
        self._fresh_until = 0.0

    def _fresh(self) -> None:
        """Load the room again if this copy is older than STALE s, unless a change of this node is being made
        (it loads and saves it anyway; a read does not wait for it)."""
        if time.monotonic() < self._fresh_until or getattr(self._in_tx, "pending", None) is not None:
            return
        if not self._tx_lock.acquire(blocking=False):
            return
        try:
            self._load(self.store.room(self.key))
            self._fresh_until = time.monotonic() + STALE
        finally:
            self._tx_lock.release()

    def get(self, learner_id: str):
        self._fresh()
        return super().get(learner_id)

    def position(self, learner_id: str) -> int:
        self._fresh()
        return super().position(learner_id)

    def places(self):
        self._fresh()
        return super().places()

    def counts(self) -> dict:
        self._fresh()
        return super().counts()

    def spent(self, nonce: str) -> bool:
        self._fresh()
        return super().spent(nonce)

    def banner_for(self, learner_id: str):
        self._fresh()
        return super().banner_for(learner_id)

    def due(self, busy) -> bool:
        self._fresh()
        return super().due(busy)
