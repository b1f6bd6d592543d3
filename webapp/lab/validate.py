"""The rules for values in a lab file: front matter keys and the JSON
attributes of runnable blocks. Each function reports every problem it sees
through ``report(line, message)`` and returns what it could make sense of,
so one pass over a file shows the author all of its mistakes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..images import names
from ..labhost.hostset import MOST as MAX_HOSTS, NAME as HOST_NAME   # what a learner's set can be
from ..labhost.offers import PROBES
from .model import Check, Command, Match

Report = Callable[[int, str], None]

REQUIRES = tuple(PROBES)
TERMINAL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_TIMEOUT = 3600
DEFAULT_STOP_AFTER = 3

_FRONT_MATTER_KEYS = ("title", "summary", "duration", "requires", "terminals", "hosts", "images", "setup",
                      "cleanup")
_DURATION = re.compile(r"(?:(\d+)\s*h(?:ours?|rs?)?)?\s*(?:(\d+)\s*m(?:in(?:ute)?s?)?)?", re.I)

# Attribute name -> type, per runnable language; the type names the message.
_NUMBER, _BOOL, _STR = "a number", "true or false", "a string"
_ATTRIBUTES = {
    "sh": {"terminal": _STR, "timeout": _NUMBER, "fails": _BOOL, "endless": _BOOL,
           "stop_after": _NUMBER, "run": _BOOL, "name": _STR, "host": _STR},
    "check": {"hint": _STR, "timeout": _NUMBER, "host": _STR},
    "match": {"hint": _STR, "terminal": _STR, "host": _STR},
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
        elif key == "terminals":
            terminals = _terminals(value, line, report)
            if terminals is not None:
                out["terminals"] = list(terminals)
                if any(terminals.values()):
                    out["terminal_hosts"] = {name: host for name, host in terminals.items() if host}
        elif key == "hosts":
            out["hosts"] = _hosts(value, line, report)
        elif key == "images":
            out["images"] = _images(value, line, report)
        else:  # requires
            if not _strings(value, key, "docker", line, report):
                continue
            for item in value:
                if item not in REQUIRES:
                    report(line, f"requires: unknown item {item!r} {_suggest(item, REQUIRES)}")
            out[key] = list(dict.fromkeys(value))
    _terminal_hosts(out, lines, report)
    if "title" not in data:
        report(1, "front matter has no title")
    return out


def _strings(value: Any, key: str, example: str, line: int, report: Report) -> bool:
    """Whether ``value`` is a list of strings (reported if not), each listed twice reported."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        report(line, f"{key} must be a list of strings, like [{example}]")
        return False
    for item in sorted({v for v in value if value.count(v) > 1}):
        report(line, f"{key}: {item!r} is listed twice")
    return True


def _terminals(value: Any, line: int, report: Report) -> dict[str, str | None] | None:
    """``terminals``: names (on the first host) or ``{name: t2, host: node2}``; name -> host or None."""
    if not isinstance(value, list):
        report(line, "terminals must be a list, like [b1, {name: t2, host: node2}]")
        return None
    found: dict[str, str | None] = {}
    twice: set[str] = set()
    for item in value:
        if isinstance(item, dict):
            if set(item) - {"name", "host"} or not all(isinstance(item.get(k), str) for k in ("name", "host")):
                report(line, f"terminals: {item!r} must be a name, or {{name: NAME, host: HOST}} with both")
                continue
            name, host = item["name"], item["host"]
        elif isinstance(item, str):
            name, host = item, None
        else:
            report(line, f"terminals: {item!r} must be a name, like b1, or {{name: t2, host: node2}}")
            continue
        if not TERMINAL_NAME.fullmatch(name):
            report(line, f"terminals: bad terminal name {name!r}: use a-z, 0-9, '_' and '-', "
                         "starting with a letter, at most 32 characters")
        elif name in found:
            if name not in twice:
                report(line, f"terminals: {name!r} is listed twice")
            twice.add(name)
        else:
            found[name] = host
    return found


def _hosts(value: Any, line: int, report: Report) -> list[str]:
    if not _strings(value, "hosts", "node1, node2", line, report):
        return []
    if not value:
        report(line, "hosts is empty: leave it out for one lab host, or name them, like [node1, node2]")
    if len(set(value)) > MAX_HOSTS:
        report(line, f"hosts: {len(set(value))} hosts, at most {MAX_HOSTS}: a learner's lab hosts are claimed "
                     "together, so a lab asks for no more than it teaches with")
    for item in value:
        if not HOST_NAME.fullmatch(item):
            report(line, f"hosts: bad host name {item!r}: use a-z, 0-9 and '-', starting with a letter, "
                         "at most 16 characters (it becomes the host's hostname)")
    return list(dict.fromkeys(value))


def _images(value: Any, line: int, report: Report) -> list[str]:
    if not _strings(value, "images", "nginx:1.27", line, report):
        return []
    for item in value:
        try:
            names.parse(item)
        except ValueError as e:
            report(line, f"images: {e}")
    return list(dict.fromkeys(value))


def _terminal_hosts(out: dict, lines: dict[str, int], report: Report) -> None:
    """A terminal's host must be one of the lab's hosts: known only once both keys are read."""
    hosts = out.get("hosts", [])
    for name, host in out.get("terminal_hosts", {}).items():
        if not hosts:
            report(lines.get("terminals", 1), f"terminals: {name!r} names host {host!r}, but the lab has one "
                                              "lab host: declare them all in hosts, like [node1, node2]")
        elif host not in hosts:
            report(lines.get("terminals", 1), f"terminals: {name!r} is on unknown host {host!r} "
                                              f"{_suggest(host, hosts)}: a terminal's host is one of hosts")


def block(lang: str, body: str, attrs: dict, line: int, terminals: list[str],
          report: Report, hosts: list[str] = (), terminal_hosts: dict[str, str] | None = None
          ) -> Command | Check | Match | None:
    """Check a runnable block's body and attributes; return the model object,
    or None when anything about it is wrong (all of it reported). ``hosts``,
    ``terminal_hosts``: the lab's (Lab.hosts, Lab.terminal_hosts)."""
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
    host = _host(good.get("host"), terminal if terminal in terminals else None, list(hosts),
                 terminal_hosts or {}, bad)
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
        return Check(body, line, good["hint"], timeout, host)
    if kind == "match":   # without host, it reads the output of every host
        return Match(body, line, good["hint"], terminal, good.get("host", host if terminal else None))
    return Command(body, line, terminal, timeout, good.get("fails", False), endless,
                   stop_after, good.get("run", True), good.get("name"), host)


def _host(given: str | None, terminal: str | None, hosts: list[str], terminal_hosts: dict[str, str],
          bad: Callable[[str], None]) -> str | None:
    """The host a block runs on: the one it names, else its terminal's, else the lab's first (None: the
    lab has one unnamed lab host)."""
    own = (terminal_hosts.get(terminal) or hosts[0]) if terminal and hosts else None
    if given is None:
        return own or (hosts[0] if hosts else None)
    if not hosts:
        bad(f"host {given!r}, but the lab has one lab host: name its hosts in the front matter, "
            "like hosts: [node1, node2], or drop the host attribute")
    elif given not in hosts:
        bad(f"unknown host {given!r} {_suggest(given, hosts)}: a block's host is one of the front matter's hosts")
    elif own and given != own:
        bad(f"terminal {terminal!r} is on host {own!r}, not {given!r}: a block typed into a terminal runs "
            "on the terminal's host; drop host, or give the terminal {name: ..., host: ...} in the front matter")
    return given


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
