"""The lab page's side of lab hosts' web services: the list of ports that listen, and the link that hands a
ticket to the gateway (the instructor's, for a watched learner: workshop/views.py through these helpers)."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..guard import auth
from ..guard.auth import LOOPBACK_NAMES
from ..labhost.base import LabHostError
from ..learners.registry import READY
from ..guard.sharing import Busy
from .gateway import ENTER, host_name

bp = Blueprint("proxy", __name__)


def _ready_host(learner_id: str):
    learner = current_app.extensions["labnb"].learners.peek(learner_id)
    return learner.host if learner is not None and learner.state == READY else None


def unreachable() -> str:
    """Why this browser cannot open the services' host names, or ""."""
    settings = current_app.extensions["labnb"].settings
    if settings.proxy_domain == "localhost" and request.host.rsplit(":", 1)[0].strip("[]") not in LOOPBACK_NAMES:
        return ("These open under labnb's own address (names under .localhost lead only to the browser's own "
                "machine), sandboxed: an app that uses absolute links or cookies may not work there. The "
                "operator can give each its own host name with LABNB_PROXY_DOMAIN, a domain whose every name "
                "leads to this server (a wildcard DNS record).")
    return ""


def ports_fragment(learner_id: str, link, refresh: str) -> str:
    """The ports that listen in ``learner_id``'s lab host, each a link ``link(port)``."""
    host, found, error, fresh = _ready_host(learner_id), [], "", True
    if host is not None:
        try:
            found, fresh = current_app.extensions["labnb"].gateway.listening(host)
        except (LabHostError, OSError) as e:
            error = f"the ports could not be listed: {e}"
        except Busy as e:
            error = str(e)
    return render_template("_ports.html", ports=found, error=error, ready=host is not None, link=link,
                           refresh=refresh, unreachable=unreachable(), again=not fresh)


def open_port(learner_id: str, port: int):
    """A redirect into the service on ``port`` of ``learner_id``'s lab host, for this browser."""
    host = _ready_host(learner_id)
    if host is None or not 0 < port < 65536:
        return auth.refuse("there is no lab host to open a port of now: wait until it is ready", 409)
    services = current_app.extensions["labnb"]
    if request.args.get("via") == "path" or unreachable():
        return redirect(services.gateway.path_link(learner_id, host.id, port), 302)
    ticket = services.gateway.ticket(learner_id, host.id, port)
    server_port = request.host.rsplit(":", 1)[1] if request.host.rsplit(":", 1)[-1].isdigit() else ""
    where = host_name(port, host.id, services.settings.proxy_domain) + (f":{server_port}" if server_port else "")
    return redirect(f"{request.scheme}://{where}{ENTER}?ticket={quote(ticket)}", 302)


@bp.get("/ports")
def ports():
    return ports_fragment(auth.learner(), lambda port: url_for("proxy.open_own", port=port), request.path)


@bp.get("/proxy/<int:port>/")
def open_own(port: int):
    return open_port(auth.learner(), port)
