"""What a field of a Socket.IO payload may hold: the kinds webapp/stream/protocol.py
declares every event's fields with, each with its check and its words for
docs/protocol.md.

A tab's payload is untrusted: ``check`` returns the value the handler gets
(a default for an absent field, text as its UTF-8 bytes, the learner an
event is about) or raises ``BadEvent`` saying which field is wrong and how.
The server's own payloads are checked the same way where a check is asked
for (protocol.emit), to catch a bug, not an attack.
"""
from __future__ import annotations

import dataclasses

from flask import current_app, session

from ..store import is_run_id

MAX_NAME = 200
MAX_POSITION = 1 << 50


class BadEvent(ValueError):
    """The payload is not what the event takes; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class Name:
    """A lab, step or learner id: text of 1 to MAX_NAME characters (or absent, if ``optional``)."""
    optional: bool = False

    def check(self, field: str, value):
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            raise BadEvent(f"{field}: expected a name of 1 to {MAX_NAME} characters")
        return value

    def words(self) -> str:
        return f"name (1 to {MAX_NAME} characters)"


@dataclasses.dataclass(frozen=True)
class RunId:
    optional = False

    def check(self, field: str, value):
        if not is_run_id(value):
            raise BadEvent(f"{field}: expected a run id (32 hex digits)")
        return value

    def words(self) -> str:
        return "run id (32 hex digits)"


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer from ``low`` to ``high``; absent, its ``default`` if it has one,
    or null if ``nullable``. ``meaning``: what it is, for the docs."""
    low: int
    high: int
    default: int | None = None
    nullable: bool = False
    meaning: str = ""

    @property
    def optional(self) -> bool:
        return self.default is not None

    def check(self, field: str, value):
        value = self.default if value is None else value
        if value is None and self.nullable:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not self.low <= value <= self.high:
            raise BadEvent(f"{field}: expected an integer from {self.low} to {self.high}")
        return value

    def words(self) -> str:
        default = f", default {self.default}" if self.default is not None else ""
        return (self.meaning or f"integer {self.low} to {self.high}") + default + (" or null" if self.nullable else "")


@dataclasses.dataclass(frozen=True)
class Text:
    """A string from a tab, sent on as its UTF-8 bytes (a lone surrogate becomes '?')."""
    max_bytes: int
    optional = False

    def check(self, field: str, value):
        if not isinstance(value, str):
            raise BadEvent(f"{field}: expected a string")
        raw = value.encode(errors="replace")
        if len(raw) > self.max_bytes:
            raise BadEvent(f"{field}: at most {self.max_bytes} bytes per event; send a long paste in parts")
        return raw

    def words(self) -> str:
        return f"string (at most {self.max_bytes} bytes in UTF-8)"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The learner an event is about (the ``whose`` rule): absent, the tab's own;
    another's only for the instructor (the operator) watching their notebook.
    Watching is reading: events that start or change something take no owner."""
    optional = True

    def check(self, field: str, value):
        own = session["learner"]
        if value is None or value == own:
            return own
        Name().check(field, value)
        if not current_app.extensions["labnb.guard"].is_operator():
            raise BadEvent("only the instructor may watch another learner's runs")
        return value

    def words(self) -> str:
        return "learner id: absent for the tab's own learner; the instructor names the learner they watch"


@dataclasses.dataclass(frozen=True)
class Str:
    """Text from the server (a status, a note, a message); ``""`` may be a value."""
    optional = False

    def check(self, field: str, value):
        if not isinstance(value, str):
            raise BadEvent(f"{field}: expected a string")
        return value

    def words(self) -> str:
        return "string"


@dataclasses.dataclass(frozen=True)
class Bytes:
    """Raw bytes (MessagePack binary: output goes undecoded; the tab decodes UTF-8)."""
    optional = False

    def check(self, field: str, value):
        if not isinstance(value, bytes):
            raise BadEvent(f"{field}: expected bytes")
        return value

    def words(self) -> str:
        return "bytes"


@dataclasses.dataclass(frozen=True)
class Flag:
    """True or false; an ``optional`` one is sent only when true."""
    optional: bool = False

    def check(self, field: str, value):
        if value is None and self.optional:
            return None
        if not isinstance(value, bool):
            raise BadEvent(f"{field}: expected true or false")
        return value

    def words(self) -> str:
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Number:
    nullable: bool = False
    optional = False

    def check(self, field: str, value):
        if value is None and self.nullable:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise BadEvent(f"{field}: expected a number")
        return value

    def words(self) -> str:
        return "number" + (" or null" if self.nullable else "")


@dataclasses.dataclass(frozen=True)
class Data:
    """A structure the server sends whole (a list or an object), described in ``shape``."""
    type: type
    shape: str
    optional = False

    def check(self, field: str, value):
        if not isinstance(value, self.type):
            raise BadEvent(f"{field}: expected {self.shape}")
        return value

    def words(self) -> str:
        return self.shape


SEQ = Int(-1, MAX_POSITION, meaning="seq: a chunk's number (-1: none yet)")
POSITION = Int(0, MAX_POSITION, meaning="position: bytes of the stream's output before it")

Kind = Name | RunId | Int | Text | Owner | Str | Bytes | Flag | Number | Data
