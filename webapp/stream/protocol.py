"""Every Socket.IO event between a browser tab and the server, both ways,
with its fields: the one list. docs/protocol.md is made from it
(``python -m webapp.stream.protocol > docs/protocol.md``) and
tests/unit/test_protocol_doc.py checks that the doc, the server's handlers
and emits, and static/*.js all agree with it.

A tab's events are registered against these declarations (``Events.on``
reads their payloads with them); the server's own go out through ``emit``,
which refuses an event that is not declared here, and checks a payload's
fields against its declaration, so a new event or field is added here first.
A payload that does not match is a bug: under pytest or ``python -X dev``
(``STRICT``) it raises, so the tests, which make the server emit every
event, catch it; in a server it is logged (once per event) and sent, since
raising in the thread that streams a learner's output or pushes the
dashboard would stop it. The values' kinds are checked too under ``-X dev``
(``CHECK_KINDS``): that costs each chunk of output about 2 µs more, the
field names' check a quarter of that.
"""
from __future__ import annotations

import dataclasses
import logging
import sys

from flask_socketio import SocketIO
from socketio import PubSubManager

from .fields import (MAX_POSITION, POSITION, SEQ, BadEvent, Bytes, Data, Flag, Int, Kind, Name, Number, Owner, RunId,
                     Str, Text)

MAX_INPUT = 64 << 10           # bytes of a terminal's input per event
ROWS, COLS = (2, 500), (2, 1000)
TERM = Name(optional=True)     # a lab's named terminal; absent: the learner's free shell
HOST = Name(optional=True)     # the free shell's host, by the lab's name for it; absent: the lab's first

# Socket.IO's own events, which the page's socket.io client raises by itself
RESERVED = {"connect": "the socket connected (again): the page opens its lab and re-attaches its runs",
            "connect_error": "the server refused the socket (a limit, a signed-out learner): the page says why",
            "disconnect": "the socket is gone: the page says it reconnects"}

CHECK_KINDS = sys.flags.dev_mode   # check every emitted value's kind, not only the payload's field names
STRICT = sys.flags.dev_mode or "pytest" in sys.modules   # a mismatched payload raises (else: logged, sent)
log = logging.getLogger(__name__)
_logged: set[str] = set()   # events whose mismatch was logged


class ProtocolError(Exception):
    """The server emitted what this module does not declare: a bug in the server."""


@dataclasses.dataclass(frozen=True, eq=False)
class Event:
    name: str
    fields: dict[str, Kind]
    about: str
    reply: str = ""     # a tab's event: what its acknowledgement holds (besides {"error": ...})
    to: str = ""        # a server's event: which tabs hear it
    names: frozenset[str] = dataclasses.field(init=False)
    required: frozenset[str] = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "names", frozenset(self.fields))
        object.__setattr__(self, "required", frozenset(n for n, k in self.fields.items() if not k.optional))

    def read(self, data) -> list:
        """A tab's payload: its fields' values in declared order, checked (BadEvent)."""
        if not isinstance(data, dict):
            raise BadEvent(f"expected an object with {', '.join(self.fields)}, got {type(data).__name__}")
        return [kind.check(name, data.get(name)) for name, kind in self.fields.items()]

    def check(self, payload: dict, kinds: bool = True) -> None:
        """A payload of the server's: every field declared, every required one there (ProtocolError)."""
        if not (payload.keys() <= self.names and self.required <= payload.keys()):
            raise ProtocolError(f"{self.name}: the payload's fields {sorted(payload)} are not the declared "
                                f"{sorted(self.fields)} (webapp/stream/protocol.py)")
        if kinds:
            try:
                for name, value in payload.items():
                    self.fields[name].check(name, value)
            except BadEvent as e:
                raise ProtocolError(f"{self.name}: {e} (webapp/stream/protocol.py)") from None


def _events(*events: Event) -> dict[str, Event]:
    return {e.name: e for e in events}


# What a tab sends. Each gets an acknowledgement: what ``reply`` says, or
# {"error": "<event>: <what went wrong>"} with an ``error`` event to the tab.
TO_SERVER = _events(
    Event("open", {"lab": Name(), "learner": Owner()}, reply="{running: [{run, step}]}",
          about="The tab shows the lab: it joins the lab's channel (run_started, run_ended) and learns which of its "
                "steps run now."),
    Event("run", {"lab": Name(), "step": Name()}, reply="{run: id}",
          about="Starts a run of the step on the learner's lab host, this tab attached to it. Refused while "
                "another step runs, or past the learner's runs per minute."),
    Event("attach", {"run": RunId(), "after": SEQ, "end": POSITION, "learner": Owner()}, reply="{status}",
          about="Sends the tab the run's chunks after seq `after` (it has taken in up to `end`), then live ones, "
                "then `end`; with `after` -1 and more than 2 MiB stored, a `snapshot` of the head and tail first."),
    Event("ack", {"run": RunId(), "end": POSITION, "learner": Owner()},
          about="The tab has taken in the run's output up to `end`: it is sent on within its window (2 MiB), "
                "and the command reads on as far as the furthest tab."),
    Event("stop", {"run": RunId()}, reply="{ok: true}",
          about="Stops one of the learner's own runs (^C, then harder)."),
    Event("shell_open", {"lab": Name(), "term": TERM, "rows": Int(*ROWS, default=24), "cols": Int(*COLS, default=80),
                         "learner": Owner(), "host": HOST}, reply="{ok: true}",
          about="Shows the learner's free shell (on the lab's host `host`, one per host), or with `term` the "
                "lab's named terminal, in this tab, started if need be; its first `shell_output` is the backlog. "
                "The instructor watching sees only one that runs, read-only."),
    Event("shell_input", {"term": TERM, "data": Text(MAX_INPUT), "host": HOST},
          about="Typed text, into the terminal's input whole; refused, never waited for, while the terminal "
                "leaves 256 KiB of input unread."),
    Event("shell_resize", {"term": TERM, "rows": Int(*ROWS), "cols": Int(*COLS), "host": HOST},
          about="The tab's terminal size (the learner's own tabs only)."),
    Event("shell_ack", {"term": TERM, "end": POSITION, "learner": Owner(), "host": HOST},
          about="The tab has written the terminal's output up to `end` to xterm.js: it is sent on within its "
                "window (1 MiB), and the terminal is read on as far as the furthest tab."),
)

RUN_CHECKS = "list of {idx, kind, passed, hint, detail}"
OMITTED = Int(0, MAX_POSITION, meaning="bytes left out")

# What the server sends.
TO_TAB = _events(
    Event("run_started", {"run": RunId(), "lab": Name(), "step": Name()}, to="the learner's tabs showing the lab",
          about="A run of a step started, before any of its output."),
    Event("output", {"run": RunId(), "seq": SEQ, "end": POSITION, "data": Bytes()}, to="each attached tab",
          about="One chunk of a run's output, raw bytes, sent once stored. seq and `end` may jump where the "
                "store kept only a long output's head and tail; the tab acknowledges `end` (ack)."),
    Event("snapshot", {"run": RunId(), "head": Bytes(), "tail": Bytes(), "omitted": OMITTED, "seq": SEQ,
                       "end": POSITION}, to="a tab attaching with `after` -1 to a long output",
          about="The head and tail of a long output, `omitted` bytes left out between; chunks after seq follow."),
    Event("check", {"run": RunId(), "idx": Int(0, 1 << 20, meaning="the check's index in its step"), "kind": Str(),
                    "passed": Flag(), "hint": Str(), "detail": Str()}, to="each attached tab",
          about="A check's verdict (`kind` check or match), as the run judges it; detail: its last 4000 "
                "characters."),
    Event("end", {"run": RunId(), "step": Name(), "status": Str(), "exit_code": Int(-1 << 31, 1 << 31, nullable=True),
                  "signal": Int(0, 1 << 16, nullable=True), "duration": Number(nullable=True),
                  "checks": Data(list, RUN_CHECKS), "seq": SEQ}, to="an attached tab, once it has every chunk",
          about="The run's end as stored; seq: its last chunk (-1: none)."),
    Event("run_ended", {"run": RunId(), "step": Name()}, to="the learner's tabs showing the lab",
          about="A run ended, after each attached tab had its `end`."),
    Event("shell_output", {"term": Str(), "host": HOST, "data": Bytes(), "end": POSITION,
                           "replay": Flag(optional=True)},
          to="the tabs showing the terminal",
          about="Terminal output: `data` is what xterm.js writes, `end` the position after it in the terminal's "
                "raw output (acknowledged with shell_ack); `term` \"\" is the free shell, on `host` if the tab "
                "named one. replay: the backlog after shell_open (the tab clears its xterm first)."),
    Event("shell_exit", {"term": Str(), "host": HOST}, to="the tabs showing the terminal",
          about="The terminal's process ended, or was not running when the tab opened it."),
    Event("error", {"event": Str(), "message": Str()}, to="the tab whose event it was",
          about="What went wrong with the tab's event `event` (the acknowledgement says the same), or with a "
                "run it attached to (removed to make room)."),
    Event("place", {"host": Flag(optional=True)}, to="a workshop learner's tabs",
          about="Their place, hand or the room's banner changed: the page reloads its room part; host: their "
                "lab host was reset, the page reloads its state."),
    Event("workshop", {"workshop": Data(dict, "object: the room"), "learners": Data(list, "list of learners")},
          to="the instructor's tabs",
          about="The workshop's state as /api/workshop gives it, pushed when it changes."),
)


def emit(socketio: SocketIO, event: str, payload: dict, to: str, local: bool = False) -> None:
    """Send a declared event to a tab (a sid) or a channel (a Socket.IO room); a bug (ProtocolError) otherwise.
    With a message queue between nodes (LABNB_REDIS_URL), it reaches the tabs of every node, but ``local``:
    this node's only; an event for one tab of this node's does not go through the queue."""
    declared = TO_TAB.get(event)
    if declared is None:
        raise ProtocolError(f"the server emits {event!r}, which webapp/stream/protocol.py does not declare")
    try:
        declared.check(payload, CHECK_KINDS)
    except ProtocolError as e:
        if STRICT:
            raise
        if event not in _logged:
            _logged.add(event)
            log.error("%s: sent anyway; this is a bug of labnb's (logged once per event)", e)
    if local or _here(socketio, to):
        socketio.emit(event, payload, to=to, ignore_queue=True)
    else:
        socketio.emit(event, payload, to=to)


def _here(socketio: SocketIO, to: str) -> bool:
    """Whether ``to`` is a tab connected to this node while a message queue joins the nodes."""
    manager = socketio.server.manager if isinstance(socketio, SocketIO) else None
    return isinstance(manager, PubSubManager) and manager.is_connected(to, "/")


def markdown() -> str:
    """docs/protocol.md."""
    out = [
        "# The Socket.IO protocol",
        "",
        "<!-- Made by `python -m webapp.stream.protocol > docs/protocol.md` from webapp/stream/protocol.py;",
        "     tests/unit/test_protocol_doc.py checks it is current. -->",
        "",
        "A lab page, the terminal panel and the workshop's pages talk to the server over one Socket.IO",
        "connection (WebSocket only, MessagePack, so bytes go as bytes). A field marked ? may be absent.",
        "A tab's payload is untrusted: the server checks every field before a handler sees it",
        "(webapp/stream/events.py), and a tab's events are handled one at a time, in order.",
        "",
        "## Tab to server",
        "",
        "Each event is acknowledged: with its reply, or with `{error: \"<event>: <what went wrong>\"}` and an",
        "`error` event. In a workshop, every event of a tab whose learner has no place now is refused.",
        "",
        "| event | fields | reply | what it does |",
        "| --- | --- | --- | --- |",
        *(_row(e, e.reply or "none") for e in TO_SERVER.values()),
        "",
        "## Server to tab",
        "",
        "| event | fields | to | what it says |",
        "| --- | --- | --- | --- |",
        *(_row(e, e.to) for e in TO_TAB.values()),
        "",
        "## Socket.IO's own",
        "",
        "| event | what the page does |",
        "| --- | --- |",
        *(f"| `{name}` | {about} |" for name, about in RESERVED.items()),
        "",
        "## Field kinds",
        "",
        "| field | kind |",
        "| --- | --- |",
        *(f"| `{name}` | {words} |" for name, words in _kinds().items()),
        "",
    ]
    return "\n".join(out)


def _row(event: Event, column: str) -> str:
    fields = ", ".join(f"`{name}`{'?' if kind.optional else ''}" for name, kind in event.fields.items())
    return f"| `{event.name}` | {fields} | {column} | {event.about} |"


def _kinds() -> dict[str, str]:
    """Each field's kind in words, by name; a name with kinds that differ between events says which is whose."""
    uses: dict[str, dict[str, list[str]]] = {}   # name: words: events
    for event in (*TO_SERVER.values(), *TO_TAB.values()):
        for name, kind in event.fields.items():
            uses.setdefault(name, {}).setdefault(kind.words(), []).append(event.name)
    return {name: "; ".join(words if len(by) == 1 else f"{words} ({', '.join(events)})"
                            for words, events in by.items())
            for name, by in sorted(uses.items())}


if __name__ == "__main__":
    sys.stdout.write(markdown())
