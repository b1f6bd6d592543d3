"""The rules for values in a lab file: front matter keys and the JSON
attributes of runnable blocks. Each function reports every problem it sees
through ``report(line, message)`` and returns what it could make sense of,
so one pass over a file shows the author all of its mistakes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..labhost.offers import PROBES
from .model import Check, Command, Match

Report = Callable[[int, str], None]

REQUIRES = tuple(PROBES)
TERMINAL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_TIMEOUT = 3600
DEFAULT_STOP_AFTER = 3

_FRONT_MATTER_KEYS = ("title", "summary", "duration", "requires", "terminals", "setup", "cleanup")
_DURATION = re.compile(r"(?:(\d+)\s*h(?:ours?|rs?)?)?\s*(?:(\d+)\s*m(?:in(?:ute)?s?)?)?", re.I)

# Attribute name -> type, per runnable language; the type names the message.
_NUMBER, _BOOL, _STR = "a number", "true or false", "a string"
_ATTRIBUTES = {
    "sh": {"terminal": _STR, "timeout": _NUMBER, "fails": _BOOL, "endless": _BOOL,
           "stop_after": _NUMBER, "run": _BOOL, "name": _STR},
    "check": {"hint": _STR, "timeout": _NUMBER},
    "match": {"hint": _STR, "terminal": _STR},
}
SHELL_LANGS = ("sh", "bash", "shell")
RUNNABLE_LANGS = (*SHELL_LANGS, "check", "match")


def parse_duration(value: Any) -> int | None:
    """Minutes from ``45``, ``"45"``, ``"30m"``, ``"1h"``, ``"1h 30m"``, ``"45 min"``; None if not understood."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return int(text) or None
    m = _DURATION.fullmatch(text)
    if not m or not (m[1] or m[2]):
        return None
    return int(m[1] or 0) * 60 + int(m[2] or 0) or None


def front_matter(data: dict, lines: dict[str, int], report: Report) -> dict:
    """Check the front matter mapping; return the Lab fields it gives.

    ``lines`` maps each key to its line in the file, for the messages."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        line = lines.get(str(key), 1)
        if key not in _FRONT_MATTER_KEYS:
            report(line, f"unknown front matter key {key!r} {_suggest(key, _FRONT_MATTER_KEYS)}")
        elif key in ("title", "summary", "setup", "cleanup"):
            if not isinstance(value, str):
                report(line, f"{key} must be a string, not {_yaml_type(value)}")
            elif not value.strip() and key != "summary":
                report(line, f"{key} is empty")
            else:
                out[key] = value.strip() if key in ("title", "summary") else value
        elif key == "duration":
            minutes = parse_duration(value)
            if minutes is None:
                report(line, f"duration {value!r} not understood: "
                             "give minutes (45) or a text like '30m', '1h', '1h 30m'")
            else:
                out["duration_min"] = minutes
        else:  # requires, terminals: lists of strings
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                report(line, f"{key} must be a list of strings, like [{'docker' if key == 'requires' else 'b1'}]")
                continue
            for item in sorted({v for v in value if value.count(v) > 1}):
                report(line, f"{key}: {item!r} is listed twice")
            if key == "requires":
                for item in value:
                    if item not in REQUIRES:
                        report(line, f"requires: unknown item {item!r} {_suggest(item, REQUIRES)}")
            else:
                for item in value:
                    if not TERMINAL_NAME.fullmatch(item):
                        report(line, f"terminals: bad terminal name {item!r}: use a-z, 0-9, '_' and '-', "
                                     "starting with a letter, at most 32 characters")
            out[key] = list(dict.fromkeys(value))
    if "title" not in data:
        report(1, "front matter has no title")
    return out


def block(lang: str, body: str, attrs: dict, line: int, terminals: list[str],
          report: Report) -> Command | Check | Match | None:
    """Check a runnable block's body and attributes; return the model object,
    or None when anything about it is wrong (all of it reported)."""
    kind = "sh" if lang in SHELL_LANGS else lang
    known = _ATTRIBUTES[kind]
    errors: list[str] = []

    def bad(message: str) -> None:
        errors.append(message)
        report(line, message)

    good = {}
    for name, value in attrs.items():
        if name not in known:
            bad(f"unknown attribute {name!r} for a {lang} block {_suggest(name, known)}")
        elif not _is(value, known[name]):
            bad(f"attribute {name!r} must be {known[name]}, not {_json_type(value)}")
        else:
            good[name] = value
    timeout = good.get("timeout", Check.timeout if kind == "check" else Command.timeout)
    if not 0 < timeout <= MAX_TIMEOUT:
        bad(f"timeout must be more than 0 and at most {MAX_TIMEOUT} seconds, not {timeout:g}")
    terminal = good.get("terminal")
    if terminal is not None and terminal not in terminals:
        declared = f"declared: {', '.join(terminals)}" if terminals else "none are declared"
        bad(f"unknown terminal {terminal!r}: list it in the front matter's terminals ({declared})")
    if kind != "sh" and not good.get("hint", "").strip():
        bad(f"a {kind} needs a hint: what to look at when it fails")
    if not body.strip():
        bad({"sh": f"empty {lang} block", "check": "check without a command",
             "match": "match without a pattern"}[kind])
    elif kind == "match":
        try:
            re.compile(body, re.MULTILINE)
        except re.error as e:
            bad(f"bad regex in match: {e}")
    endless = good.get("endless", False)
    stop_after = good.get("stop_after")
    if stop_after is not None and not endless:
        bad("stop_after is only for endless blocks")
    if endless and good.get("fails"):
        bad("an endless block is stopped, so it cannot also be expected to fail (fails)")
    if endless:
        stop_after = DEFAULT_STOP_AFTER if stop_after is None else stop_after
        if not 0 < stop_after < timeout:
            bad(f"stop_after must be more than 0 and less than the timeout ({timeout:g} s)")
    if errors:
        return None
    if kind == "check":
        return Check(body, line, good["hint"], timeout)
    if kind == "match":
        return Match(body, line, good["hint"], terminal)
    return Command(body, line, terminal, timeout, good.get("fails", False), endless,
                   stop_after, good.get("run", True), good.get("name"))


def _suggest(name: Any, known: Iterable[str]) -> str:
    """For a name not in ``known``: the likely typo's fix, or what is known."""
    close = difflib.get_close_matches(str(name), known, n=1)
    return f"(did you mean {close[0]!r}?)" if close else f"(known: {', '.join(known)})"


def _is(value: Any, want: str) -> bool:
    if want == _BOOL:
        return isinstance(value, bool)
    if want == _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _json_type(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}[type(value)]


def _yaml_type(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)
