"""A workshop's pages and actions.

Joining (``/join``) is the only page open without a session: it takes the
access code and a display name, both checked, wrong codes and new learners
rate-limited per client address. A learner's own part (their hand, the
banner, leaving) needs their place to be seated; the dashboard, the API and every
action on learners need the instructor's (the operator's) cookie. Every
other learner page and event is closed to a learner without a place now
(``gate``; the room's admission, RoomAdmission).
"""
from __future__ import annotations

import hmac
import secrets
import time
import uuid

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, session, \
    url_for
from itsdangerous import BadData, URLSafeTimedSerializer

from ..guard import auth
from ..guard.limits import client_address
from .manager import Workshop
from .room import ENDED, ENDINGS, FINAL, LEFT, SEATED, WAITING, Place, RoomError, clean_name

bp = Blueprint("workshop", __name__)

# What a learner without a place may still reach: joining and waiting, leaving
# the queue, and their notebooks (kept when their place ends); and what checks the operator's token itself.
WITHOUT_A_PLACE = frozenset({"static", "workshop.join", "workshop.join_post", "workshop.resume",
                             "workshop.resume_post", "workshop.wait", "workshop.leave",
                             "notebook.export", "notebook.run_log", "metrics.metrics"})
OPEN = frozenset({"static", "workshop.join", "workshop.join_post", "workshop.resume",   # no session needed
                  "workshop.resume_post"})
RESUME_S = 900   # a resume link works this long, once
POLLS = frozenset({"workshop.me"})   # polled by open tabs, visible or not: a sign of them, not activity


def _workshop() -> Workshop:
    """This server's workshop (the blueprint is registered only for a workshop)."""
    return current_app.extensions["labnb"].workshop


def _guard() -> auth.Guard:
    return current_app.extensions["labnb.guard"]


def _address() -> str:
    return client_address(request.remote_addr)


def _go(endpoint: str, **kw) -> Response:
    """Send the browser to a page, from a normal request or an htmx one."""
    url = url_for(endpoint, **kw)
    if request.headers.get("HX-Request"):
        return Response("", 200, {"HX-Redirect": url})
    return redirect(url, code=303)


@bp.before_app_request
def gate():
    workshop = _workshop()
    if request.endpoint is None or request.endpoint in WITHOUT_A_PLACE:
        return None
    if workshop.admission.refusal(active=request.endpoint not in POLLS):
        return _go("workshop.join")
    return None


@bp.app_context_processor
def room_context() -> dict:
    """For the learner pages: the learner's place, hand and banner (``_room.html``)."""
    workshop = _workshop()
    if _guard().is_operator() or "learner" not in session:
        return {"room": None}
    place = workshop.room.get(session["learner"])
    if place is None or place.state != SEATED:
        return {"room": None}
    idle = workshop.room.times.idle
    reset = place.reset and {"at": place.reset, "utc": time.strftime("%H:%M UTC", time.gmtime(place.reset))}
    return {"room": {"place": place, "banner": workshop.room.banner_for(place.id), "reset": reset,
                     "time": workshop.room.time_left(place, workshop.busy(place.id)),
                     "beat_s": min(60.0, max(2.0, idle / 4)) if idle else 60.0}}


# -- joining ------------------------------------------------------------------------
def _signed_in() -> bool:
    return _guard().refusal() is None


def _of_this_room(workshop: Workshop) -> bool:
    """Signed in as a learner who joined this workshop: the access code is not asked again. A cookie of
    another workshop (or the learners' token) still needs this one's code."""
    return _signed_in() and session.get("room") == workshop.mark


def _home(workshop: Workshop) -> Response:
    if len(workshop.labs) == 1:
        return _go("notebook.lab_page", lab_id=workshop.labs[0].id)
    return _go("notebook.catalogue")


@bp.get("/join")
def join():
    workshop = _workshop()
    session.setdefault("csrf", secrets.token_urlsafe(24))
    if _signed_in() and _guard().is_operator():
        return redirect(url_for("workshop.dashboard"), code=303)
    place = workshop.admission.place() if _signed_in() else None
    if place is not None and place.state == SEATED:
        return _home(workshop)
    return _join_page(workshop, place)


def _join_page(workshop: Workshop, place, error: str = "", status: int = 200) -> tuple[str, int, dict]:
    """The join page. Its forms are plain POSTs: under Referrer-Policy no-referrer a browser sends them with
    ``Origin: null``, which the Guard refuses, so this page's policy is same-origin (it links nowhere else)."""
    position = workshop.room.position(place.id) if place is not None else 0
    return render_template("join.html", place=place, position=position, counts=workshop.room.counts(),
                           labs=workshop.labs, code=request.values.get("code", ""), name=request.values.get("name", ""),
                           signed_in=_of_this_room(workshop), error=error, WAITING=WAITING, ENDED=ENDED, FINAL=FINAL,
                           endings=ENDINGS, over=workshop.room.over), status, {"Referrer-Policy": "same-origin"}


@bp.post("/join")
def join_post():
    workshop = _workshop()
    guard = _guard()
    if not hmac.compare_digest(request.form.get("csrf", "").encode(), session.get("csrf", "-").encode()):
        return auth.refuse("the join form has expired: open the join URL again")
    signed_in = _of_this_room(workshop) and not guard.is_operator()
    if not signed_in:
        code = request.form.get("code", "").strip().lower()
        refused = guard.wrong_codes.attempt(_address(), hmac.compare_digest(code.encode(),
                                                                             workshop.code.lower().encode()))
        if refused:
            return _join_page(workshop, None, refused[1], refused[0])
    place = workshop.room.get(session.get("learner", "")) if signed_in else None
    cannot = None if place is not None and place.state == SEATED else current_app.extensions["labnb"].pool.cannot_make()
    if cannot:   # at once, not a place whose lab host never comes: the learner tells the instructor what to do
        return _join_page(workshop, None, f"this workshop cannot give anyone a lab host now: {cannot}", 503)
    try:
        name = clean_name(request.form.get("name", ""))
        if not signed_in:
            why = guard.new_learners.take(_address())
            if why:
                return _join_page(workshop, None, why, 429)
            session.clear()
            session.permanent = True
            session.update(auth=guard.mark, learner=uuid.uuid4().hex, csrf=secrets.token_urlsafe(24))
        workshop.room.join(session["learner"], name, _address())
    except RoomError as e:
        return _join_page(workshop, None, str(e), 400)
    session["name"], session["room"] = workshop.room.get(session["learner"]).name, workshop.mark
    return redirect(url_for("workshop.join"), code=303)


def _resumes() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="labnb-resume")


@bp.get("/workshop/resume-link")
def resume_link():
    """A link that makes another device this learner (for RESUME_S seconds, once): no accounts, so this is
    how a learner moves from a lab computer to their laptop."""
    workshop = _workshop()
    token = _resumes().dumps({"learner": auth.learner(), "room": workshop.mark, "nonce": secrets.token_hex(8)})
    return render_template("_resume.html", url=url_for("workshop.resume", token=token, _external=True),
                           minutes=RESUME_S // 60)


@bp.get("/join/resume/<token>")
def resume(token: str):
    """What a resume link would do, and a button that does it (``resume_post``): a link any page can send a
    browser to must not change who that browser is (the instructor's, sent there by a learner's page)."""
    place = _resuming(token)
    if not isinstance(place, Place):
        return place
    session.setdefault("csrf", secrets.token_urlsafe(24))
    return render_template("resume.html", place=place, instructor=_guard().is_operator(), token=token)


@bp.post("/join/resume/<token>")
def resume_post(token: str):
    if not hmac.compare_digest(request.form.get("csrf", "").encode(), session.get("csrf", "-").encode()):
        return auth.refuse("the resume form has expired: open the resume link again")
    place = _resuming(token)
    if not isinstance(place, Place):
        return place
    workshop = _workshop()
    if not workshop.room.spend(_resumes().loads(token)["nonce"], RESUME_S):
        return auth.refuse("this resume link was used already: get a new one on your other device")
    session.clear()
    session.permanent = True
    session.update(auth=_guard().mark, learner=place.id, csrf=secrets.token_urlsafe(24), name=place.name,
                   room=workshop.mark)
    return redirect(url_for("workshop.join"), code=303)


def _resuming(token: str):
    """The place a resume link names, or the refusal to show."""
    workshop = _workshop()
    try:
        data = _resumes().loads(token, max_age=RESUME_S)
    except BadData:
        return auth.refuse("this resume link is not valid or has expired (it works for "
                           f"{RESUME_S // 60} minutes): get a new one on your other device")
    place = workshop.room.get(data.get("learner", "")) if data.get("room") == workshop.mark else None
    if place is None or workshop.room.spent(data.get("nonce", "")):
        return auth.refuse("this resume link is not for this workshop, or was used already: get a new one")
    return place


@bp.get("/join/wait")
def wait():
    """The queue's fragment, polled by the waiting page: the place in the queue, or on to the lab once seated."""
    workshop = _workshop()
    place = workshop.admission.place()
    if place is not None and place.state == SEATED:
        return _home(workshop)
    if place is None or place.state == ENDED:
        return _go("workshop.join")
    return render_template("_wait.html", position=workshop.room.position(place.id),
                           counts=workshop.room.counts())


# -- a learner's own part --------------------------------------------------------------
def _room_fragment():
    return render_template("_room.html")


def _mine(action) -> Response | str:
    """Do ``action(room, learner)`` for this learner; their room bar, or why not (400)."""
    try:
        action(_workshop().room, auth.learner())
    except RoomError as e:
        return Response(str(e), 400)
    return _room_fragment()


@bp.get("/workshop/me")
def me():
    return _room_fragment()


@bp.post("/workshop/hand")
def raise_hand():
    return _mine(lambda room, learner: room.raise_hand(learner, request.form.get("message", "")))


@bp.post("/workshop/hand/lower")
def lower_hand():
    return _mine(lambda room, learner: room.lower_hand(learner))


@bp.post("/workshop/banner/<int:banner_id>/dismiss")
def dismiss(banner_id: int):
    return _mine(lambda room, learner: room.dismiss(learner, banner_id))


@bp.post("/workshop/reset-notice/dismiss")
def dismiss_reset():
    return _mine(lambda room, learner: room.dismiss_reset(learner))


@bp.post("/workshop/leave")
def leave():
    """Leave the room, or its queue: the lab host goes, the notebook stays, the next in the queue is seated."""
    workshop = _workshop()
    if workshop.room.get(auth.learner()) is not None:
        workshop.end(auth.learner(), LEFT)
    return _go("workshop.join")


@bp.post("/workshop/here")
def here():
    """A visible tab's sign of the learner (the gate counted it), or their "I'm here"."""
    return _room_fragment()


@bp.post("/workshop/extend")
def extend():
    return _mine(lambda room, learner: room.extend(learner))


# -- the instructor's -------------------------------------------------------------------
@bp.get("/workshop")
@auth.operator_only
def dashboard():
    workshop = _workshop()
    join_url = url_for("workshop.join", code=workshop.code, _external=True)
    return render_template("dashboard.html", join_url=join_url, code=workshop.code)


@bp.get("/workshop/learners/<learner_id>/labs/<lab_id>")
@auth.operator_only
def watch(learner_id: str, lab_id: str):
    """A learner's notebook, read-only, their runs' output live (static/cells.js with data-watch)."""
    from ..notebook.views import lab_view

    place = _place_or_404(learner_id)
    lab = current_app.extensions["labnb"].labs.get(lab_id) or abort(404, f"no lab {lab_id!r}")
    status = _workshop().host_status(learner_id, lab.id) if place.state == SEATED else None
    status = status or {"state": "failed", "error": "no lab host now", "elapsed": 0, "setup": False, "host": None}
    return lab_view(lab, learner_id, status, watch=place)


@bp.get("/workshop/learners/<learner_id>/network.<any(json, svg):kind>")
@auth.operator_only
def watch_network(learner_id: str, kind: str):
    """A learner's network picture, as the lab page they see draws it."""
    from ..network.views import respond

    _place_or_404(learner_id)
    return respond(learner_id, kind)


def _place_or_404(learner_id: str):
    try:
        return _workshop().place(learner_id)
    except RoomError as e:
        abort(404, str(e))


@bp.get("/workshop/learners/<learner_id>/ports")
@auth.operator_only
def watch_ports(learner_id: str):
    """The ports that listen in a learner's lab host, each a link into it for the instructor."""
    from ..proxy.views import ports_fragment

    _place_or_404(learner_id)
    return ports_fragment(learner_id, lambda port: url_for("workshop.watch_port", learner_id=learner_id, port=port),
                          request.path)


@bp.get("/workshop/learners/<learner_id>/proxy/<int:port>/")
@auth.operator_only
def watch_port(learner_id: str, port: int):
    from ..proxy.views import open_port

    _place_or_404(learner_id)
    return open_port(learner_id, port)


@bp.get("/api/workshop")
@auth.operator_only
def api():
    workshop = _workshop()
    return jsonify(workshop.snapshot())


@bp.get("/workshop/export.zip")
@auth.operator_only
def export():
    """Every learner's notebooks and results (workshop/export.py)."""
    from .export import archive

    workshop = _workshop()
    data = archive(workshop.snapshot(), workshop.labs, current_app.extensions["labnb"].store)
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="workshop-{stamp}.zip"'})


def _act(action) -> Response:
    try:
        action()
    except RoomError as e:
        return jsonify({"error": str(e)}), 400
    return jsonify({"ok": True})


@bp.post("/workshop/broadcast")
@auth.operator_only
def broadcast():
    return _act(lambda: _workshop().room.broadcast(request.form.get("text", "")))


@bp.post("/workshop/banner/clear")
@auth.operator_only
def clear_banner():
    return _act(_workshop().room.clear_banner)


@bp.post("/workshop/end")
@auth.operator_only
def end_workshop():
    return _act(_workshop().close_room)


def _minutes() -> float:
    try:
        minutes = float(request.form.get("minutes", "15"))
    except ValueError:
        minutes = float("nan")
    if not -600 <= minutes <= 600:
        raise RoomError("minutes: expected a number from -600 to 600")
    return minutes


@bp.post("/workshop/learners/<learner_id>/<action>")
@auth.operator_only
def act_on_learner(learner_id: str, action: str):
    workshop = _workshop()
    actions = {
        "reset": lambda: workshop.reset(learner_id),
        "end": lambda: (workshop.place(learner_id), workshop.end(learner_id)),
        "hand-seen": lambda: workshop.room.see_hand(learner_id),
        "hand-resolve": lambda: (workshop.place(learner_id), workshop.room.lower_hand(learner_id)),
        "extend": lambda: workshop.room.extend(learner_id, _minutes() * 60),
        "catch-up": lambda: workshop.catch_up(learner_id, request.form.get("lab", ""), request.form.get("step", "")),
    }
    if action not in actions:
        abort(404, f"no action {action!r}: one of {', '.join(actions)}")
    return _act(actions[action])
