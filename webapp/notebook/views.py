"""The notebook pages: the lab catalogue, a lab's page, the htmx fragments
(lab host status, progress), the export and the log download."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template, request

from ..guard import auth
from ..lab import render_intro, render_markdown
from ..learners.registry import STARTING
from ..status import RUNNING
from ..store import is_run_id
from .export import export_markdown

bp = Blueprint("notebook", __name__)


def _services():
    return current_app.extensions["labnb"]


def _lab(lab_id: str):
    lab = _services().labs.get(lab_id)
    if lab is None:
        abort(404, f"there is no lab {lab_id!r}")
    return lab


def _progress(lab, learner_id: str | None = None) -> tuple[int, int]:
    return _services().store.progress(learner_id or auth.learner(), lab.id, [s.id for s in lab.steps])


@bp.get("/")
def catalogue():
    labs = [(lab, _progress(lab)) for lab in _services().labs.values()]
    return render_template("catalogue.html", labs=labs)


@bp.get("/labs/<lab_id>")
def lab_page(lab_id: str):
    lab = _lab(lab_id)
    learner = _services().learners.check(auth.learner(), lab)   # starts the lab host on first sight
    return lab_view(lab, auth.learner(), learner)


def lab_view(lab, learner_id: str, status: dict, watch=None) -> str:
    """A lab's page with a learner's last runs: their own, or, with ``watch`` (their place in a workshop's room),
    for the instructor who watches them."""
    last = _services().store.last_runs(learner_id, lab.id)
    return render_template("lab.html", lab=lab, last=last, ended=recorded_ends(last), learner=status,
                           progress=_progress(lab, learner_id), watch=watch,
                           markdown=render_markdown, intro=render_intro, kind=lambda block: type(block).__name__.lower())


def recorded_ends(last: dict[str, dict]) -> dict[str, dict]:
    """How each step's last run ended, as the page's cells take a run's ``end`` (static/cells.js), so that a
    step shows its state as the page loads, not once its output is replayed; without the checks' details
    (long, and sent with the replay)."""
    return {step: {"status": run["status"], "exit_code": run["exit_code"], "signal": run["signal"],
                   "duration": run["duration"],
                   "checks": [{"kind": c["kind"], "passed": c["passed"], "hint": c["hint"]} for c in run["checks"]]}
            for step, run in last.items() if run["status"] != RUNNING}


@bp.get("/labs/<lab_id>/host")
def host_status(lab_id: str):
    lab = _lab(lab_id)
    return render_template("_host.html", lab=lab, learner=_services().learners.check(auth.learner(), lab))


@bp.post("/labs/<lab_id>/host/retry")
def host_retry(lab_id: str):
    lab = _lab(lab_id)
    return render_template("_host.html", lab=lab, learner=_services().learners.retry(auth.learner(), lab))


@bp.post("/labs/<lab_id>/host/reset")
def host_reset(lab_id: str):
    lab = _lab(lab_id)
    learner = _services().learners.get(auth.learner())
    if learner.status()["state"] != STARTING:
        learner = _services().learners.reset(auth.learner())
    return render_template("_host.html", lab=lab, learner=learner.status(lab.id))


@bp.get("/labs/<lab_id>/progress")
def progress(lab_id: str):
    lab = _lab(lab_id)
    return render_template("_progress.html", progress=_progress(lab))


@bp.get("/labs/<lab_id>/export.md")
def export(lab_id: str):
    lab = _lab(lab_id)
    text = export_markdown(lab, _services().store, auth.learner())
    if request.args.get("view"):   # to read in the browser (a workshop's learner whose place ended)
        return Response(text, mimetype="text/plain; charset=utf-8")
    return Response(text, mimetype="text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="{lab.id}.md"'})


@bp.get("/runs/<run_id>/log")
def run_log(run_id: str):
    """The whole stored output of a run, streamed from the store."""
    store = _services().store
    run = store.get_run(run_id) if is_run_id(run_id) else None
    operator = current_app.extensions["labnb.guard"].is_operator()   # who watches a learner's notebook
    if run is None or (run["learner"] != auth.learner() and not operator):
        abort(404, "you have no such run")
    name = f"{run['lab']}-{run['step']}-{run_id[:8]}.log"
    disposition = "inline" if request.args.get("view") else f'attachment; filename="{name}"'
    return Response(store.iter_output(run_id), mimetype="text/plain; charset=utf-8",
                    headers={"Content-Disposition": disposition})


@bp.get("/lab-hosts")
@auth.operator_only
def lab_hosts():
    """For operators: every lab host on this machine, and the warm pool."""
    from ..labhost import backends, reaper

    services = _services()
    hosts = reaper.list_all(services.settings) if backends.get(services.settings.backend).recorded else []
    return render_template("lab_hosts.html", hosts=hosts, waiting=services.pool.waiting(),
                           settings=services.settings)
