"""Workshops: an instructor (the operator), a room of learners who join with
an access code and a name, and the instructor's live view of the room.

``RoomAdmission`` decides who may use the learner pages and events now (the
room's admission policy, checked on every HTTP request, WebSocket upgrade and
Socket.IO event of a learner, and where a lab host is claimed). ``Workshop``
ties the room (room.py) to the rest of the server: it destroys the lab host of a learner whose place ends, and keeps the
instructor's dashboards current: whenever a run starts or ends or the room
changes, the state (``snapshot``, also ``GET /api/workshop``) is pushed to
every instructor tab, at most every PUSH_EVERY seconds, and each learner
concerned is told to refresh their part of the page. The same thread ends
the places whose time is up (at least every REFRESH_EVERY seconds) and
keeps the room's state in the store, by the marks of its access code and
of the learners' token: a server restarted with both the same continues
the room where it was (with another token, every learner is signed out, and
the room starts empty).

Past one machine (``LABNB_NODE``, docs/cluster.md) the room is one for every
node (shared.py), and so is the dashboard: each node's push loop shows every
learner, their lab host's state from the store's placements (which node holds
it, starting, ready or failed; this node writes those of its own learners),
and pushes to its own instructor tabs only. What changes here is told to the
other nodes over Redis (the bus's ``changed`` note: they load the room again
and push), and what must happen on the node that holds a learner's lab host
goes there: the instructor's reset and catch-up (the bus's ``ask``); an end
(the instructor's, the learner's leave, their time up, whichever node ended
it) is made on that node by its own loop, which ends the lab host of every
learner of its own whose place ended. An extension is the room's only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time

from flask import has_request_context, session
from flask_socketio import join_room

from ..errors import ConfigError, LabnbError
from ..guard.auth import is_operator, token_mark
from ..guard.limits import lab_hosts_that_fit
from ..runs import CatchUps, RunError
from ..store import step_state
from ..stream.protocol import emit
from .facts import early_end, failing
from .room import BY_INSTRUCTOR, ENDED, ENDINGS, SEATED, WAITING, Room, RoomError

log = logging.getLogger(__name__)

__all__ = ["Workshop", "RoomAdmission", "Room", "RoomError", "new_access_code", "size_for_room"]

PUSH_EVERY = 0.25     # seconds: changes meanwhile go in one push to the dashboards (a room's state is a few
                      # hundred runs: pushing it on every run's start and end would take the server's CPU)
REFRESH_EVERY = 5.0   # seconds: the dashboards' idle times and lab host states move on by themselves
INSTRUCTORS, LEARNERS = "workshop:instructors", "workshop:learners"   # channels (Socket.IO rooms)
# a placement's states (the store's placements: which node holds a learner's lab host)
PLACED_STARTING, PLACED_READY, PLACED_FAILED = "starting", "ready", "failed"
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i to misread on a projector


def new_access_code() -> str:
    """Ten letters and digits, as two groups of five: about 50 bits, and
    wrong guesses are limited per address (LABNB_JOIN_ATTEMPTS)."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"{code[:5]}-{code[5:]}"


HEADROOM = 2   # lab hosts beyond a room's places: the instructor's own and a learner's being reset


def size_for_room(settings, given: frozenset[str], total_mb: int | None = None, hosts: int = 1):
    """The settings for a room whose learners get a lab host at once, and a line saying how its capacity
    was chosen. The warm pool holds one for each place, and HEADROOM more lab hosts may exist, unless
    LABNB_POOL_SIZE or LABNB_MAX_LAB_HOSTS were ``given``. A whole room may join from one address (a NAT),
    twice over.

    A capacity not ``given`` is the default, or as many places as there are lab hosts for: as many as
    LABNB_MAX_LAB_HOSTS if given, and as fit ``total_mb`` of memory (None: not limited by it, the plain
    backend's lab hosts have no memory limit of their own), HEADROOM of them kept beyond the places where
    there are enough. A capacity given that does not fit is a ConfigError.

    ``hosts``: lab hosts per learner (the most a served lab names, ``hosts:``): places, the pool and the
    headroom count in sets of that many."""
    every = None if total_mb is None else lab_hosts_that_fit(settings, total_mb)
    fits = None if every is None else every // hosts   # learners' sets
    sets = "" if hosts == 1 else f" ({fits} learners' sets of {hosts}: the labs' hosts)"
    memory = (f"{every} lab hosts of {settings.memory_mb} MiB (LABNB_MEMORY_MB) fit this machine's {total_mb} MiB "
              f"beside the server's {settings.server_memory_mb} MiB (LABNB_SERVER_MEMORY_MB){sets}")
    if settings.node:
        return _size_node(settings, given, fits, memory, hosts)
    bounds = [(fits, memory)] if fits is not None else []
    if "max_lab_hosts" in given:
        bounds.append((settings.max_lab_hosts // hosts, f"LABNB_MAX_LAB_HOSTS is {settings.max_lab_hosts}"))
    most, why = min(bounds, default=(None, ""))
    if "capacity" in given:
        if fits is not None and fits < settings.capacity:
            needs = settings.capacity * hosts   # every place a set of the labs' hosts
            raise ConfigError("LABNB_CAPACITY", f"a room of {settings.capacity} places (--capacity, LABNB_CAPACITY) "
                              f"needs {'as many' if hosts == 1 else needs} lab hosts, but {memory}",
                              f"Lower the capacity to at most {fits}, or LABNB_MEMORY_MB to at most "
                              f"{max(total_mb - settings.server_memory_mb, 0) // needs}")
        note = f"room capacity {settings.capacity}, as set"
    elif most is not None and most < settings.capacity + HEADROOM:
        settings = dataclasses.replace(settings, capacity=max(1, most - HEADROOM))
        note = (f"room capacity {settings.capacity}: {why}, {most - settings.capacity} of them kept for the "
                "instructor's own and one being reset; set --capacity (LABNB_CAPACITY) to choose")
    else:
        note = f"room capacity {settings.capacity}, the default; set --capacity (LABNB_CAPACITY) to choose"
    sized = {}
    if "pool_size" not in given:
        sized["pool_size"] = settings.capacity * hosts
    if "max_lab_hosts" not in given:   # the headroom, as far as the memory has room for it
        lab_hosts = settings.capacity + HEADROOM
        sized["max_lab_hosts"] = hosts * (lab_hosts if fits is None else max(settings.capacity, min(lab_hosts, fits)))
    if "new_learners_per_address" not in given:   # a classroom behind one NAT address
        sized["new_learners_per_address"] = max(settings.new_learners_per_address, 2 * settings.capacity)
    settings = dataclasses.replace(settings, **sized)
    if settings.max_lab_hosts < settings.capacity * hosts:
        raise ConfigError("LABNB_MAX_LAB_HOSTS", f"a workshop for {settings.capacity} learners (LABNB_CAPACITY) "
                          f"needs {'as many' if hosts == 1 else settings.capacity * hosts} lab hosts, but "
                          f"LABNB_MAX_LAB_HOSTS is {settings.max_lab_hosts}",
                          "Raise LABNB_MAX_LAB_HOSTS or lower the capacity")
    return settings, note


def _size_node(settings, given: frozenset[str], fits: int | None, memory: str, hosts: int):
    """A cluster node's share of a room that spans the nodes (docs/cluster.md): as many lab hosts as fit its
    machine (or LABNB_MAX_LAB_HOSTS), its warm pool as many of them as the room has places. No node need
    hold the whole room: HAProxy sends new learners where the nodes' agent-checks say there is room, and the
    room's queue holds the rest."""
    sized = {}
    if "max_lab_hosts" not in given and fits is not None:
        sized["max_lab_hosts"] = fits * hosts
    most = sized.get("max_lab_hosts", settings.max_lab_hosts)
    if "pool_size" not in given:
        sized["pool_size"] = min(settings.capacity * hosts, most)
    if "new_learners_per_address" not in given:   # a classroom behind one NAT address
        sized["new_learners_per_address"] = max(settings.new_learners_per_address, 2 * settings.capacity)
    why = memory if "max_lab_hosts" in sized else f"LABNB_MAX_LAB_HOSTS is {most}"
    return dataclasses.replace(settings, **sized), (f"room capacity {settings.capacity} over the cluster's nodes; "
                                                    f"this node holds at most {most} lab hosts: {why}")


def code_mark(code: str) -> str:
    """What a learner's cookie holds of the room they joined: a cookie of another workshop is worthless here."""
    return hashlib.sha256(f"labnb-room:{code}".encode()).hexdigest()[:32]


def room_key(code: str, token: str) -> str:
    """The room's key in the store: a server restarted with the same access code and learners' token
    continues it, and the nodes of a cluster (given both the same) share it."""
    return hashlib.sha256(f"{code_mark(code)}:{token_mark(token)}".encode()).hexdigest()[:32]


class RoomAdmission:
    """A workshop room's admission (guard/admission.py): the instructor always, a learner while seated."""

    def __init__(self, room: Room, mark: str, operator_mark: str, store=None, node: str = ""):
        self.room, self.mark, self.operator_mark = room, mark, operator_mark
        self.store, self.node = store, node   # a cluster's node: which node holds a learner's lab host

    def refusal(self, active: bool = True) -> str | None:
        """Why this request's learner may not use learner pages and events now
        (None: they may): the instructor always may, a learner only while
        seated. It is a sign of them, ``active`` or only of an open tab."""
        if is_operator(self.operator_mark):
            return None
        place = self.place()
        if place is None:
            return "you have not joined this workshop: open its join URL"
        if place.state == WAITING:
            return "the workshop is full and you are in the queue for a place: keep the join page open"
        if place.state == ENDED:
            return f"your place in this workshop has ended: {ENDINGS[place.why]} (your notebook is kept)"
        self.room.touch(place.id, active)
        return None

    def admits(self, learner_id: str) -> str | None:
        """Why the learner may not get a lab host now: only a seated learner (or the instructor) may.
        Checked where a lab host is claimed, so no path that raced a leave, an end or an expiry gets one."""
        place = self.room.get(learner_id)
        if place is not None and place.state == SEATED:
            return self._placed_here(learner_id)
        if (place is None and has_request_context() and is_operator(self.operator_mark)
                and session.get("learner") == learner_id):
            return None   # the instructor's own lab host
        return "you have no place in this workshop now: open its join URL"

    def _placed_here(self, learner_id: str) -> str | None:
        """In a cluster: the learner's lab host is made here, unless another node holds one for them (or
        makes it: the instructor on this node watching them must not start a second); the store's placement
        says so at once, for the commands other nodes route to the learner's node."""
        if not self.node:
            return None
        placed = self.store.placement(learner_id)
        if placed is not None and placed["node"] != self.node and placed["state"] in (PLACED_STARTING, PLACED_READY):
            return (f"this learner's lab host is held by node {placed['node']}: node {self.node} makes no second "
                    f"one (their own pages and the instructor's actions reach it there)")
        self.store.place_learner(learner_id, self.node, None, PLACED_STARTING)
        return None

    def touch(self, learner_id: str) -> None:
        self.room.touch(learner_id)   # typing, or a command printing, in the terminal panel

    def place(self):
        """This request's learner in the room; one whose cookie says they had
        joined it before a server restart is seated again (if there is room)."""
        learner_id = session.get("learner")
        place = self.room.get(learner_id) if learner_id else None
        if place is None and learner_id and session.get("room") == self.mark and session.get("name"):
            try:
                place = self.room.join(learner_id, session["name"])
            except RoomError:
                return None
        return place


class Workshop:
    def __init__(self, settings, labs: dict, admission: RoomAdmission, guard, store, runs, catch_ups: CatchUps,
                 learners, socketio, bus=None):
        self.settings, self.admission, self.guard = settings, admission, guard
        self.store, self.runs, self.catch_ups = store, runs, catch_ups
        self.learners, self.socketio = learners, socketio
        self.code = settings.access_code
        self.mark = admission.mark
        self.labs = list(labs.values())   # the workshop's labs only (app.served_labs)
        self.room = admission.room
        self.node, self.bus = settings.node, bus   # a cluster's node, and the bus to the others (None: alone)
        self._key = room_key(settings.access_code, settings.token)
        self._dirty = threading.Event()
        self._tell = threading.Event()   # the other nodes are to hear that a run changed here
        self._closed = threading.Event()
        self._saved = ""   # its state as last saved
        self._saving = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, events) -> "Workshop":
        """Continue the room kept in the store, follow the runs and the room, start pushing (in the serving
        process: a thread)."""
        if self.room.shared:
            self.room.resume()
        else:
            self._restore(self.store)
        self.runs.watch(self._run_changed)
        self.catch_ups.on_change(self._run_changed)
        self.room.on_change(self._room_changed)
        events.on_connect(self._join_channels)
        if self.bus is not None:
            self.bus.on("changed", self._changed_elsewhere)
            self.bus.on("reset", lambda origin, learner: self._reset_here(learner))
            self.bus.on("catch_up", lambda origin, learner, lab, step: self._catch_up_here(learner, lab, step))
        self._thread = threading.Thread(target=self._push_loop, name="workshop-push", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop pushing, before the store and the lab hosts it reads go (Services.close)."""
        self._closed.set()
        self._dirty.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(PUSH_EVERY * 20)
        self._save()

    def _restore(self, store) -> None:
        saved = store.room(self._key)
        if not saved:
            return
        try:
            self.room.restore(json.loads(saved))
        except (TypeError, ValueError, KeyError, AttributeError) as e:   # kept by a labnb that differs
            aside = f"{self._key}.unread.{int(time.time())}"
            store.save_room(aside, saved)   # the room stays empty: Room.restore changes nothing if it raises
            log.error("workshop: the room's saved state cannot be read (%s): the room starts empty; "
                      "the state is kept in the store's rooms table as %s", e, aside)
            return
        counts = self.room.counts()
        log.info("workshop: the room goes on where it was: %d seated, %d waiting%s", counts["seated"],
                 counts["waiting"], " (it is over)" if self.room.over else "")

    def _save(self) -> None:
        """Keep the room's state in the store if it changed since it was last kept (one thread at a time:
        the push thread and, at the end, ``close``). A shared room keeps each change as it is made, and
        here only the learners' signs, every SIGNS_EVERY s (shared.py)."""
        if self.room.shared:
            if self.room.signs_due():
                self.room.keep_signs()
            return
        with self._saving:
            state = json.dumps(self.room.state(), sort_keys=True)
            if state != self._saved:
                self.store.save_room(self._key, state)
                self._saved = state

    # -- the instructor's actions --------------------------------------------------
    def place(self, learner_id: str):
        place = self.room.get(learner_id)
        if place is None:
            raise RoomError("there is no such learner in this workshop")
        return place

    def end(self, learner_id: str, why: str = BY_INSTRUCTOR) -> None:
        """End the learner's place: their lab host goes (on another node: by that node's loop, ``_sync``),
        their notebook stays, the next in the queue is seated."""
        self.room.end(learner_id, why)
        self.learners.end(learner_id)

    def close_room(self) -> None:
        """End the workshop: every lab host goes, every notebook stays, nobody joins any more."""
        for learner_id in self.room.close():
            self.learners.end(learner_id)

    def catch_up(self, learner_id: str, lab_id: str, step_id: str) -> None:
        """Run, in a thread, every step of the lab before ``step_id`` that has
        not passed on the learner's lab host now, in order, with the lab's own
        commands (runs/catchup.py), stopping at the first that fails: a learner
        who fell behind, or whose lab host was reset, continues at that step.
        The learner's tabs show the runs as their own."""
        if self.place(learner_id).state != SEATED:
            raise RoomError("only a learner in the room can be caught up")
        node = self._elsewhere(learner_id)
        if node:
            self._ask(node, "catch_up", learner=learner_id, lab=lab_id, step=step_id)
        else:
            self._catch_up_here(learner_id, lab_id, step_id)

    def _catch_up_here(self, learner_id: str, lab_id: str, step_id: str) -> None:
        lab = next((lab for lab in self.labs if lab.id == lab_id), None)
        if lab is None or lab.step(step_id) is None:
            raise RoomError(f"the workshop has no lab {lab_id!r} with a step {step_id!r}")
        try:
            self.catch_ups.start(learner_id, lab, step_id, refusal=lambda: self._still_seated(learner_id))
        except RunError as e:
            raise RoomError(str(e)) from None

    def _still_seated(self, learner_id: str) -> str | None:
        place = self.room.get(learner_id)
        return None if place is not None and place.state == SEATED else "the learner's place ended"

    def busy(self, learner_id: str) -> bool:
        return self.learners.working(learner_id)

    def expire(self) -> None:
        """End the places whose time is up; the learners warned hear of it (``Room.expire``, only when
        something is due: for a shared room, a transaction). Who is busy is asked first: asked under the room's
        lock, it waited for the learners' lock, which a learner's first claim holds while it asks the room
        (``Learners.get``, ``admits``), and a room joining at once stopped for good."""
        working = {place.id for place in self.room.places() if place.state == SEATED and self.busy(place.id)}
        if not self.room.due(working.__contains__):
            return
        ended, _warned = self.room.expire(working.__contains__)
        for learner_id, why in ended:
            log.info("workshop: the place of learner %s ended: %s", learner_id[:8], ENDINGS[why])
            self.learners.end(learner_id)

    def reset(self, learner_id: str) -> None:
        """A fresh lab host for the learner; their lab page shows it start, and that the instructor reset it."""
        if self.place(learner_id).state != SEATED:
            raise RoomError("only a learner in the room has a lab host to reset")
        node = self._elsewhere(learner_id)
        if node:
            self._ask(node, "reset", learner=learner_id)
        else:
            self._reset_here(learner_id)

    def _reset_here(self, learner_id: str) -> None:
        self.learners.reset(learner_id)
        self.room.note_reset(learner_id)
        emit(self.socketio, "place", {"host": True}, learner_channel(learner_id))
        self._dirty.set()

    # -- nodes ----------------------------------------------------------------------
    def _elsewhere(self, learner_id: str) -> str:
        """The node that holds the learner's lab host if it is another ("": this one, or alone)."""
        if not self.node or self.learners.peek(learner_id) is not None:
            return ""
        placed = self.store.placement(learner_id)
        if placed is None:   # made here, it would be a second lab host once the learner's node makes theirs
            raise RoomError("this learner has no lab host yet: one is made when they open a lab")
        return placed["node"] if placed["node"] != self.node else ""

    def _ask(self, node: str, verb: str, **args) -> None:
        if self.bus is None:
            raise RoomError(f"learner's lab host is on node {node}, and this node has no way to reach it: "
                            "set LABNB_REDIS_URL on every node")
        try:
            self.bus.ask(node, verb, **args)
        except LabnbError as e:
            raise RoomError(str(e)) from None

    def _changed_elsewhere(self, origin: str, room: bool) -> None:
        """Another node's note: its room or runs changed. Load the room again, push the dashboards."""
        if room:
            self.room.invalidate()
        self._dirty.set()

    def host_status(self, learner_id: str, lab_id: str | None = None) -> dict | None:
        """The learner's lab host's state: from this node's registry, or, held by another node, from its
        placement (None: none is known)."""
        learner = self.learners.peek(learner_id)
        if learner is not None or not self.node:
            return learner and learner.status(lab_id)
        placed = self.store.placement(learner_id)
        return placed and _placed_status(placed)

    def _sync(self) -> None:
        """A cluster's node: the placements of its learners say how their lab hosts stand, and the lab host
        of a learner of its own whose place ended (here or on another node) goes."""
        mine = {p["learner"]: p for p in self.store.placements(self.node)}
        for place in self.room.places():
            learner = self.learners.peek(place.id)
            placed = mine.get(place.id)
            if place.state != SEATED:
                if learner is not None:
                    self.learners.end(place.id)
                if placed is not None and placed["state"] != PLACED_FAILED:
                    self.store.place_learner(place.id, self.node, None, PLACED_FAILED)
            elif learner is not None:
                if learner.working:
                    self.room.touch(place.id)   # a command runs: for the node that ends idle places
                status = learner.status()
                now = (status["host"], status["state"] if status["state"] in PLACED else PLACED_FAILED)
                if placed is None or (placed["lab_host"], placed["state"]) != now:
                    self.store.place_learner(place.id, self.node, *now)

    # -- the state -------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The room, every learner's place, each step's state and the lab host's: the dashboard and the API."""
        now = time.time()
        runs: dict[str, list[dict]] = {}
        places = self.room.places()
        for run in self.store.latest_runs([lab.id for lab in self.labs], [p.id for p in places]):
            runs.setdefault(run["learner"], []).append(run)
        placed = {p["learner"]: p for p in self.store.placements()} if self.node else {}
        learners = []
        for place in places:
            mine = runs.get(place.id, [])
            steps = {lab.id: {s.id: {"state": "not_started"} for s in lab.steps} for lab in self.labs}
            for run in mine:
                if run["step"] in steps.get(run["lab"], {}):
                    steps[run["lab"]][run["step"]] = {"state": step_state(run), "status": run["status"],
                                                      "started": run["started"], "ended": run["ended"]}
            latest = max(mine, key=lambda r: r["started"], default=None)
            running = any(r["status"] == "running" for r in mine)
            activity = max([place.active] + [r["ended"] or r["started"] for r in mine])
            host = self.learners.peek(place.id)
            status = (host.status() if host is not None else
                      _placed_status(placed[place.id]) if place.id in placed else None)
            entry = place.public()
            left = self.room.time_left(place, running) if place.state == SEATED else {}
            entry.update({
                "position": self.room.position(place.id),
                "current": {"lab": latest["lab"], "step": latest["step"]} if latest else None,
                "running": running,
                "last_activity": now if running else activity,
                "idle_s": 0.0 if running else round(now - activity, 1),
                "passed": sum(1 for lab in steps.values() for s in lab.values() if s["state"] == "passed"),
                "steps": steps,
                "host": status if place.state == SEATED else None,
                "time_left_s": left.get("time_left_s"), "ends_in_s": left.get("ends_in_s"),
                "ends_because": left.get("why"), "early_end": early_end(left),
                "failing": failing([r for r in mine if r["step"] in steps.get(r["lab"], {})]),
                "catch_up": self.catch_ups.state(place.id),
            })
            learners.append(entry)
        return {
            "workshop": {**self.room.counts(), "now": now, "banner": self.room.banner, "over": self.room.over,
                         "labs": [{"id": lab.id, "title": lab.title,
                                   "steps": [{"id": s.id, "title": s.title} for s in lab.steps]}
                                  for lab in self.labs]},
            "learners": learners,
        }

    # -- telling the browsers -------------------------------------------------------------
    def _join_channels(self) -> None:
        """Every tab of a learner hears of their place, hand and the banner; an instructor's tab, of the room."""
        if self.guard.is_operator():
            join_room(INSTRUCTORS)
        else:
            join_room(LEARNERS)
            join_room(learner_channel(session["learner"]))

    def _room_changed(self, ids: list[str] | None) -> None:
        socketio = self.socketio
        for to in [LEARNERS] if ids is None else [learner_channel(i) for i in ids]:
            emit(socketio, "place", {}, to)   # with a message queue, to the learner's tabs on every node
        if self.bus is not None:   # at once: the other nodes' copies of the room are old now
            self.bus.broadcast("changed", room=True)
        self._dirty.set()

    def _run_changed(self, learner_id: str) -> None:
        self._tell.set()
        self._dirty.set()

    def _tell_others(self) -> None:
        """The other nodes hear that a run changed here (one note per push at most)."""
        if self.bus is not None and self._tell.is_set():
            self._tell.clear()
            self.bus.broadcast("changed", room=False)

    def _push_loop(self) -> None:
        while not self._closed.is_set():
            self._dirty.wait(REFRESH_EVERY)
            if self._closed.is_set():
                return
            self._dirty.clear()
            for what, step in (("ending the places whose time is up", self.expire),
                               ("keeping the room's state in the store", self._save),
                               ("keeping this node's placements", self._sync if self.node else lambda: None),
                               ("telling the other nodes", self._tell_others),
                               ("pushing the workshop's state to the dashboards",
                                lambda: emit(self.socketio, "workshop", self.snapshot(), INSTRUCTORS, local=True))):
                try:
                    step()
                except Exception:   # a bug: say it, go on with the rest, and try again with the next change
                    log.exception("workshop: %s", what)
            time.sleep(PUSH_EVERY)


PLACED = frozenset({PLACED_STARTING, PLACED_READY, PLACED_FAILED})


def _placed_status(placed: dict) -> dict:
    """A placement as ``Learner.status`` says it (the dashboard's and the watch page's words)."""
    return {"state": placed["state"], "error": placed.get("note", ""), "elapsed": time.time() - placed["since"],
            "setup": False, "host": placed["lab_host"] or None, "note": "", "node": placed["node"]}


def learner_channel(learner_id: str) -> str:
    """The channel of a learner's tabs: their place's news."""
    return f"workshop:learner:{learner_id}"
