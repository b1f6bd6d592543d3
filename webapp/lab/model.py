"""What a parsed lab is: plain dataclasses the views, the executor and the
headless runner share, so none of them has to look at Markdown again."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabnbError

# A terminal shows colours and line ends the way a PTY sends them; a match is
# meant for the text a learner reads.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])")


def plain_text(output: str) -> str:
    """Terminal output as a reader sees it: no escape sequences, ``\\n`` line ends."""
    return re.sub(r"\r+\n?", "\n", _ANSI.sub("", output))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a lab file, at a 1-based line (0: the whole file)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class LabError(LabnbError):
    """A lab file that cannot be used; holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass
class Prose:
    md: str


@dataclass
class Sample:
    """A fenced block that is shown, never run (expected output, a config file)."""

    lang: str
    text: str
    line: int


@dataclass
class Command:
    """A shell block. With ``terminal`` it is typed into that long-lived shell,
    otherwise it runs in a fresh ``sh`` on the lab host. ``host``: the lab's name
    for the host it runs on (its terminal's), None in a lab without ``hosts``."""

    text: str
    line: int
    terminal: str | None = None
    timeout: float = 60
    fails: bool = False
    endless: bool = False
    stop_after: float | None = None
    run: bool = True
    name: str | None = None
    host: str | None = None


@dataclass
class Check:
    """A command whose exit code is the step's verdict (0: passed)."""

    text: str
    line: int
    hint: str
    timeout: float = 30
    host: str | None = None   # where it looks: as Command.host


@dataclass
class Match:
    """A regex the output of the step's commands must contain (``re.MULTILINE``)."""

    pattern: str
    line: int
    hint: str
    terminal: str | None = None
    host: str | None = None   # only the output of the commands run on this host, if given

    def test(self, output: str) -> bool:
        return re.search(self.pattern, plain_text(output), re.MULTILINE) is not None


Block = Prose | Sample | Command | Check | Match


@dataclass
class Step:
    index: int
    id: str
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)

    @property
    def commands(self) -> list[Command]:
        return [b for b in self.blocks if isinstance(b, Command)]

    @property
    def checks(self) -> list[Check | Match]:
        """The step's verdicts, checks and matches alike, in file order."""
        return [b for b in self.blocks if isinstance(b, (Check, Match))]


@dataclass
class Lab:
    path: Path
    title: str
    summary: str = ""
    duration_min: int | None = None
    requires: list[str] = field(default_factory=list)
    terminals: list[str] = field(default_factory=list)
    # the lab's names for its hosts, first the primary; empty: one lab host, unnamed, as before
    hosts: list[str] = field(default_factory=list)
    terminal_hosts: dict[str, str] = field(default_factory=dict)   # terminal -> its host (with hosts)
    images: list[str] = field(default_factory=list)   # image names as the lab writes them (nginx:1.27)
    setup: str | None = None
    cleanup: str | None = None
    intro_md: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The file name without ``.md``: stable, and what URLs use."""
        return self.path.stem

    def terminal_host(self, terminal: str) -> str | None:
        """The host a named terminal runs on: its own, else the first (None without ``hosts``)."""
        return self.terminal_hosts.get(terminal, self.hosts[0] if self.hosts else None)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)
