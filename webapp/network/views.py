"""The network picture over HTTP: ``/network.json`` and ``/network.svg`` of the learner's own lab host (the
instructor's view of a learner: ``workshop/views.py``, through ``respond``)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..guard import auth
from ..labhost.base import LabHost, LabHostError
from ..learners.registry import READY
from ..guard.sharing import Busy, Sharing
from . import hosts, picture, svg

bp = Blueprint("network", __name__)

MIN_INTERVAL = 0.25   # seconds between two reads of one lab host; askers meanwhile share the last one
COOLDOWN = 4          # and at least this many times as long as its last read took
READERS = 2           # reads at once, of all lab hosts together


class Pictures:
    """The lab hosts' pictures, shared (webapp/guard/sharing.py): a tab that asks in a loop, or a lab host made to
    be slow to read, costs the server a bounded share of its time."""

    def __init__(self):
        self._sharing = Sharing(MIN_INTERVAL, COOLDOWN, READERS)
        self._keys: dict[str, dict[str, str]] = {}   # per lab host: its containers' sandbox keys

    def get(self, host: LabHost, ports: bool = False) -> tuple[dict, bool]:
        """The lab host's picture (with its listening ``ports``, for a set's), and whether it was read just
        now (not: the last one, read for someone else, perhaps before the run the asker saw end)."""
        known = self._sharing.known() | {host.id}
        self._keys = {k: v for k, v in self._keys.items() if k in known}
        keys = self._keys.setdefault(host.id, {})
        return self._sharing.get(host.id, lambda: picture.read(host, keys, ports=ports),
                                 "the network is being read for someone else just now: try again in a moment")

    def of_set(self, members: list[tuple[str, LabHost]]) -> tuple[dict, bool]:
        """The picture of a set of lab hosts (``hosts.compose``), each host read (or shared) as one
        host's is; fresh if every one was read just now."""
        drawn = [(name, self.get(host, ports=True)) for name, host in members]
        composed = hosts.compose([(name, pic) for name, (pic, _) in drawn], hosts.LAB_SUBNET)
        composed["took_ms"] = round(sum(pic["took_ms"] for _, (pic, _) in drawn), 1)
        return composed, all(fresh for _, (_, fresh) in drawn)


def respond(learner_id: str, kind: str) -> Response | tuple:
    """The picture of ``learner_id``'s lab host, or of every host of their set, as ``kind`` ("json" or
    "svg"), or why there is none (409)."""
    services = current_app.extensions["labnb"]
    learner = services.learners.peek(learner_id)
    status = learner.status() if learner is not None else {"state": "", "host": None}
    host = learner.host if learner is not None and status["state"] == READY else None
    if host is None:
        return jsonify(error="there is no lab host to draw now: open a lab and wait until its lab host is "
                             "ready, or reset it if it failed"), 409
    members = learner.hosts.members()
    try:
        drawn, fresh = services.pictures.of_set(members) if len(members) > 1 else services.pictures.get(host)
    except Busy as e:
        return jsonify(error=str(e)), 429
    except LabHostError as e:
        return jsonify(error=f"cannot read the network of {_names(members)}: {e}"), 409
    if kind == "json":   # a page that got an earlier read asks again (static/network.js)
        return jsonify(drawn), 200, {} if fresh else {"X-Labnb-Shared": "1"}
    return Response(svg.render(drawn), mimetype="image/svg+xml",
                    headers={"Content-Disposition": f'attachment; filename="network-{host.id}.svg"'})


def _names(members: list[tuple[str, LabHost]]) -> str:
    if len(members) == 1:
        return f"lab host {members[0][1].id}"
    return "lab hosts " + ", ".join(f"{name} ({host.id})" for name, host in members)


@bp.get("/network.json")
def network_json():
    return respond(auth.learner(), "json")


@bp.get("/network.svg")
def network_svg():
    return respond(auth.learner(), "svg")
