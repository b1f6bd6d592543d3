"""What callers hand the store, checked before it reaches SQL: ids, texts and
integers, each error naming the field, so a bad value from a browser or a
lab's file fails where it came in, not as a database error."""

from __future__ import annotations

import re

_RUN_ID = re.compile(r"[0-9a-f]{32}")
MAX_ID = 200  # learner, lab, step, check kind, lab host ids
MAX_TEXT = 1024 * 1024  # a command, a check's hint or detail


def is_run_id(s: object) -> bool:
    """True if *s* looks like a run id (uuid4 hex: 32 lowercase hex digits)."""
    return isinstance(s, str) and _RUN_ID.fullmatch(s) is not None


def run_id(s: object) -> str:
    if not is_run_id(s):
        raise ValueError(f"run id: expected 32 hex digits, got {str(s)[:40]!r}")
    return s  # type: ignore[return-value]


def text(field: str, value: object, max_len: int = MAX_ID, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected text, got {type(value).__name__}")
    if not value and not empty:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > max_len:
        raise ValueError(f"{field}: longer than {max_len} characters")
    if "\0" in value:
        raise ValueError(f"{field}: contains a NUL character")
    return value


def integer(field: str, value: object, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field}: must be >= {minimum}, got {value}")
    return value
