"""Commands between nodes, over Redis pub/sub: what must happen on the node
that holds a learner's lab host (the instructor's reset and catch-up, a watched
terminal's open, input and acknowledgements), and the note that the room or a
run changed, so that every node's dashboards and caches follow at once.

Each node listens on a channel of its own (``labnb:node:<name>``) and on the
cluster's (``labnb:all``). A message is one JSON object, ``{"verb", "from",
"id", "args"}``, of at most MAX_MESSAGE bytes; its verb is one of ``VERBS``,
each with its fields' kinds (webapp/stream/fields.py's, as a tab's events
are checked). Redis is reachable by the nodes only (the operator firewalls
it and gives it a password), yet nothing read from it is trusted to be
well-formed: a message that is not is dropped and logged (once per reason a
minute), never handed on. ``send`` is at most once: a message published while
a node's subscriber reconnects is lost, so what must happen in the end is also
put right by the receiver's own loop (the workshop ends the lab host of a
learner whose place ended, whoever ended it). ``ask`` waits for the other
node's ``reply`` (its error, or none, and the handler's answer) until a deadline.

Handlers run in a few threads of the bus's own, so the subscriber never waits
on a lab host; past MAX_PENDING waiting messages, more are dropped and said.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import redis

from ..errors import LabnbError
from ..stream.fields import POSITION, SEQ, BadEvent, Data, Flag, Int, Name, RunId, Str

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 << 10   # bytes of one message: a terminal's input of 64 Ki characters, JSON-escaped, fits
MAX_PENDING = 256         # messages waiting for a handler before more are dropped
WORKERS = 4               # threads that run handlers
ASK_TIMEOUT = 10.0        # seconds an ``ask`` waits for the reply by default
RETRY_MOST = 30.0         # seconds between two attempts to subscribe again, at most
ALL = "labnb:all"

LEARNER, SID, TERM = Name(), Name(), Name(optional=True)
HOST = Name(optional=True)   # a lab's name for one host of the learner's set (none: the first)
ROWS, COLS = Int(2, 500), Int(2, 1000)

# verb: its fields. Handlers get them as keyword arguments, checked.
VERBS: dict[str, dict] = {
    "changed": {"room": Flag()},   # to every node: the room (or only a run) changed: refresh, push the dashboards
    "reset": {"learner": LEARNER},
    "catch_up": {"learner": LEARNER, "lab": Name(), "step": Name()},
    "shell_open": {"sid": SID, "learner": LEARNER, "lab": Name(), "term": TERM, "rows": ROWS, "cols": COLS,
                   "watching": Flag(), "host": HOST},   # the sending node checked the tab: the instructor's, or the learner's own
    "shell_input": {"sid": SID, "learner": LEARNER, "term": TERM, "data": Str(), "host": HOST},
    "shell_resize": {"sid": SID, "learner": LEARNER, "term": TERM, "rows": ROWS, "cols": COLS, "host": HOST},
    "shell_ack": {"sid": SID, "learner": LEARNER, "term": TERM, "end": POSITION, "host": HOST},
    "shell_detach": {"sid": SID},
    "run_running": {"learner": LEARNER, "lab": Name()},
    "run_attach": {"sid": SID, "learner": LEARNER, "run": RunId(), "after": SEQ, "end": POSITION},
    "run_ack": {"sid": SID, "learner": LEARNER, "run": RunId(), "end": POSITION},
    "run_detach": {"sid": SID},
    # to an ``ask``: its ``id``, the error ("": done) and what the handler answered (its receiver checks it)
    "reply": {"error": Str(), "value": Data(dict, "an object")},
}
NODE = Name()   # a node's name (checked where LABNB_NODE is read: a-z0-9, at most 12)
MESSAGE_ID = Name(optional=True)


class BusError(LabnbError):
    """A command could not reach another node, or failed there; the message says which and why."""


def channel(node: str) -> str:
    return f"labnb:node:{node}"


def read(raw) -> tuple[str, str, str | None, dict]:
    """A message from Redis as (verb, from, id, args), every field checked; BadEvent says what is wrong."""
    if not isinstance(raw, (bytes, str)) or len(raw) > MAX_MESSAGE:
        raise BadEvent(f"expected a JSON text of at most {MAX_MESSAGE} bytes")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadEvent("not JSON") from None
    if not isinstance(message, dict) or not message.keys() <= {"verb", "from", "id", "args"}:
        raise BadEvent("expected an object with verb, from, id and args")
    verb, args = message.get("verb"), message.get("args")
    fields = VERBS.get(verb) if isinstance(verb, str) else None
    if fields is None:
        raise BadEvent(f"verb: expected one of {', '.join(VERBS)}")
    if not isinstance(args, dict) or not args.keys() <= fields.keys():
        raise BadEvent(f"{verb}: args: expected an object with {', '.join(fields) or 'nothing'}")
    checked = {name: kind.check(name, args.get(name)) for name, kind in fields.items()}
    return verb, NODE.check("from", message.get("from")), MESSAGE_ID.check("id", message.get("id")), checked


def write(verb: str, node: str, args: dict, message_id: str | None = None) -> str:
    """A message as JSON; a verb or field not declared, or too large, is a bug here (BadEvent)."""
    fields = VERBS.get(verb)
    if fields is None or not args.keys() <= fields.keys():
        raise BadEvent(f"{verb}: not a declared verb, or its args {sorted(args)} are not {sorted(fields or {})}")
    for name, kind in fields.items():
        kind.check(name, args.get(name))
    data = json.dumps({"verb": verb, "from": node, "id": message_id, "args": args}, separators=(",", ":"))
    if len(data.encode()) > MAX_MESSAGE:
        raise BadEvent(f"{verb}: the message is larger than {MAX_MESSAGE} bytes")
    return data


class Bus:
    """This node's end of the bus. ``on(verb, handler)`` before ``start``; a handler takes the verb's fields
    as keyword arguments and ``origin`` (the sending node); what it raises as a LabnbError is the reply's
    error."""

    def __init__(self, url: str, node: str, client: redis.Redis | None = None):
        self.node = node
        self._redis = client or redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10,
                                                     health_check_interval=30)
        self._handlers: dict[str, Callable] = {}
        self._waiting: dict[str, tuple[threading.Event, list]] = {}   # ask id: (answered, [error])
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="bus")
        self._closed = threading.Event()
        self.subscribed = threading.Event()   # set while the subscriber listens (tests wait for it)
        self._said: dict[str, float] = {}     # a dropped message's reason: when it was last logged
        self._thread: threading.Thread | None = None

    def on(self, verb: str, handler: Callable) -> None:
        if verb not in VERBS or verb == "reply":
            raise ValueError(f"no verb {verb!r} to handle: declare it in VERBS (webapp/cluster/bus.py)")
        self._handlers[verb] = handler

    def start(self) -> "Bus":
        self._thread = threading.Thread(target=self._listen, name="bus", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(5)
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._redis.close()

    # -- sending -------------------------------------------------------------------
    def send(self, node: str, verb: str, **args) -> None:
        """Publish ``verb`` to ``node`` (at most once). BusError if Redis cannot be reached."""
        self._publish(channel(node), write(verb, self.node, args), node)

    def broadcast(self, verb: str, **args) -> None:
        """Publish ``verb`` to every other node (at most once); a Redis that cannot be reached is logged."""
        try:
            self._publish(ALL, write(verb, self.node, args), "every node")
        except BusError as e:
            self._say(str(e))

    def ask(self, node: str, verb: str, timeout: float = ASK_TIMEOUT, **args) -> dict:
        """``verb`` done on ``node``: its handler's answer (an object, unchecked: the caller checks what it
        uses); BusError with its error, or if it does not answer within ``timeout`` seconds."""
        message_id = secrets.token_hex(8)
        answered, error = threading.Event(), []   # the reply's args, once it came
        self._waiting[message_id] = (answered, error)
        try:
            self._publish(channel(node), write(verb, self.node, args, message_id), node)
            if not answered.wait(timeout):
                raise BusError(f"node {node} did not answer {verb} within {timeout:g} s: is it up, and does it "
                               f"reach Redis (LABNB_REDIS_URL)? Try again, or see its log")
        finally:
            self._waiting.pop(message_id, None)
        if error[0]["error"]:
            raise BusError(error[0]["error"])
        return error[0]["value"]

    def _publish(self, to: str, data: str, whom: str) -> None:
        try:
            self._redis.publish(to, data)
        except redis.RedisError as e:
            raise BusError(f"cannot reach Redis to tell {whom} ({e}): check that it runs and that "
                           f"LABNB_REDIS_URL is right") from None

    # -- receiving -----------------------------------------------------------------
    def _listen(self) -> None:
        """Subscribe to this node's channel and the cluster's, and again after Redis went away (waiting longer
        each time, up to RETRY_MOST s)."""
        wait = 0.5
        while not self._closed.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(channel(self.node), ALL)
                self.subscribed.set()
                wait = 0.5
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._receive(message.get("data"))
            except (redis.RedisError, OSError) as e:
                self.subscribed.clear()
                self._say(f"lost Redis ({e}); subscribing again in {wait:g} s")
                self._closed.wait(wait)
                wait = min(wait * 2, RETRY_MOST)
            finally:
                self.subscribed.clear()
                pubsub.close()

    def _receive(self, raw) -> None:
        try:
            verb, origin, message_id, args = read(raw)
        except BadEvent as e:
            self._say(f"dropped a message that is not well-formed: {e}")
            return
        if origin == self.node:
            return   # our own broadcast
        if verb == "reply":
            waiting = self._waiting.get(message_id or "")
            if waiting is not None:
                waiting[1].append(args)
                waiting[0].set()
            return
        handler = self._handlers.get(verb)
        if handler is None:
            self._say(f"dropped {verb} from node {origin}: this node does not handle it")
            return
        if not self._pending.acquire(blocking=False):
            self._say(f"dropped {verb} from node {origin}: {MAX_PENDING} messages wait already")
            return
        self._workers.submit(self._handle, handler, verb, origin, message_id, args)

    def _handle(self, handler: Callable, verb: str, origin: str, message_id: str | None, args: dict) -> None:
        error, value = "", None
        try:
            value = handler(origin=origin, **args)
        except LabnbError as e:
            error = str(e)
        except Exception as e:   # a bug: say it here, and to the node that asked
            log.exception("bus: handling %s from node %s", verb, origin)
            error = f"node {self.node} could not do {verb}: unexpected error {e!r}; see its log"
        finally:
            self._pending.release()
        if message_id is not None:
            try:
                reply = {"error": error[:4000], "value": value if isinstance(value, dict) else {}}
                self._publish(channel(origin), write("reply", self.node, reply, message_id), origin)
            except BusError as e:
                self._say(str(e))

    def _say(self, what: str) -> None:
        """Log ``what`` at most once a minute (a flood from Redis must not flood the log)."""
        now = time.monotonic()
        if len(self._said) > 100:   # reasons name what came: bounded too
            self._said.clear()
        if now - self._said.get(what, -60) >= 60:
            self._said[what] = now
            log.warning("bus (node %s): %s", self.node, what)
