"""The headless runner: a whole lab on its lab hosts, as CI runs it (and
Runme's ``run --all``). It drives steps through a Bench, so a step means
here what it means in the browser; what it adds is the record of a run
(LabResult) and its reports: live text, JSON and JUnit XML.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from typing import Callable, TextIO
from xml.etree import ElementTree as ET

from ..executor import DONE
from ..lab import Lab, Step, plain_text
from ..network import picture
from ..labhost.base import HeadTail, LabHost, LabHostError
from .events import CheckJudged, CommandEnded, CommandStarted, Event, Output
from .bench import Bench, prompt
from ..status import SKIPPED, label

REPORT_KEEP = 1 << 20   # bytes of a command's output its report keeps at each end (the live text shows all)
LINE_MAX = 64 << 10     # characters of one line of output the live text holds back before it prints them


@dataclasses.dataclass
class CommandResult:
    line: int
    command: str
    terminal: str | None
    host: str | None = None     # the lab's name for the host it ran on (None: a lab of one lab host)
    output: str = ""
    status: str = ""
    exit_code: int | None = None
    ok: bool = False
    note: str = ""
    duration: float = 0.0


@dataclasses.dataclass
class CheckResult:
    kind: str           # "check" or "match"
    line: int
    passed: bool
    hint: str
    detail: str


@dataclasses.dataclass
class StepResult:
    index: int
    id: str
    title: str
    status: str = SKIPPED   # done|failed|interrupted|timed_out|error, or skipped
    duration: float = 0.0
    commands: list[CommandResult] = dataclasses.field(default_factory=list)
    checks: list[CheckResult] = dataclasses.field(default_factory=list)
    network: dict | None = None   # the lab host's network picture once the step ended (``network=True``)

    @property
    def passed(self) -> bool:
        return self.status == DONE

    def failure(self) -> str:
        """Why the step failed, in the lab's own words: a failing check's hint,
        else the note of the command that went wrong."""
        for c in self.checks:
            if not c.passed:
                return c.hint
        for c in self.commands:
            if not c.ok:
                return f"line {c.line}: {c.note or c.status}: {c.command.splitlines()[0]}"
        return self.status


@dataclasses.dataclass
class ScriptResult:
    """How the lab's setup or cleanup went."""

    name: str
    status: str
    exit_code: int | None
    output: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.status == DONE


_event = dataclasses.dataclass(frozen=True, slots=True)


@_event
class StepStarted:
    """The runner's own events, beside a step's (webapp/learners/events.py): a step starts, ``of`` in the lab."""
    step: Step
    of: int


@_event
class StepEnded:
    result: StepResult   # also for a step skipped


@_event
class ScriptEnded:
    result: ScriptResult


RunnerEvent = Event | StepStarted | StepEnded | ScriptEnded


@dataclasses.dataclass
class LabResult:
    lab: Lab
    lab_host: str
    steps: list[StepResult] = dataclasses.field(default_factory=list)
    setup: ScriptResult | None = None
    cleanup: ScriptResult | None = None
    duration: float = 0.0
    lab_hosts: dict[str, str] = dataclasses.field(default_factory=dict)   # a lab's name for each host: its id

    @property
    def passed(self) -> bool:
        scripts_ok = all(s.ok for s in (self.setup, self.cleanup) if s is not None)
        return scripts_ok and all(s.passed for s in self.steps)


def run_lab(lab: Lab, lab_host: LabHost, *, steps: list[Step] | None = None, endless_for: float = 3.0,
            on_event: Callable[[RunnerEvent], None] | None = None, network: bool = False,
            hosts: dict[str, LabHost] | None = None) -> LabResult:
    """Run setup, the steps (all, or the ones given) in order, then cleanup; ``lab_host`` is the primary,
    ``hosts`` every lab host of a lab that declares several, by the lab's names (``Bench``).

    After a failing step the rest are skipped: they build on it, and their
    failures would only hide the first. ``on_event`` sees the bench's events
    plus ``StepStarted`` before and ``StepEnded`` after each step, and
    ``ScriptEnded`` after setup and cleanup. An exception (KeyboardInterrupt from a signal) stops the
    current run and closes the terminals before it goes on up; cleanup is then
    not run, since the lab host is about to be destroyed. With ``network``, each step that ran records the
    lab host's network picture (webapp/network/) as it ended, for a lab author's CI to check.
    """
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    chosen = lab.steps if steps is None else steps
    result = LabResult(lab, lab_host.id, [StepResult(s.index, s.id, s.title) for s in chosen])
    bench = Bench(lab, lab_host, hosts)
    result.lab_hosts = bench.hosts.ids()
    keys: dict[str, str] = {}   # the containers' sandbox keys, from one picture to the next
    try:
        if lab.setup:
            result.setup = _script(bench, "setup", lab.setup, emit)
        failed = result.setup is not None and not result.setup.ok
        for step, record in zip(chosen, result.steps):
            if failed:
                emit(StepEnded(record))
                continue
            emit(StepStarted(step, len(lab.steps)))
            _run_step(bench, step, record, endless_for, emit)
            if network:
                record.network = _picture(lab_host, keys)
            emit(StepEnded(record))
            failed = not record.passed
        if lab.cleanup:
            result.cleanup = _script(bench, "cleanup", lab.cleanup, emit)
    finally:
        bench.close()
        result.duration = round(time.monotonic() - started, 3)
    return result


def _picture(lab_host: LabHost, keys: dict[str, str]) -> dict:
    try:
        return picture.read(lab_host, keys)
    except (LabHostError, OSError) as e:
        return {"error": f"the network could not be read: {e}"}


def _script(bench: Bench, name: str, text: str, emit) -> ScriptResult:
    """Setup or cleanup on every lab host; on several, one result: the first host's that failed (its
    output first), and every host's output under its name."""
    ran = bench.run_script(text)
    host, outcome, output = next((r for r in ran if not r[1].ok), ran[0])
    if host is None:
        shown = plain_text(output)
    else:
        ran.sort(key=lambda r: r[0] != host)
        shown = "".join(f"[{h}]\n{plain_text(o)}" + ("" if o.endswith("\n") or not o else "\n") for h, _, o in ran)
    script = ScriptResult(name, outcome.status, outcome.exit_code, shown,
                          round(max(o.duration for _, o, _ in ran), 3))
    emit(ScriptEnded(script))
    return script


def _run_step(bench: Bench, step: Step, record: StepResult, endless_for: float, emit) -> None:
    started = time.monotonic()
    kept = HeadTail(REPORT_KEEP, REPORT_KEEP)

    def on_event(event: Event) -> None:
        nonlocal kept
        match event:
            case Output(data=data):
                kept.feed(data)
            case CommandStarted(block=block, line=line, command=command, host=host):
                record.commands.append(CommandResult(line, command, step.blocks[block].terminal, host))
                kept = HeadTail(REPORT_KEEP, REPORT_KEEP)
            case CommandEnded(outcome=outcome, ok=ok, note=note):
                c = record.commands[-1]
                c.output, c.status, c.exit_code = _text(kept), outcome.status, outcome.exit_code
                c.ok, c.note, c.duration = ok, note, round(outcome.duration, 3)
            case CheckJudged(idx=idx):
                record.checks.append(CheckResult(event.kind, step.checks[idx].line, event.passed, event.hint,
                                                 event.detail))
        emit(event)

    run = bench.run_step(step, on_event, endless_for=endless_for, window=None)
    record.status = run.wait()
    # a run that ended in an error has its message as output with no command open
    if record.commands and not record.commands[-1].status:
        record.commands[-1].output = _text(kept)
        record.commands[-1].status = record.status
    record.duration = round(time.monotonic() - started, 3)


def _text(kept: HeadTail) -> str:
    return plain_text(kept.value().decode(errors="replace"))


# -- reports ------------------------------------------------------------------

class Printer:
    """Streams a run to a terminal as it happens: step titles, each command,
    its output prefixed with ``│``, verdicts, and hints for what failed."""

    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None):
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self.partial = ""   # output after the last newline, printed once its line is whole

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def _line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _flush_output(self) -> None:
        if self.partial:
            self._line(self._paint("  │ ", "2") + self.partial)
            self.partial = ""

    def __call__(self, event: RunnerEvent) -> None:
        match event:
            case Output(text=text):
                self._output(text)
            case StepStarted(step=step):
                self._line()
                self._line(self._paint(f"── step {step.index}/{event.of}: {step.title} ({step.id})", "1"))
            case CommandStarted(command=command, terminal=None, host=host):   # a terminal shows what is typed
                for i, line in enumerate(command.splitlines()):
                    self._line(self._paint(f"  {'> ' if i else prompt(host)}{line}", "36"))
            case CommandStarted(terminal=terminal, host=str(host)):
                self._line(self._paint(f"  [terminal {terminal} on {host}]", "2"))
            case CommandEnded(ok=ok, note=note):
                self._flush_output()
                if not ok:
                    self._line(self._paint(f"  ✗ {note}", "31"))
                elif note:
                    self._line(self._paint(f"  ✓ {note}", "2"))
            case CheckJudged():
                self._flush_output()
                self._check(event)
            case StepEnded(result=r):
                self._flush_output()
                self._step_end(r)
            case ScriptEnded(result=s):
                self._script(s)

    def _output(self, text: str) -> None:
        lines = (self.partial + plain_text(text)).split("\n")
        self.partial = lines.pop()
        if len(self.partial) > LINE_MAX:   # a line without end is printed in parts
            lines.append(self.partial)
            self.partial = ""
        for line in lines:
            self._line(self._paint("  │ ", "2") + line)

    def _check(self, check: CheckJudged) -> None:
        if check.passed:
            self._line(self._paint(f"  ✓ {check.kind} passed", "32"))
        else:
            self._line(self._paint(f"  ✗ {check.kind} failed: {check.hint}", "31"))
            for line in check.detail.splitlines()[-5:]:
                self._line(self._paint(f"      {line}", "2"))

    def _step_end(self, r: StepResult) -> None:
        if r.status == SKIPPED:
            self._line(self._paint(f"── step {r.index}: {r.title}: skipped (an earlier part failed)", "33"))
        elif r.passed:
            self._line(self._paint(f"── passed ({r.duration:.1f} s)", "32"))
        else:
            self._line(self._paint(f"── FAILED ({label(r.status)}): {r.failure()}", "1;31"))

    def _script(self, s: ScriptResult) -> None:
        if s.ok:
            self._line(self._paint(f"{s.name}: ok ({s.duration:.1f} s)", "2"))
        else:
            self._line(self._paint(f"{s.name}: FAILED ({s.status}, exit code {s.exit_code})", "1;31"))
            for line in s.output.strip().splitlines()[-10:]:
                self._line(self._paint("  │ ", "2") + line)

    def summary(self, result: LabResult) -> None:
        passed = sum(s.passed for s in result.steps)
        failed = [s for s in result.steps if s.status not in (DONE, SKIPPED)]
        line = f"{result.lab.path}: {passed}/{len(result.steps)} steps passed in {result.duration:.1f} s"
        self._line()
        self._line(self._paint(("PASSED " if result.passed else "FAILED ") + line,
                               "1;32" if result.passed else "1;31"))
        for s in failed:
            self._line(self._paint(f"  step {s.index} {s.title}: {s.failure()}", "31"))


# XML 1.0 cannot hold most control characters, which command output may have
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def to_json(result: LabResult) -> dict:
    """The whole record of a run, for CI artefacts: every command's output,
    exit code, status and duration, and every check's verdict."""
    def script(s: ScriptResult | None) -> dict | None:
        return dataclasses.asdict(s) if s else None

    return {
        "lab": str(result.lab.path), "title": result.lab.title, "lab_host": result.lab_host,
        **({"lab_hosts": result.lab_hosts} if result.lab.hosts else {}),
        "passed": result.passed, "duration": result.duration,
        "setup": script(result.setup), "cleanup": script(result.cleanup),
        "steps": [{**dataclasses.asdict(s), "passed": s.passed,
                   "failure": None if s.passed or s.status == SKIPPED else s.failure()}
                  for s in result.steps],
    }


def write_json(result: LabResult, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(result), f, indent=1, ensure_ascii=False)
        f.write("\n")


def to_junit(result: LabResult) -> ET.ElementTree:
    """JUnit XML, one testcase per step, as CI servers show test results;
    a failing setup or cleanup is a testcase of its own."""
    lab = result.lab
    suite = ET.Element("testsuite", name=lab.id, time=f"{result.duration:.3f}")
    cases = [s for s in (result.setup, result.cleanup) if s is not None and not s.ok]
    for s in cases:
        case = ET.SubElement(suite, "testcase", classname=lab.id, name=s.name, time=f"{s.duration:.3f}")
        ET.SubElement(case, "error", message=f"{s.name} {s.status}, exit code {s.exit_code}").text = _xml(s.output)
    for s in result.steps:
        case = ET.SubElement(suite, "testcase", classname=lab.id, name=f"{s.index:02d} {s.id}: {s.title}",
                             time=f"{s.duration:.3f}")
        if s.status == SKIPPED:
            ET.SubElement(case, "skipped", message="an earlier step, or the setup, failed")
        elif not s.passed:
            detail = [c.detail for c in s.checks if not c.passed]
            ET.SubElement(case, "failure", message=_xml(s.failure()), type=s.status).text = _xml("\n".join(detail))
        out = "".join(("" if c.terminal else f"{prompt(c.host)}{c.command}\n") + c.output for c in s.commands)
        if out:
            ET.SubElement(case, "system-out").text = _xml(out)
    failures = sum(s.status not in (DONE, SKIPPED) for s in result.steps)
    suite.set("tests", str(len(result.steps) + len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(len(cases)))
    suite.set("skipped", str(sum(s.status == SKIPPED for s in result.steps)))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(result: LabResult, path: str) -> None:
    to_junit(result).write(path, encoding="utf-8", xml_declaration=True)
