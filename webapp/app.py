"""labnb: a web lab notebook server. ``create_app`` is the Flask app factory."""
from __future__ import annotations

import functools
import logging
import os
import secrets

from flask import Flask
from flask_socketio import SocketIO

from .guard.auth import Guard, allowed_hosts, csrf_token, operator_token, refuse, secret_key
from .config import Settings
from .lab import load_labs
from .labhost.base import LabHostError
from . import status
from .stream import websocket
from .guard.limits import LabHostsPerAddress, NewLearners, Refusals, RunStarts, SocketLimits, WrongCodes

log = logging.getLogger(__name__)


class Services:
    """What the views and Socket.IO handlers share: labs, pool, learners, store, runs, shells, network pictures.

    ``start`` opens the store and starts the pool's thread; it must run in the
    process that serves (gunicorn's worker, after the fork): neither threads
    nor SQLite connections survive a fork.
    """

    def __init__(self, settings: Settings, pool, socketio: SocketIO):
        from .learners.registry import Learners
        from .network.views import Pictures

        self.settings, self.pool, self.socketio = settings, pool, socketio
        self.labs = _workshop_labs(settings, {lab.id: lab for lab in load_labs(settings.labs_dir)})
        self.learners = Learners(pool)
        self.pictures = Pictures()
        self.gateway = None   # webapp/proxy/gateway.py, made with the app
        self.guard = None
        self.run_starts = None   # webapp/limits.py, made with the app
        self.workshop = None
        if settings.workshop:
            from .workshop.manager import Workshop
            self.workshop = Workshop(settings, self.labs)
        self.store = None
        self.runs = None
        self.shells = None

    def start(self) -> "Services":
        from . import runs, shells
        from .stream import protocol
        from .stream.events import Events
        from .store import Limits, Store

        self.store = Store(os.path.join(self.settings.state_dir, self.settings.store_file),
                           Limits.from_settings(self.settings))
        cut = self.store.mark_cut_off()
        if cut:
            log.warning("%d run(s) were cut off when the server last stopped; they are marked so", cut)
        emit = functools.partial(protocol.emit, self.socketio)   # declared events only
        self.runs = runs.RunManager(self.store, self.learners, self.labs, emit)
        self.shells = shells.ShellManager(self.learners, self.labs, emit, self.settings.shell_idle_timeout)
        events = Events(self.socketio)
        runs.register(events, self.runs, self.labs, self.run_starts)
        shells.register(events, self.shells)
        if self.workshop is not None:
            self.workshop.start(self, events)
        else:   # the open server gives back idle lab hosts (a workshop's room ends idle places instead)
            self.learners.reclaim_idle(self.settings.idle_minutes * 60, self.runs.busy, events, self.shells)
        self.pool.start()
        return self

    def close(self) -> None:
        """Stop every run (recorded as interrupted) and shell, then destroy every lab host."""
        if self.workshop is not None:
            self.workshop.close()
        if self.runs is not None:
            self.runs.close()
        if self.shells is not None:
            self.shells.close()
        self.learners.close()
        self.pool.close()
        if self.store is not None:
            self.store.close()


def _workshop_labs(settings: Settings, labs: dict) -> dict:
    """The labs a workshop is about (LABNB_WORKSHOP_LABS), or every lab."""
    wanted = [w.strip() for w in settings.workshop_labs.split(",") if w.strip()] if settings.workshop else []
    unknown = [w for w in wanted if w not in labs]
    if unknown:
        raise LabHostError(f"the workshop's labs {', '.join(unknown)} are not in {settings.labs_dir}",
                           f"Choose among {', '.join(labs) or 'none'}")
    return {w: labs[w] for w in wanted} if wanted else labs


# Seconds a tab has to answer the server's ping (every 25 s). Clients also use it: python-socketio's
# gives up after max(interval, timeout) + 5 s without sending anything, socket.io-client's after interval +
# timeout without a ping. Engine.IO's 20 s made a room of 30 clients doing docker runs on 2 cores drop all
# their connections (a ping came over 5 s late; bench/workshop.py); a dead tab is seen within 85 s instead.
PING_TIMEOUT = 60


def cookie_name(port: int | None) -> str:
    return "labnb" if port is None else f"labnb-{port}"


def create_app(settings: Settings | None = None, pool=None, bind_host: str = "127.0.0.1",
               port: int | None = None) -> Flask:
    """The Flask app with its Socket.IO server; ``pool`` hands out lab hosts
    (a labhost.pool.Pool, made from ``settings`` if not given). Call
    ``app.extensions["labnb"].start()`` in the serving process.

    The session cookie is named for the ``port``: browsers send a host's
    cookies to all its ports, so two labnb servers on one machine would
    otherwise overwrite each other's (as Jupyter names its cookie). It lives
    ``session_days`` after the browser's last request (each one renews it).
    SameSite=Lax: other sites' pages cannot send it with their requests,
    forms or WebSockets, but a link to the server from a mail or chat page
    carries it (Strict would not), so following the workshop's URL again
    keeps a learner who they were."""
    from .labhost.pool import Pool
    from .network import views as network
    from .proxy import views as proxy
    from .proxy.gateway import Gateway
    from .notebook.views import bp

    settings = settings or Settings.from_env()
    if not settings.token:
        settings.token = secrets.token_hex(24)
    key = secret_key(settings.state_dir)
    settings.operator_token = settings.operator_token or operator_token(settings.token, key)
    if settings.operator_token == settings.token:
        raise LabHostError("LABNB_OPERATOR_TOKEN is the learners' LABNB_TOKEN: every learner would be the operator",
                           "Set another LABNB_OPERATOR_TOKEN, or unset it to have one made")
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(
        LABNB=settings,
        SECRET_KEY=key,
        SESSION_COOKIE_NAME=cookie_name(port),
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=int(settings.session_days * 24 * 3600),
    )
    refusals = Refusals()
    guard = Guard(settings.token, settings.operator_token, allowed_hosts(bind_host),
                  NewLearners(settings.new_learners_per_address, settings.learner_window, settings.max_learners,
                              refusals))
    guard.init_app(app)
    # cors_allowed_origins=None: Engine.IO accepts only the page's own origin;
    # serializer: MessagePack, so output goes as raw bytes in one WebSocket
    # message (no JSON escaping, no UTF-8 decoding on the server; JSON text
    # capped the stream at about 30 MB/s, docs/benchmarks.md);
    # max_http_buffer_size: the largest event is shell_input, 64 Ki characters
    # of up to 4 bytes each; a larger packet drops the connection;
    # transports: WebSocket only, as the page uses (no long-polls to count);
    # async_handlers=False: a tab's events are handled in order in its WebSocket's thread, not in a
    # thread each, and its WebSocket reads no further ahead than a few messages (webapp/websocket.py).
    socketio = SocketIO(app, async_mode="threading", max_http_buffer_size=(64 << 10) * 4 + 1024,
                        cors_allowed_origins=None, serializer="msgpack", transports=["websocket"],
                        ping_timeout=PING_TIMEOUT, async_handlers=False)
    websocket.bound(socketio)
    app.wsgi_app = SocketLimits(app.wsgi_app, app, settings, refusals)
    services = app.extensions["labnb"] = Services(settings, pool or Pool(settings), socketio)
    services.guard = guard
    services.run_starts = RunStarts(settings.runs_per_minute, refusals)
    if not settings.workshop:   # a workshop's room seats whole classrooms, often from one address
        services.learners.per_address = LabHostsPerAddress(settings, refusals)
    # outermost: a request for a lab host's web service never reaches the app (it has a host name of its own)
    services.gateway = app.wsgi_app = Gateway(app.wsgi_app, services, key, cookie_name(port), refusals)
    app.register_blueprint(bp)
    app.register_blueprint(network.bp)
    app.register_blueprint(proxy.bp)
    if settings.workshop:
        from .workshop import views
        from .workshop.manager import new_access_code

        settings.access_code = settings.access_code or new_access_code()
        guard.open_endpoints = views.OPEN
        guard.wrong_codes = WrongCodes(settings.join_attempts, settings.learner_window, refusals)
        app.register_blueprint(views.bp)
    from .learners.registry import NotReady   # a page that raced its learner's place ending: say so, not a 500
    app.register_error_handler(NotReady, lambda e: refuse(str(e), 409))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["status_labels"] = status.LABELS
    return app
