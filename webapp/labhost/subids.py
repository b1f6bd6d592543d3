"""Subordinate ids (/etc/subuid, /etc/subgid): root's entry there reserves the lab hosts' uid ranges
machine-wide.

labnb writes each lab host's uid and gid maps itself, as the machine's root (labroot.py): the kernel
never reads these files. Every other tool that hands out ids does (useradd gives a new user the first
free ids past the entries; rootless Podman and Docker map them), and a lab host whose range another
user's containers also map could read their files. So root's entry that holds LABNB_UID_BASE bounds
the ranges lab hosts may use (``records.machine_ranges``), and ``allot`` (``labnb lab-hosts ranges
--write``, run by scripts/setup.sh) sizes it to what the machine can hold, over no other entry.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile

RANGE = 65536         # ids per lab host: root inside is the first of its range outside
RANGES = 64           # ranges from LABNB_UID_BASE without an entry of root's (what setup.sh reserved until issue 30)
NO_ID = 2 ** 32 - 1   # (uid_t) -1 is never an id: the kernel refuses a map that reaches it
FILES = ("/etc/subuid", "/etc/subgid")
NUMBER = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")   # as strtoul reads one


@dataclasses.dataclass(frozen=True)
class Entry:
    """A line ``name:start:count`` of a subordinate id file, and its index among the file's lines."""

    name: str
    start: int
    count: int
    line: int

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def root(self) -> bool:
        return self.name in ("root", "0")

    def __str__(self) -> str:
        return f"{self.name}:{self.start}:{self.count}"


def read(path: str) -> tuple[list[str], list[Entry]]:
    """The file's lines and its entries; none if it does not exist. A line that is no entry is kept as
    it is and read as none (OSError if the file cannot be read)."""
    try:
        with open(path, newline="") as f:
            lines = f.read().split("\n")   # lines as the shadow suite reads them: a "\r" is the line's
        if lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        return [], []
    entries = []
    for i, text in enumerate(lines):
        parts = text.split(":")
        numbers = [_number(p) for p in parts[1:]]
        if len(parts) == 3 and parts[0] and None not in numbers:
            entries.append(Entry(parts[0], *numbers, i))
    return lines, entries


def _number(text: str) -> int | None:
    """A field as the shadow suite reads it (useradd, newuidmap: strtoul in base 0, so decimal, 0x hex or 0
    octal, after blanks and a sign, and nothing after it), or None where it reads no entry: an entry read
    otherwise would be ids labnb thought free and another user's containers use."""
    m = NUMBER.fullmatch(text)
    if m is None:
        return None
    digits = m[2]
    value = int(digits, 16 if digits[:2] in ("0x", "0X") else 8 if digits[0] == "0" else 10)
    return None if value >= 2 ** 64 else (-value) % 2 ** 64 if m[1] == "-" else value


def holder(entries: list[Entry], uid_base: int) -> Entry | None:
    """Root's entry that holds ``uid_base``."""
    return next((e for e in entries if e.root and e.start <= uid_base < e.end), None)


def room(entries: list[Entry], uid_base: int) -> tuple[int, str]:
    """How many ranges from ``uid_base`` overlap no entry but root's that holds it, each ending below
    NO_ID; and what stops them there."""
    own = holder(entries, uid_base)
    most, why = max(NO_ID - 1 - uid_base, 0) // RANGE, f"uid {NO_ID} (2^32 - 1, never an id)"
    for e in entries:
        if e == own or e.count == 0 or e.end <= uid_base:
            continue
        fits = max(e.start - uid_base, 0) // RANGE
        if fits < most:
            most, why = fits, f"the entry {e}"
    return most, why


@dataclasses.dataclass(frozen=True)
class Allotment:
    """What ``allot`` found in a file and made of it: root's entry before and after, the ranges from
    LABNB_UID_BASE it gives after, and what the operator should know (an overlap, fewer than wanted)."""

    path: str
    before: Entry | None
    after: str
    ranges: int
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return str(self.before) != self.after


def allot(path: str, uid_base: int, want: int, write: bool) -> Allotment:
    """Make root's entry in ``path`` hold ``want`` ranges from ``uid_base`` (only said, unless ``write``):
    grown in place, or added; one that holds as many or more is kept. It never reaches over another
    entry, root's or another user's, nor to NO_ID: then it gets fewer, and a note says why."""
    lines, entries = read(path)
    own = holder(entries, uid_base)
    has = (own.end - uid_base) // RANGE if own else 0
    free, bound = room(entries, uid_base)
    notes = []
    if has > free:
        notes.append(f"root's entry {own} overlaps {bound} in {path}: their ids may go both to lab hosts and to "
                     f"another's containers; shrink or move one of them")
    give = min(want, free)
    if give < want and has < want:
        notes.append(f"{want} ranges from LABNB_UID_BASE={uid_base} would reach {bound} in {path}, so root gets "
                     f"{max(give, has)}: move that entry, or set LABNB_UID_BASE past it")
    if has >= give:
        return Allotment(path, own, str(own) if own else "", has, tuple(notes))
    start = own.start if own else uid_base
    entry = f"{own.name if own else 'root'}:{start}:{uid_base - start + give * RANGE}"
    if own:
        lines[own.line] = entry
    else:
        lines.append(entry)
    if write:
        _replace(path, lines)
    return Allotment(path, own, entry, give, tuple(notes))


def _replace(path: str, lines: list[str]) -> None:
    """Write the file anew in one step (a reader sees the old file or the new one), with its owner and mode."""
    try:
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, None
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
