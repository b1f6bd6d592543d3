"""The network picture over HTTP: ``/network.json`` and ``/network.svg`` of the learner's own lab host (the
instructor's view of a learner: ``workshop/views.py``, through ``respond``)."""
from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, current_app, jsonify

from .. import auth
from ..labhost.base import LabHost, LabHostError
from ..learners import READY
from . import picture, svg

bp = Blueprint("network", __name__)

MIN_INTERVAL = 0.25   # seconds between two reads of one lab host; askers meanwhile share the last one
COOLDOWN = 4          # and at least this many times as long as its last read took
READERS = 2           # reads at once, of all lab hosts together
KEEP = 60             # seconds a picture is kept for lab hosts nobody asks about


class Busy(Exception):
    """No picture now: one is being read and there is none yet to share."""


class Pictures:
    """At most one read of a lab host's network at a time, READERS in all, and one per lab host per
    ``MIN_INTERVAL`` (longer after a slow read): askers meanwhile get the last picture, and nobody waits
    for a read (each asker holds a server thread), so a tab that asks in a loop, or a lab host made to be
    slow to read, costs the server a bounded share of its time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}
        self._last: dict[str, tuple[float, float, dict]] = {}   # lab host: (when read, how long it took, picture)
        self._keys: dict[str, dict[str, str]] = {}   # per lab host: its containers' sandbox keys
        self._readers = threading.BoundedSemaphore(READERS)

    def get(self, host: LabHost) -> dict:
        with self._lock:
            now = time.monotonic()
            for old in [k for k, (t, _, _) in self._last.items() if now - t > KEEP]:
                del self._last[old]
                self._reading.pop(old, None)
                self._keys.pop(old, None)
            reading = self._reading.setdefault(host.id, threading.Lock())
            keys = self._keys.setdefault(host.id, {})
            last = self._last.get(host.id)
        if last and now - last[0] < max(MIN_INTERVAL, COOLDOWN * last[1]):
            return last[2]
        if not reading.acquire(blocking=False):
            return _or_busy(last)
        try:
            if not self._readers.acquire(blocking=False):
                return _or_busy(last)
            try:
                started = time.monotonic()
                drawn = picture.read(host, keys)
            finally:
                self._readers.release()
            with self._lock:
                self._last[host.id] = (time.monotonic(), time.monotonic() - started, drawn)
            return drawn
        finally:
            reading.release()


def _or_busy(last) -> dict:
    if last is None:
        raise Busy("the network is being read for someone else just now: try again in a moment")
    return last[2]


def respond(learner_id: str, kind: str) -> Response | tuple:
    """The picture of ``learner_id``'s lab host as ``kind`` ("json" or "svg"), or why there is none (409)."""
    services = current_app.extensions["labnb"]
    learner = services.learners.peek(learner_id)
    status = learner.status() if learner is not None else {"state": "", "host": None}
    host = learner.host if learner is not None and status["state"] == READY else None
    if host is None:
        return jsonify(error="there is no lab host to draw now: open a lab and wait until its lab host is "
                             "ready, or reset it if it failed"), 409
    try:
        drawn = services.pictures.get(host)
    except Busy as e:
        return jsonify(error=str(e)), 429
    except LabHostError as e:
        return jsonify(error=f"cannot read the network of lab host {host.id}: {e}"), 409
    if kind == "json":
        return jsonify(drawn)
    return Response(svg.render(drawn), mimetype="image/svg+xml",
                    headers={"Content-Disposition": f'attachment; filename="network-{host.id}.svg"'})


@bp.get("/network.json")
def network_json():
    return respond(auth.learner(), "json")


@bp.get("/network.svg")
def network_svg():
    return respond(auth.learner(), "svg")
