"""A workshop's room: the learners' places in it (seated or waiting), raised
hands and the instructor's banner.

A learner who joins is seated (and then gets a lab host) while the room has
fewer than ``capacity`` seated; otherwise they wait in a queue, first come
first seated, and are seated as soon as a seated place ends: never "try later".
A place has an end (``Times``): its duration (which the learner may extend
a little, the instructor more), and an early one when the learner is idle
(no visible tab, no request, no running command) or gone (no tab open at
all), so a learner who left does not hold a place and a lab host. Each
comes with a warning first. A learner whose place ended keeps their
notebook; one who left, was idle or gone may take a place again (at the
end of the queue if the room is full) with the time they had left (the time
away counts: leaving just before the end gains nothing), one whose time ran
out or whom the instructor ended may not.

The room lives in memory, and its ``state`` is kept in the store (by the
workshop) so that a server restarted with the same access code and token
continues it: places, the queue, hands, the banner, extensions, used resume links.
Each learner's signed session cookie names them and their room, so they
go on as they come back. Every change of the room is a method marked
``@change``: made as it is on one machine, and in the store's transaction
for a room that several nodes share (shared.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from typing import Callable

from ..errors import LabnbError

SEATED, WAITING, ENDED = "seated", "waiting", "ended"
MAX_NAME = 40
MAX_MESSAGE = 500
# Why a place ended; after these a learner may not take a place again.
LEFT, IDLE, GONE, TIME_UP, BY_INSTRUCTOR, WORKSHOP_OVER = "left", "idle", "gone", "time", "instructor", "workshop"
FINAL = frozenset({TIME_UP, BY_INSTRUCTOR, WORKSHOP_OVER})
ENDINGS = {
    LEFT: "you left the workshop",
    IDLE: "you were away too long (no visible tab, no running command)",
    GONE: "no tab of yours was open for too long",
    TIME_UP: "your time in the workshop is up",
    BY_INSTRUCTOR: "the instructor ended it",
    WORKSHOP_OVER: "the workshop is over",
}


@dataclasses.dataclass(frozen=True)
class Times:
    """How long a place lasts, in seconds; 0: no such limit."""
    duration: float = 0       # from when the learner was seated
    idle: float = 0           # with no activity: a visible tab, a request, a running command
    gone: float = 0           # with no tab open and no request
    warn: float = 300         # the warning comes this long before the end
    extend: float = 900       # what the learner's "extend" adds
    extend_most: float = 1800  # what the learner may add in all

    @classmethod
    def from_settings(cls, s) -> "Times":
        return cls(s.max_minutes * 60, s.idle_minutes * 60, s.gone_minutes * 60, s.warn_minutes * 60,
                   s.extend_minutes * 60, s.extend_most_minutes * 60)


class RoomError(LabnbError, ValueError):
    """What was asked of the room is not possible; the message says why."""


@dataclasses.dataclass
class Hand:
    message: str
    raised: float
    seen: float | None = None   # when the instructor marked it seen


@dataclasses.dataclass
class Place:
    """A learner's place in the room, from their joining on: waiting, seated
    (with a lab host) or ended."""
    id: str
    name: str
    joined: float
    state: str                     # SEATED, WAITING or ENDED
    active: float                  # the learner's last activity (a request, a visible tab's event)
    seen: float                    # the last sign of any tab of theirs, visible or not
    seated: float | None = None    # when they got their place
    added: float = 0.0             # seconds the learner added to their time
    granted: float = 0.0           # seconds the instructor added (or took)
    warned: float | None = None    # the end they were last warned of
    hand: Hand | None = None
    dismissed: int = 0             # the last banner they dismissed
    ended: float | None = None
    why: str = ""                  # why their place ended (ENDINGS)
    address: str = ""              # the client address they joined from (for the instructor's eyes)
    reset: float | None = None     # when the instructor last reset their lab host: told them until dismissed

    def ending(self, times: Times, busy: bool) -> tuple[float, str] | None:
        """When the place ends and why (the soonest of its ends), or None: never."""
        ends = []
        if times.duration:
            ends.append((self.seated + times.duration + self.added + self.granted, TIME_UP))
        if not busy and times.idle:
            ends.append((self.active + times.idle, IDLE))
        if not busy and times.gone:
            ends.append((self.seen + times.gone, GONE))
        return min(ends) if ends else None

    def public(self) -> dict:
        hand = self.hand and {"message": self.hand.message, "raised": self.hand.raised, "seen": self.hand.seen}
        return {"id": self.id, "name": self.name, "joined": self.joined, "place": self.state, "seated": self.seated,
                "hand": hand, "ended": self.ended, "ended_because": ENDINGS.get(self.why),
                "extended_s": self.added + self.granted, "address": self.address}


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


def _known(cls, entry: dict) -> dict:
    """The fields of ``cls`` in ``entry`` (one saved by another version of labnb may have more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in entry.items() if k in names}


def change(method):
    """A change of the room: made within ``Room._changing`` (nothing more on one machine; for a room shared
    by several nodes, the store's transaction that loads it first and saves it after, shared.py)."""
    @functools.wraps(method)
    def changing(self, *args, **kwargs):
        with self._changing():
            return method(self, *args, **kwargs)
    return changing


class Room:
    shared = False   # its state is the workshop's to keep (Workshop._save); a SharedRoom keeps each change itself

    def __init__(self, capacity: int, times: Times = Times()):
        if capacity < 1:
            raise RoomError("a workshop's capacity (LABNB_CAPACITY) must be at least 1")
        self.capacity, self.times = capacity, times
        self.over: float | None = None       # when the instructor ended the workshop
        self._places: dict[str, Place] = {}
        self._queue: list[str] = []          # waiting learners, first come first
        self.banner: dict | None = None      # {"id", "text", "at"}
        self._last_banner = 0                # banner ids only grow: a dismissed one stays dismissed
        self._lock = threading.Lock()
        self._listeners: list[Callable[[list[str] | None], None]] = []
        self._spent: dict[str, float] = {}   # resume links used: their nonce, when
        self.queued = 0                      # joins that had to wait, the room full (for the operator's metrics)

    def on_change(self, callback: Callable[[list[str] | None], None]) -> None:
        """Call ``callback(learner_ids)`` after the room changed for them (None: for everyone)."""
        self._listeners.append(callback)

    def _changed(self, ids: list[str] | None) -> None:
        for callback in self._listeners:
            callback(ids)

    def _changing(self):
        return contextlib.nullcontext()

    # -- places ---------------------------------------------------------------
    @change
    def join(self, learner_id: str, name: str, address: str = "") -> Place:
        """Give the learner a place: seated if there is room and nobody waits before them, else waiting."""
        name = clean_name(name)
        with self._lock:
            if self.over:
                raise RoomError("this workshop is over: the instructor has ended it")
            place = self._places.get(learner_id)
            if place is not None and place.state == ENDED and place.why in FINAL:
                raise RoomError(f"your place in this workshop has ended ({ENDINGS[place.why]}) "
                                f"and cannot be taken again")
            if place is None or place.state == ENDED:
                now = time.time()
                old, place = place, Place(learner_id, name, place.joined if place else now, WAITING, now, now,
                                             address=address)
                if old is not None and old.seated is not None:   # back: with the time they had left
                    place.seated, place.added, place.granted = old.seated, old.added, old.granted
                    ending = place.ending(self.times, busy=True)
                    if ending is not None and ending[0] <= now:
                        raise RoomError(f"your place in this workshop has ended ({ENDINGS[TIME_UP]}) "
                                        f"and cannot be taken again")
                self._places[learner_id] = place
                self._queue.append(learner_id)
                self._promote()
                if place.state == WAITING:
                    self.queued += 1
        self._changed([learner_id])
        return place

    def get(self, learner_id: str) -> Place | None:
        with self._lock:
            return self._places.get(learner_id)

    def position(self, learner_id: str) -> int:
        """The learner's place in the queue, from 1 (0: not waiting)."""
        with self._lock:
            return self._queue.index(learner_id) + 1 if learner_id in self._queue else 0

    @change
    def end(self, learner_id: str, why: str) -> list[str]:
        """End the learner's place (or their wait) for reason ``why``; returns
        who was seated in the place it freed. Their lab host is the caller's to destroy."""
        with self._lock:
            seated = self._end(learner_id, why)
        self._changed([learner_id, *seated])
        return seated

    def _end(self, learner_id: str, why: str) -> list[str]:
        place = self._places.get(learner_id)
        if place is None:
            raise RoomError("there is no such learner in this workshop")
        if place.state == ENDED:
            return []
        if place.state == WAITING:
            self._queue.remove(learner_id)
        place.state, place.ended, place.hand, place.why = ENDED, time.time(), None, why
        return self._promote()

    @change
    def close(self) -> list[str]:
        """End the workshop: every place and wait ends, nobody may join; returns who had a place."""
        with self._lock:
            self.over = time.time()
            ids = [p.id for p in self._places.values() if p.state != ENDED]
            for learner_id in ids:
                self._end(learner_id, WORKSHOP_OVER)
        self._changed(None)
        return ids

    def _promote(self) -> list[str]:
        seated, now = [], time.time()
        while self._queue and self._seated() < self.capacity:
            place = self._places[self._queue.pop(0)]
            place.state, place.active, place.seen = SEATED, now, now
            place.seated = place.seated or now   # the first time, or back with their time so far
            seated.append(place.id)
        return seated

    # -- time -------------------------------------------------------------------
    def due(self, busy) -> bool:
        """Whether a place's end or warning has come (``expire`` has something to do): a read, cheap."""
        with self._lock:
            return any(self._due(busy))

    def _due(self, busy) -> tuple[list[tuple[str, str]], list[tuple[Place, float]]]:
        """The places whose end has come ([(learner, why)]) and those to warn now ([(place, of which end)])."""
        now, ended, warn = time.time(), [], []
        for place in [p for p in self._places.values() if p.state == SEATED]:
            ending = place.ending(self.times, busy(place.id))
            if ending is None:
                continue
            when, why = ending
            if now >= when:
                ended.append((place.id, why))
            elif now >= when - self.times.warn and place.warned != when:
                warn.append((place, when))
        return ended, warn

    @change
    def expire(self, busy) -> tuple[list[tuple[str, str]], list[str]]:
        """End the places whose end has come and find those to warn now:
        ([(learner, why)], [learner]). ``busy(learner)``: a command of theirs runs; asked under the room's lock,
        so it must take no lock of its own (Workshop.expire asks the learners first)."""
        with self._lock:
            ended, due = self._due(busy)
            for place, when in due:
                place.warned = when
            warn = [place.id for place, _ in due]
            seated = [s for learner_id, why in ended for s in self._end(learner_id, why)]
        if ended or warn:
            self._changed([learner_id for learner_id, _ in ended] + warn + seated)
        return ended, warn

    def time_left(self, place: Place, busy: bool) -> dict:
        """What the learner's countdown shows: the time left of their place's
        duration, and its soonest end (it may come early, when idle or gone):
        in how long, why, whether to warn now, and what the learner may add."""
        now = time.time()
        time_up = place.seated + self.times.duration + place.added + place.granted if self.times.duration else None
        out = {"time_left_s": None if time_up is None else round(max(0.0, time_up - now)),
               "ends_in_s": None, "why": None, "warn": False, "can_extend_s": 0}
        ending = place.ending(self.times, busy)
        if ending is not None:
            when, why = ending
            out.update(ends_in_s=round(max(0.0, when - now)), why=why, warn=when - now <= self.times.warn)
            if why == TIME_UP:
                out["can_extend_s"] = max(0.0, min(self.times.extend, self.times.extend_most - place.added))
        return out

    @change
    def extend(self, learner_id: str, seconds: float | None = None) -> None:
        """Add to a learner's time: the learner's own ``extend`` (None) within
        ``Times.extend_most``, or the instructor's ``seconds`` (no limit; negative shortens)."""
        place = self._seated_place(learner_id)
        with self._lock:
            if seconds is None:
                add = min(self.times.extend, self.times.extend_most - place.added)
                if add <= 0 or not self.times.duration:
                    raise RoomError("your time cannot be extended further: ask the instructor")
                place.added += add
            else:
                place.granted += seconds
        self._changed([learner_id])

    def _seated(self) -> int:
        return sum(1 for p in self._places.values() if p.state == SEATED)

    def spent(self, nonce: str) -> bool:
        """Whether a resume link's nonce is used (or none)."""
        with self._lock:
            return not nonce or nonce in self._spent

    @change
    def spend(self, nonce: str, valid_for: float) -> bool:
        """Use a resume link's nonce: True the first time only. Links are valid
        for ``valid_for`` seconds, so nonces spent longer ago are forgotten."""
        now = time.time()
        with self._lock:
            self._spent = {n: at for n, at in self._spent.items() if now - at < valid_for}
            if not nonce or nonce in self._spent:
                return False
            self._spent[nonce] = now
            return True

    def touch(self, learner_id: str, active: bool = True) -> None:
        """A sign of the learner: ``active`` (a request, a visible tab), or only that a tab of theirs is open."""
        with self._lock:
            place = self._places.get(learner_id)
            if place is not None:
                place.seen = time.time()
                if active:
                    place.active = place.seen

    # -- hands ------------------------------------------------------------------
    @change
    def raise_hand(self, learner_id: str, message: str) -> None:
        message = clean_message(message)
        self._seated_place(learner_id).hand = Hand(message, time.time())
        self._changed([learner_id])

    @change
    def lower_hand(self, learner_id: str) -> None:
        self._seated_place(learner_id).hand = None
        self._changed([learner_id])

    @change
    def see_hand(self, learner_id: str) -> None:
        """The instructor has seen the learner's hand (and comes to help)."""
        hand = self._seated_place(learner_id).hand
        if hand is None:
            raise RoomError("that learner's hand is not raised")
        hand.seen = hand.seen or time.time()
        self._changed([learner_id])

    def _seated_place(self, learner_id: str) -> Place:
        place = self.get(learner_id)
        if place is None or place.state != SEATED:
            raise RoomError("that learner has no place in the room now")
        return place

    # -- the instructor's reset ------------------------------------------------------
    @change
    def note_reset(self, learner_id: str) -> None:
        """The instructor reset the learner's lab host: their page says so (its state is new) until dismissed."""
        self._seated_place(learner_id).reset = time.time()

    @change
    def dismiss_reset(self, learner_id: str) -> None:
        place = self.get(learner_id)
        if place is not None:
            place.reset = None

    # -- the banner ---------------------------------------------------------------
    @change
    def broadcast(self, text: str) -> None:
        text = clean_message(text)
        if not text:
            raise RoomError("type the message to show every learner")
        with self._lock:
            self._last_banner += 1
            self.banner = {"id": self._last_banner, "text": text, "at": time.time()}
        self._changed(None)

    @change
    def clear_banner(self) -> None:
        self.banner = None
        self._changed(None)

    def banner_for(self, learner_id: str) -> dict | None:
        """The banner the learner has not dismissed yet."""
        place, banner = self.get(learner_id), self.banner
        if banner is None or place is None or place.dismissed >= banner["id"]:
            return None
        return banner

    @change
    def dismiss(self, learner_id: str, banner_id: int) -> None:
        place = self.get(learner_id)
        if place is not None:
            place.dismissed = max(place.dismissed, banner_id)

    # -- across restarts ------------------------------------------------------------
    def state(self, signs: bool = False) -> dict:
        """All the room holds, as JSON data (``restore`` takes it back), but the
        learners' last signs, which change with every request and which a
        restore sets anew (with ``signs``: those too, for a room that nodes share)."""
        with self._lock:
            places = [dataclasses.asdict(p) for p in self._places.values()]
            for p in places:
                if not signs:
                    del p["active"], p["seen"]
                p["place"] = p.pop("state")
            # Saved as the first versions did ("members", each with its "place"): a
            # room saved before a restart or an upgrade is read back the same.
            return {"over": self.over, "banner": self.banner, "last_banner": self._last_banner,
                    "queue": list(self._queue), "spent": dict(self._spent), "members": places}

    def restore(self, state: dict) -> None:
        """Continue the room ``state`` describes (an empty room's ``state()`` of
        before a restart). The time the server was down counts against the
        places' durations but not as anyone's idleness or absence: the
        learners' last signs are now. In a room restarted larger, those who
        waited are seated. A state it cannot read raises (TypeError, ValueError, KeyError)
        and leaves the room empty."""
        self._adopt(state, time.time())
        with self._lock:
            self._promote()

    def _adopt(self, state: dict, now: float | None) -> None:
        """Take ``state`` as the room's, the learners' last signs ``now`` (None: as saved, or now)."""
        places, at = {}, time.time()
        for entry in state.get("members", []):   # state()'s saved names
            hand = entry.get("hand")
            signs = ({"active": now, "seen": now} if now is not None else
                     {"active": float(entry.get("active", at)), "seen": float(entry.get("seen", at))})
            place = Place(**{**_known(Place, entry), "state": entry["place"], **signs,
                             "hand": Hand(**_known(Hand, hand)) if hand else None})
            places[place.id] = place
        queue = [i for i in state.get("queue", []) if places.get(i) and places[i].state == WAITING]
        spent = {n: float(at) for n, at in state.get("spent", {}).items()}
        last_banner = float(state.get("last_banner", 0))
        with self._lock:   # all read: only now is anything of the room changed
            self._places, self._queue, self._spent, self._last_banner = places, queue, spent, last_banner
            self.over, self.banner = state.get("over"), state.get("banner")

    def places(self) -> list[Place]:
        """Everyone who joined, in the order they joined (copies)."""
        with self._lock:
            return [dataclasses.replace(p, hand=p.hand and dataclasses.replace(p.hand))
                    for p in sorted(self._places.values(), key=lambda p: p.joined)]

    def counts(self) -> dict:
        with self._lock:
            return {"capacity": self.capacity, "seated": self._seated(), "waiting": len(self._queue)}
