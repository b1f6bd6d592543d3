"""A workshop's room: who is in it, who waits for a place, raised hands and
the instructor's banner.

A learner who joins gets a place (and then a lab host) while the room has
fewer than ``capacity`` seated; otherwise they wait in a queue, first come
first seated, and are seated as soon as a place frees: never "try later".
A learner whose place ended (they left, or the instructor ended it) keeps
their notebook and may not take a place again, so a room cannot be
overfilled by leaving and rejoining.

The room lives in memory. Each learner's signed session cookie names them
and their room, so after a server restart they are seated again as they
come back (``join`` with the name from their cookie).
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Callable

SEATED, WAITING, ENDED = "seated", "waiting", "ended"
MAX_NAME = 40
MAX_MESSAGE = 500


class RoomError(ValueError):
    """What was asked of the room is not possible; the message says why."""


@dataclasses.dataclass
class Hand:
    message: str
    raised: float
    seen: float | None = None   # when the instructor marked it seen


@dataclasses.dataclass
class Member:
    id: str
    name: str
    joined: float
    place: str
    active: float                  # the learner's last request or event
    hand: Hand | None = None
    dismissed: int = 0             # the last banner they dismissed
    ended: float | None = None

    def public(self) -> dict:
        hand = self.hand and {"message": self.hand.message, "raised": self.hand.raised, "seen": self.hand.seen}
        return {"id": self.id, "name": self.name, "joined": self.joined, "place": self.place,
                "last_request": self.active, "hand": hand, "ended": self.ended}


def clean_name(raw: str) -> str:
    """A display name: printable, spaces collapsed, 1 to MAX_NAME characters."""
    name = " ".join("".join(ch for ch in raw if ch.isprintable()).split())
    if not name:
        raise RoomError("type a name to show the instructor (your first name will do)")
    if len(name) > MAX_NAME:
        raise RoomError(f"a name has at most {MAX_NAME} characters")
    return name


def clean_message(raw: str) -> str:
    message = " ".join("".join(ch if ch.isprintable() else " " for ch in raw).split())
    if len(message) > MAX_MESSAGE:
        raise RoomError(f"a message has at most {MAX_MESSAGE} characters")
    return message


class Room:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise RoomError("a workshop's capacity (LABNB_CAPACITY) must be at least 1")
        self.capacity = capacity
        self._members: dict[str, Member] = {}
        self._queue: list[str] = []          # waiting learners, first come first
        self.banner: dict | None = None      # {"id", "text", "at"}
        self._banner_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[list[str] | None], None]] = []

    def on_change(self, callback: Callable[[list[str] | None], None]) -> None:
        """Call ``callback(learner_ids)`` after the room changed for them (None: for everyone)."""
        self._listeners.append(callback)

    def _changed(self, ids: list[str] | None) -> None:
        for callback in self._listeners:
            callback(ids)

    # -- places ---------------------------------------------------------------
    def join(self, learner_id: str, name: str) -> Member:
        """Seat the learner if there is a place and nobody waits before them, else queue them."""
        name = clean_name(name)
        with self._lock:
            member = self._members.get(learner_id)
            if member is None:
                now = time.time()
                free = self._seated() < self.capacity and not self._queue
                member = Member(learner_id, name, now, SEATED if free else WAITING, now)
                self._members[learner_id] = member
                if not free:
                    self._queue.append(learner_id)
        self._changed([learner_id])
        return member

    def get(self, learner_id: str) -> Member | None:
        with self._lock:
            return self._members.get(learner_id)

    def position(self, learner_id: str) -> int:
        """The learner's place in the queue, from 1 (0: not waiting)."""
        with self._lock:
            return self._queue.index(learner_id) + 1 if learner_id in self._queue else 0

    def end(self, learner_id: str) -> list[str]:
        """End the learner's place (or their wait); returns who was seated in
        the place it freed. Their lab host is the caller's to destroy."""
        with self._lock:
            member = self._members.get(learner_id)
            if member is None:
                raise RoomError("there is no such learner in this workshop")
            if member.place == ENDED:
                return []
            if member.place == WAITING:
                self._queue.remove(learner_id)
            member.place, member.ended, member.hand = ENDED, time.time(), None
            seated = self._promote()
        self._changed([learner_id, *seated])
        return seated

    def _promote(self) -> list[str]:
        seated = []
        while self._queue and self._seated() < self.capacity:
            learner_id = self._queue.pop(0)
            self._members[learner_id].place = SEATED
            seated.append(learner_id)
        return seated

    def _seated(self) -> int:
        return sum(1 for m in self._members.values() if m.place == SEATED)

    def touch(self, learner_id: str) -> None:
        with self._lock:
            member = self._members.get(learner_id)
            if member is not None:
                member.active = time.time()

    # -- hands ------------------------------------------------------------------
    def raise_hand(self, learner_id: str, message: str) -> None:
        message = clean_message(message)
        self._seated_member(learner_id).hand = Hand(message, time.time())
        self._changed([learner_id])

    def lower_hand(self, learner_id: str) -> None:
        self._seated_member(learner_id).hand = None
        self._changed([learner_id])

    def see_hand(self, learner_id: str) -> None:
        """The instructor has seen the learner's hand (and comes to help)."""
        hand = self._seated_member(learner_id).hand
        if hand is None:
            raise RoomError("that learner's hand is not raised")
        hand.seen = hand.seen or time.time()
        self._changed([learner_id])

    def _seated_member(self, learner_id: str) -> Member:
        member = self.get(learner_id)
        if member is None or member.place != SEATED:
            raise RoomError("only a learner in the room has a hand to raise")
        return member

    # -- the banner ---------------------------------------------------------------
    def broadcast(self, text: str) -> None:
        text = clean_message(text)
        if not text:
            raise RoomError("type the message to show every learner")
        self.banner = {"id": next(self._banner_ids), "text": text, "at": time.time()}
        self._changed(None)

    def clear_banner(self) -> None:
        self.banner = None
        self._changed(None)

    def banner_for(self, learner_id: str) -> dict | None:
        """The banner the learner has not dismissed yet."""
        member, banner = self.get(learner_id), self.banner
        if banner is None or member is None or member.dismissed >= banner["id"]:
            return None
        return banner

    def dismiss(self, learner_id: str, banner_id: int) -> None:
        member = self.get(learner_id)
        if member is not None:
            member.dismissed = max(member.dismissed, banner_id)

    def members(self) -> list[Member]:
        """Everyone who joined, in the order they joined (copies)."""
        with self._lock:
            return [dataclasses.replace(m, hand=m.hand and dataclasses.replace(m.hand))
                    for m in sorted(self._members.values(), key=lambda m: m.joined)]

    def counts(self) -> dict:
        with self._lock:
            return {"capacity": self.capacity, "seated": self._seated(), "waiting": len(self._queue)}
