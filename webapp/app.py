"""labnb: a web lab notebook server. ``create_app`` is the Flask app factory; ``build_services``, its
composition root, builds every service in one place, in the order they need each other."""
from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import threading

from flask import Flask
from flask_socketio import SocketIO

from . import status
from .config import Settings
from .errors import ConfigError
from .guard.auth import Guard, allowed_hosts, csrf_token, operator_mark, operator_token, refuse, secret_key
from .guard.limits import (LabHostsPerAddress, NewLearners, Refusals, RunStarts, SocketLimits, WrongCodes,
                           fit_memory, mem_total_mb)
from .guard.proxied import ForwardedFor, Health
from .guard.admission import OPEN
from .lab import load_labs
from .labhost import backends
from .stream import websocket
from .workshop.manager import new_access_code, size_for_room

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Resolved(Settings):
    """Settings with everything derived from them worked out (``resolve``): what services are built from;
    ``sizing`` says how a workshop's capacity was chosen, for the operator."""
    sizing: str = ""


def resolve(settings: Settings, given: frozenset[str] | None = None) -> Resolved:
    """The settings a server runs with, worked out once: its token (a new random one if none is set), the
    operator's (derived from it and the secret key), a workshop's access code (a new one) and sizing
    (``size_for_room``: a capacity not given is what fits), and, for an isolated backend's lab hosts, as many
    as fit the machine's memory (``fit_memory``).
    ``given``: the settings the operator chose (on the command line or in the environment), kept as they are;
    by default, those that differ from their defaults (an app built in code: what it was built with).
    Raises ConfigError naming the setting to change."""
    if isinstance(settings, Resolved):
        return settings
    if given is None:
        given = frozenset(f.name for f in dataclasses.fields(Settings)
                          if getattr(settings, f.name) != f.default)
    if settings.node:   # a cluster's node: the cluster's secret key, tokens and access code
        from .cluster import join

        settings = join.settle(settings, new_access_code)
    elif settings.database_url:   # one machine on PostgreSQL: never on a cluster's store
        from .cluster import join

        join.alone(settings)
    token = settings.token or secrets.token_hex(24)
    operator = settings.operator_token or operator_token(token, secret_key(settings.state_dir))
    if operator == token:
        raise ConfigError("LABNB_OPERATOR_TOKEN", "LABNB_OPERATOR_TOKEN is the learners' LABNB_TOKEN: every "
                          "learner would be the operator", "Set another LABNB_OPERATOR_TOKEN, or unset it to have "
                          "one made")
    settings = dataclasses.replace(settings, token=token, operator_token=operator)
    isolated = backends.get(settings.backend).isolated   # each with a memory limit: as many as the machine fits
    total_mb = mem_total_mb() if isolated else None
    sizing = ""
    if settings.workshop:
        hosts = max((len(lab.hosts) for lab in served_labs(settings).values()), default=1) or 1
        settings, sizing = size_for_room(
            dataclasses.replace(settings, access_code=settings.access_code or new_access_code()), given, total_mb,
            hosts)
    if isolated:
        settings = fit_memory(settings, "max_lab_hosts" in given or bool(settings.workshop), total_mb)
    return Resolved(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}, sizing=sizing)


class Services:
    """What the views and Socket.IO handlers share: labs, pool, learners, store, runs and catch-ups, shells,
    network pictures, and a workshop's room (None on the open server). ``build_services`` makes it whole: no
    attribute is filled in later. ``start`` starts the threads (the pool's, the workshop's, the idle
    lab hosts' reclaim, the idle shells' end)."""

    def __init__(self, *, settings: Resolved, pool, socketio: SocketIO, labs: dict, store, learners, pictures,
                 guard: Guard, run_starts: RunStarts, runs, catch_ups, shells, events, workshop, gateway, metrics,
                 node, agent=None, bus=None, images=None):
        self.settings, self.pool, self.socketio, self.labs = settings, pool, socketio, labs
        self.images = images   # the image cache and forwarder (webapp/images/), or None: no lab names images
        self.metrics = metrics   # the operator's Prometheus metrics (web/metrics.py)
        self.store, self.learners, self.pictures, self.guard = store, learners, pictures, guard
        self.run_starts, self.runs, self.catch_ups = run_starts, runs, catch_ups
        self.shells, self.events = shells, events
        self.workshop, self.gateway = workshop, gateway
        self.node = node   # this node of a cluster (webapp/cluster/node.py); None on one machine, for good
        self.agent = agent   # HAProxy's agent-check server (LABNB_AGENT_PORT), or None
        self.bus = bus   # commands between a cluster's nodes (webapp/cluster/bus.py); None on one machine

    def start(self) -> "Services":
        cut = self.node.start() if self.node is not None else self.store.mark_cut_off()   # a node: its own
        if cut:
            log.warning("%d run(s) were cut off when the server last stopped; they are marked so", cut)
        if self.workshop is not None:
            self.workshop.start(self.events)
        if self.bus is not None:
            self.bus.start()
        self.learners.start()
        self.shells.start()
        if self.images is None:
            self.pool.start()
        else:   # the labs' images shared first (seconds), so that the warm pool's lab hosts have them
            threading.Thread(target=self._share_images, name="image-layers", daemon=True).start()
        if self.agent is not None:
            self.agent.start()
        return self

    def _share_images(self) -> None:
        """A learner who comes meanwhile gets a lab host made now, which pulls its own copies."""
        self.images.share_layers()
        self.pool.start()

    def close(self) -> None:
        """Stop every run (recorded as interrupted) and shell, then destroy every lab host."""
        if self.agent is not None:
            self.agent.close()
        if self.bus is not None:
            self.bus.close()
        if self.workshop is not None:
            self.workshop.close()
        self.runs.close()
        self.shells.close()
        self.learners.close()
        self.pool.close()
        if self.images is not None:
            self.images.close()
        if self.node is not None:
            self.node.close()
        self.store.close()


def build_services(settings: Resolved, app: Flask, socketio: SocketIO, pool, labs: dict, key: bytes,
                   bind_host: str, cookie: str, port: int | None = None, images=None) -> Services:
    """Every service, each given what it needs when it is made: the store, the admission (who may be admitted:
    everyone on the open server, a workshop's room), the Guard, the learners, runs and shells, the Socket.IO
    events, the workshop, and the WSGI layers in front of the app (SocketLimits, then the Gateway); a
    cluster's node, its heartbeat (announcing ``bind_host`` and ``port``) and its learners' placements.

    It opens the store (``open_store``: SQLite and its checkpoint thread, or PostgreSQL's connections): call it
    in the process that serves (gunicorn's worker, after the fork), as neither threads nor connections survive
    a fork."""
    from . import runs as run_service, shells as shell_service
    from .cluster import node as cluster_node
    from .cluster.moves import Moves
    from .learners.registry import Learners
    from .network.views import Pictures
    from .proxy.gateway import Gateway
    from .store import open_store
    from .stream import protocol
    from .stream.events import Events
    from .web.metrics import Metrics

    refusals = Refusals()
    store = open_store(settings)
    moves = Moves(store, settings.node) if settings.node else None   # a node's: where its learners' lab hosts are
    new_learners = NewLearners(settings.new_learners_per_address, settings.learner_window, settings.max_learners,
                               refusals)
    # behind HAProxy, the Host is the name learners opened, which a node on its private address cannot know
    hosts = None if settings.trusted_proxies else allowed_hosts(bind_host)
    if settings.workshop:
        from .workshop import views
        from .workshop.manager import RoomAdmission, Workshop, code_mark, room_key
        from .workshop.room import Room, Times
        from .workshop.shared import SharedRoom

        times = Times.from_settings(settings)
        room = (SharedRoom(settings.capacity, times, store, room_key(settings.access_code, settings.token))
                if settings.node else Room(settings.capacity, times))   # a cluster's nodes share one room
        admission = RoomAdmission(room, code_mark(settings.access_code), operator_mark(settings.operator_token),
                                  store, settings.node)
        guard = Guard(settings.token, settings.operator_token, hosts, new_learners, admission,
                      views.OPEN, WrongCodes(settings.join_attempts, settings.learner_window, refusals))
        # a workshop's room holds whole classrooms, often from one address, and ends idle places itself
        learners = Learners(pool, admission, moves=moves)
    else:   # the open server limits lab hosts per address, and gives back idle ones
        guard = Guard(settings.token, settings.operator_token, hosts, new_learners)
        learners = Learners(pool, OPEN, LabHostsPerAddress(settings, refusals), settings.idle_minutes * 60, moves)
    node = (cluster_node.Node(store, settings.node, cluster_node.announced(bind_host, port or 0), settings.agent_port,
                              cluster_node.image_id(settings), functools.partial(cluster_node.pool_facts, pool))
            if settings.node else None)
    guard.init_app(app)

    emit = functools.partial(protocol.emit, socketio)   # declared events only

    runs = run_service.RunManager(store, learners, labs, emit)
    catch_ups = run_service.CatchUps(store, runs, learners)
    shells = shell_service.ShellManager(learners, labs, emit, settings.shell_idle_timeout)
    events = Events(socketio, learners.event_refusal)
    run_starts = RunStarts(settings.runs_per_minute, refusals)
    bus = None
    if settings.redis_url and settings.node:   # a cluster's node: commands to and from the others
        from .cluster.bus import Bus
        from .cluster.watch import NodeRuns, NodeShells

        bus = Bus(settings.redis_url, settings.node)
    # a learner of another node's: their runs and terminals are there (cluster/watch.py)
    run_service.register(events, NodeRuns(runs, bus, store, settings.node, learners) if bus else runs, labs,
                         run_starts)
    shell_service.register(events, NodeShells(shells, bus, store, settings.node, learners) if bus else shells)
    workshop = (Workshop(settings, labs, admission, guard, store, runs, catch_ups, learners, socketio, bus)
                if settings.workshop else None)
    app.wsgi_app = SocketLimits(Health(app.wsgi_app), app, settings, refusals)
    # outermost: a request for a lab host's web service never reaches the app (it has a host name of its own)
    gateway = app.wsgi_app = Gateway(app.wsgi_app, settings, learners, key, cookie, refusals)
    # a cluster's nodes report every node's health from the shared store (a dead one cannot report its own)
    metrics = Metrics(settings, pool, learners, runs, refusals, workshop.room if workshop else None,
                      store.nodes if settings.node else None)
    if settings.trusted_proxies:   # behind HAProxy: the client's address is what the proxy says it is
        app.wsgi_app = ForwardedFor(app.wsgi_app, settings.trusted_proxies)
    agent = None
    if settings.agent_port:   # HAProxy in front asks this node how many new learners it can take
        from .cluster.agent import Agent, node_report

        agent = Agent(node_report(settings, pool, admission.room if settings.workshop else None,
                                  draining=node.draining if node else (lambda: False),
                                  broken=lambda: pool.cannot_make() or (node.trouble() if node else None)),
                      settings.agent_port, bind_host)
    return Services(settings=settings, pool=pool, socketio=socketio, labs=labs, store=store, learners=learners,
                    pictures=Pictures(), guard=guard, run_starts=run_starts, runs=runs, catch_ups=catch_ups, shells=shells,
                    events=events, workshop=workshop, gateway=gateway, metrics=metrics, node=node, agent=agent,
                    bus=bus, images=images)


def served_labs(settings: Settings) -> dict:
    """The labs the server offers: a workshop's (LABNB_WORKSHOP_LABS), or every lab in LABNB_LABS_DIR."""
    labs = {lab.id: lab for lab in load_labs(settings.labs_dir)}
    wanted = [w.strip() for w in settings.workshop_labs.split(",") if w.strip()] if settings.workshop else []
    unknown = [w for w in wanted if w not in labs]
    if unknown:
        raise ConfigError("LABNB_WORKSHOP_LABS", f"the workshop's labs {', '.join(unknown)} are not in "
                          f"{settings.labs_dir}", f"Choose among {', '.join(labs) or 'none'}")
    return {w: labs[w] for w in wanted} if wanted else labs


# Seconds a tab has to answer the server's ping (every 25 s). Clients also use it: python-socketio's
# gives up after max(interval, timeout) + 5 s without sending anything, socket.io-client's after interval +
# timeout without a ping. Engine.IO's 20 s made a room of 30 clients doing docker runs on 2 cores drop all
# their connections (a ping came over 5 s late; bench/workshop.py); a dead tab is seen within 85 s instead.
PING_TIMEOUT = 60
CHANNEL = "labnb:socketio"   # Socket.IO's channel in Redis; the bus's are labnb:node:<name> and labnb:all


def cookie_name(port: int | None) -> str:
    return "labnb" if port is None else f"labnb-{port}"


def create_app(settings: Settings | None = None, pool=None, bind_host: str = "127.0.0.1",
               port: int | None = None, labs: dict | None = None) -> Flask:
    """The Flask app with its Socket.IO server and its services (``build_services``), made from
    ``settings`` resolved (``resolve``: from the environment if None). ``pool`` hands out lab hosts (a
    labhost.pool.Pool, made from the settings if not given); ``labs``: ``served_labs`` if not given. Call
    it in the serving process, then ``app.extensions["labnb"].start()``.

    The session cookie is named for the ``port``: browsers send a host's
    cookies to all its ports, so two labnb servers on one machine would
    otherwise overwrite each other's (as Jupyter names its cookie). It lives
    ``session_days`` after the browser's last request (each one renews it).
    SameSite=Lax: other sites' pages cannot send it with their requests,
    forms or WebSockets, but a link to the server from a mail or chat page
    carries it (Strict would not), so following the workshop's URL again
    keeps a learner who they were. A cluster's nodes name it alike: a learner's
    next request may reach another node."""
    from .images import service as image_service
    from .labhost.pool import Pool
    from .network import views as network
    from .proxy import views as proxy
    from .notebook.views import bp
    from .web import metrics
    from .web.assets import Assets

    settings = resolve(settings or Settings.from_env())
    key = secret_key(settings.state_dir)
    cookie = cookie_name(None if settings.node else port)   # a cluster's: one, whichever node serves
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    Assets(app.static_folder).init_app(app)   # versioned static URLs that browsers keep
    app.config.update(
        LABNB=settings,
        SECRET_KEY=key,
        SESSION_COOKIE_NAME=cookie,
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=int(settings.session_days * 24 * 3600),
    )
    # cors_allowed_origins=None: Engine.IO accepts only the page's own origin;
    # serializer: MessagePack, so output goes as raw bytes in one WebSocket
    # message (no JSON escaping, no UTF-8 decoding on the server; JSON text
    # capped the stream at about 30 MB/s, docs/benchmarks.md);
    # max_http_buffer_size: the largest event is shell_input, 64 Ki characters
    # of up to 4 bytes each; a larger packet drops the connection;
    # transports: WebSocket only, as the page uses (no long-polls to count);
    # async_handlers=False: a tab's events are handled in order in its WebSocket's thread, not in a
    # thread each, and its WebSocket reads no further ahead than a few messages (webapp/stream/websocket.py).
    # message_queue (a cluster, LABNB_REDIS_URL): an event emitted on one node reaches the tabs of every node,
    # through Redis's channel CHANNEL (Flask-SocketIO's way to run several servers).
    queue = {"message_queue": settings.redis_url, "channel": CHANNEL} if settings.redis_url else {}
    socketio = SocketIO(app, async_mode="threading", max_http_buffer_size=(64 << 10) * 4 + 1024,
                        cors_allowed_origins=None, serializer="msgpack", transports=["websocket"],
                        ping_timeout=PING_TIMEOUT, async_handlers=False, **queue)
    websocket.bound(socketio)
    labs = served_labs(settings) if labs is None else labs
    # the image cache and each new lab host's forwarder, when a served lab names images (webapp/images/)
    images = image_service.for_labs(settings, labs.values())
    if pool is None:
        pool = Pool(settings, prepare=images.prepare if images else None)
    elif images:   # made before the fork (labnb serve), started after this: each lab host it makes gets one
        pool.prepare = images.prepare
    app.extensions["labnb"] = build_services(settings, app, socketio, pool, labs, key, bind_host, cookie, port,
                                             images)
    app.register_blueprint(bp)
    app.register_blueprint(network.bp)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(metrics.bp)
    if settings.workshop:
        from .workshop import views

        app.register_blueprint(views.bp)
    from .learners.registry import NotReady   # a page that raced its learner's place ending: say so, not a 500
    app.register_error_handler(NotReady, lambda e: refuse(str(e), 409))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["status_labels"] = status.LABELS
    return app
