"""The notebook pages: the lab catalogue, a lab's page, the htmx fragments
(lab host status, progress), the learner's catch-up, the export and the log
download."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template, request

from ..guard import auth
from ..guard.limits import client_address
from ..lab import render_intro, render_markdown
from ..learners.registry import STARTING, NotReady
from ..runs import RunError
from ..status import RUNNING
from ..store import PASSED, Progress, is_run_id, step_state
from .export import export_markdown

bp = Blueprint("notebook", __name__)


def _services():
    return current_app.extensions["labnb"]


def _lab(lab_id: str):
    lab = _services().labs.get(lab_id)
    if lab is None:
        abort(404, f"there is no lab {lab_id!r}")
    return lab


# A step's state in the step list and the summary (static/steps.js): its mark and words. The states are
# those static/cells.js sets on each step (data-state); the page starts with the latest run's.
STEP_STATES = {"not-run": ["○", "not run"], "running": ["⟳", "running"], "queued": ["…", "queued"],
               "passed": ["✓", "passed"], "failed": ["✗", "failed"],
               "failed-expected": ["✓", "failed as expected"]}
_FROM_RUN = {"not_started": "not-run", "running": "running", "passed": "passed", "failed": "failed"}


def _lab_host(learner_id: str):
    """The learner's lab host now (None: none, or one being made), without starting one."""
    learner = _services().learners.peek(learner_id)
    return learner.host if learner is not None else None


def _progress(lab, learner_id: str, last: dict | None = None) -> Progress:
    """The learner's progress in ``lab``: what their runs say, and what of it holds on their lab host now."""
    if last is None:
        last = _services().store.last_runs(learner_id, lab.id)
    return Progress.of(last, [s.id for s in lab.steps], _lab_host(learner_id))


def _progress_view(lab, learner_id: str, last: dict, watch=None, problem: str = "") -> dict:
    """What _progress.html and _earlier.html show: the counts (and the steps run on an earlier lab host), the
    learner's catch-up (the step to offer: the first after the first that has not passed; how their last one
    goes) and ``problem``, why one was refused."""
    catch_up = _services().catch_ups.state(learner_id)
    resume = next((s for s in lab.steps[1:] if step_state(last.get(s.id)) != PASSED), lab.steps[-1])
    return {"lab": lab, "progress": _progress(lab, learner_id, last),
            "catch_up": catch_up if catch_up and catch_up["lab"] == lab.id else None, "resume": resume.id,
            "watch": watch, "problem": problem}


@bp.get("/")
def catalogue():
    labs = [(lab, _progress(lab, auth.learner())) for lab in _services().labs.values()]
    return render_template("catalogue.html", labs=labs)


@bp.get("/labs/<lab_id>")
def lab_page(lab_id: str):
    lab = _lab(lab_id)
    learner = _services().learners.check(auth.learner(), lab)   # starts the lab host on first sight
    return lab_view(lab, auth.learner(), learner)


def lab_view(lab, learner_id: str, status: dict, watch=None) -> str:
    """A lab's page with a learner's last runs: their own, or, with ``watch`` (their place in a workshop's room),
    for the instructor who watches them. After its steps, a summary and the next lab of the catalogue."""
    labs = list(_services().labs.values())
    following = labs[labs.index(lab) + 1:] if lab in labs else []
    last = _services().store.last_runs(learner_id, lab.id)
    states = {s.id: _FROM_RUN[step_state(last.get(s.id))] for s in lab.steps}
    return render_template("lab.html", last=last, ended=recorded_ends(last), learner=status, states=states, step_states=STEP_STATES,
                           next_lab=following[0] if following else None,
                           markdown=render_markdown, intro=render_intro, kind=lambda block: type(block).__name__.lower(),
                           **_progress_view(lab, learner_id, last, watch))


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
    """The progress in the page's bar, and (out of band) what it means for the lab host now."""
    return _progress_fragment(_lab(lab_id))


def _progress_fragment(lab, problem: str = "") -> str:
    view = _progress_view(lab, auth.learner(), _services().store.last_runs(auth.learner(), lab.id), problem=problem)
    return render_template("_progress.html", **view) + render_template("_earlier.html", oob=True, **view)


@bp.post("/labs/<lab_id>/catch-up")
def catch_up(lab_id: str):
    """Bring the learner's lab host up to a step: the steps before it that have not passed on it run again,
    as the dashboard's catch-up does (runs/catchup.py). Only the session's learner's own lab host: no learner
    is named in the request, so whoever watches another's notebook cannot use it on theirs. A catch-up
    starts runs, so it counts as one against the runs a learner may start in a minute. The lab host is claimed
    here, not in the catch-up's thread: only the request says whose it is (the instructor has no place in a
    workshop's room) and from which address (the lab hosts an address may hold)."""
    lab = _lab(lab_id)
    services, learner_id = _services(), auth.learner()
    problem = services.run_starts.refusal(learner_id, client_address(request.remote_addr))
    if not problem:
        try:
            services.learners.get(learner_id)
            services.catch_ups.start(learner_id, lab, request.form.get("step", ""))
            services.run_starts.count(learner_id)
        except (RunError, NotReady) as e:
            problem = str(e)
    return _progress_fragment(lab, problem)


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
