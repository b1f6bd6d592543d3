"""A long-lived named shell that steps type commands into.

A step may type into a shell that is still running ``docker run -it ...
busybox sh``: the executor cannot wait for a process to exit. Two invisible
OSC sequences tell it when a command's output has ended:

- after each command it types a marker line that prints
  ``ESC ] 7770 ; token ; $? ; outer BEL``; whatever shell is in the
  foreground, the terminal's bash or busybox sh in a container, prints it once
  the command is done (``outer`` is 1 only from the terminal's own bash);
- the terminal's bash prints ``ESC ] 7771 ; $? BEL`` before each prompt
  (scripts/bashrc), which ends a run whose marker line was swallowed, as when
  ``exit`` ends the container that the marker line was typed into.

Both, and the echo of the marker line, are cut from the output. The shell
shows a prompt for the marker line too, the same as the one after it: what
mirrors the terminal (a tab of the terminal panel) is told to erase that line
once the marker shows that a shell ran it, so it shows one prompt, as a person
typing there would see; a run's output keeps it as the line its terminal's
next command is typed at (``StepRun``, webapp/learners/bench.py). A command
that reads stdin (a bare ``cat``) swallows the marker line without a prompt
following: then the run ends by its timeout.
"""
from __future__ import annotations

import re
import secrets
import threading
import time

from ..errors import LabnbError
from ..labhost.base import LabHost
from .outcome import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome
from .process import OutputCallback, PtyProcess

# How long a prompt waits for the marker that normally follows it at once.
PROMPT_GRACE = 1.0
# How long a command typed right after a run waits for the shell to show its next prompt: typed before the
# shell's line editor has the terminal (while it is still in cooked mode), the kernel echoes it and the
# editor shows it again, and the step's output would show it without its prompt. The terminal's own bash
# always shows one after its marker (a loaded machine may take seconds); a shell inside it (a container's)
# may show none, which costs SETTLE once.
SETTLE = 0.5
SETTLE_OWN = 5.0
RECENT = 64 << 10   # bytes of what a terminal showed kept for a fanout that starts to mirror it later
LINE_KEPT = 512     # bytes of the terminal's last line kept: the prompt a command is typed at
# a marker, or the echo of a marker line
_PART = re.compile(rb"\x1b\]777(?P<kind>[01]);(?P<fields>[^\x07\x1b]{0,64})\x07"
                   rb"|(?P<echo> printf '\\033\]7770;%s;%s;%s\\007' [0-9a-f]+ \"\$\?\" \"\$\{__labnb_outer:-0\}\"(\r\n)?)")
ERASE_LINE = b"\r\x1b[K"   # the cursor to the line's start, the line erased


class TerminalBusy(LabnbError, RuntimeError):
    """A run was asked of a terminal that is still running one."""


_ECHO_START = b" printf '\\033]7770;"


def marker_line(token: str) -> str:
    # leading space: kept out of bash's history; \033 and \007 are written as
    # escapes so that the echo of this line never looks like the marker itself
    return f" printf '\\033]7770;%s;%s;%s\\007' {token} \"$?\" \"${{__labnb_outer:-0}}\"\n"


class MarkerFilter:
    """Splits a terminal's byte stream into text and markers, cutting the
    marker lines' echo. Holds back a tail that might begin a marker or an
    echo, so one split across reads is still recognised and never shown."""

    def __init__(self):
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple]:
        """``("text", bytes)``, ``("echo",)`` (a marker line's, cut), ``("marker", token, status, outer)``,
        ``("prompt", status)`` in order."""
        buf = self.pending + data
        keep = _held_back(buf)
        self.pending, buf = buf[len(buf) - keep:] if keep else b"", buf[:len(buf) - keep]
        parts: list[tuple] = []
        pos = 0
        for m in _PART.finditer(buf):
            if m.start() > pos:
                parts.append(("text", buf[pos:m.start()]))
            pos = m.end()
            if m.group("echo"):
                parts.append(("echo",))
                continue
            fields = m.group("fields").decode(errors="replace").split(";")
            if m.group("kind") == b"0" and len(fields) == 3 and fields[1].isdigit():
                parts.append(("marker", fields[0], int(fields[1]), fields[2] == "1"))
            elif m.group("kind") == b"1" and fields[0].isdigit():
                parts.append(("prompt", int(fields[0])))
        if pos < len(buf):
            parts.append(("text", buf[pos:]))
        return parts

    def release(self) -> bytes:
        """What is held back for an echo that would begin with it (a prompt's last space), as text: once
        no marker line typed so far can still be echoed. Not the beginning of a marker: that one comes."""
        if b"\x1b" in self.pending:
            return b""
        text, self.pending = self.pending, b""
        return text


def _held_back(buf: bytes) -> int:
    keep = 0
    osc = buf.rfind(b"\x1b]777", max(0, len(buf) - 80))
    if osc >= 0 and b"\x07" not in buf[osc:]:
        keep = len(buf) - osc
    echo = buf.rfind(_ECHO_START, max(0, len(buf) - 120))
    if echo >= 0 and b"\n" not in buf[echo:]:
        keep = max(keep, len(buf) - echo)
    for needle in (b"\x1b]777", _ECHO_START):
        for n in range(min(len(buf), len(needle) - 1), 0, -1):
            if needle.startswith(buf[-n:]):
                keep = max(keep, n)
                break
    return keep


class TypedCommand:
    """One command typed into a terminal."""

    def __init__(self, terminal: "Terminal", on_output: OutputCallback, timeout: float | None, endless: bool):
        self.terminal, self.on_output = terminal, on_output
        self.timeout, self.endless = timeout, endless
        self.token = secrets.token_hex(6)
        self.outcome: Outcome | None = None
        self.started = time.monotonic()
        self._done = threading.Event()
        self._stopping: str | None = None
        self._prompted = False    # a prompt was seen: the run ends PROMPT_GRACE after the first

    def _end(self, status: int | None, why: str | None = None) -> None:
        if self._done.is_set():
            return
        why = why or self._stopping
        if why is None:
            why = DONE if status == 0 else FAILED
        self.outcome = Outcome(why, status, None, time.monotonic() - self.started)
        self._done.set()
        self.terminal._run_ended(self)

    def _prompt_seen(self, status: int) -> None:
        """The terminal's bash shows its prompt: the marker should follow at once,
        unless the command (``exit`` in a container) swallowed the marker line.
        Called by the terminal's reader; one thread waits, however many prompts
        the output holds (what a learner prints may hold thousands)."""
        if not self._prompted:
            self._prompted = True
            threading.Thread(target=self._await_marker, args=(status,), name="prompt-grace", daemon=True).start()

    def _await_marker(self, status: int) -> None:
        if not self._done.wait(PROMPT_GRACE):
            self._end(status)

    def ack(self, nbytes: int) -> None:
        self.terminal.process.ack(nbytes)

    def interrupt(self) -> None:
        """^C, then a fresh marker line (^C flushed the typed-ahead one)."""
        self._stopping = self._stopping or INTERRUPTED
        self.terminal._interrupt_run(self)

    def wait(self, timeout: float | None = None) -> Outcome | None:
        self._done.wait(timeout)
        return self.outcome

    @property
    def running(self) -> bool:
        return not self._done.is_set()


class Terminal:
    """A named interactive shell in a lab host. One run at a time types into it."""

    def __init__(self, name: str, host: LabHost, argv: list[str], *, rows: int = 24, cols: int = 120):
        self.name = name
        self.process = PtyProcess(host, argv, on_output=self._route, rows=rows, cols=cols)
        self.current: TypedCommand | None = None
        self.filter = MarkerFilter()
        self.recent = bytearray()   # the last RECENT bytes it showed (markers cut), runs' and not
        self.line = bytearray()     # its last line as shown (at most LINE_KEPT bytes): the prompt, between runs
        self.fanout = None          # what mirrors it (``mirror``)
        self._echoed = False        # a marker line's echo was just cut: its prompt is shown, and not yet erased
        self._skip_prompt = False   # the prompt after a marker line the terminal's bash ran
        self._settled = threading.Event()   # the shell showed something (its prompt) since the last marker
        self._settled.set()
        self._settle_for = SETTLE           # how long the next command waits for it (``SETTLE_OWN``: our bash's)
        self._lock = threading.Lock()
        self._route_lock = threading.Lock()

    def start(self, ready_timeout: float = 10.0) -> "Terminal":
        self.process.start()
        if self.process.outcome is not None:
            raise RuntimeError(f"terminal {self.name} could not start: {self.process.outcome.error}")
        first = self.type(None, on_output=lambda data: None, timeout=ready_timeout)
        if not first.wait(ready_timeout + 1) or first.outcome.status != DONE:
            self.close()
            raise RuntimeError(f"terminal {self.name} did not get ready within {ready_timeout:.0f} s")
        return self

    @property
    def alive(self) -> bool:
        return self.process.running

    def type(self, command: str | None, *, on_output: OutputCallback, timeout: float | None = None,
             endless: bool = False) -> TypedCommand:
        """Type ``command``, then (unless endless) the marker line, once the shell shows its prompt after the
        last run (``SETTLE``); returns then."""
        self._settled.wait(self._settle_for)
        self._release()
        with self._lock:
            if self.current is not None:
                raise TerminalBusy(f"terminal {self.name} is still running a command; stop it first")
            if not self.alive:
                raise ProcessLookupError(f"terminal {self.name} has ended")
            run = self.current = TypedCommand(self, on_output, timeout, endless)
        text = (command.rstrip("\n") + "\n") if command else ""
        if not endless:
            text += marker_line(run.token)
        try:
            self.process.write(text)
        except (ProcessLookupError, BlockingIOError):
            run._end(None, ERROR)   # the terminal is free for the next
            raise
        if timeout is not None:
            threading.Thread(target=self._watch_timeout, args=(run,), daemon=True).start()
        return run

    @property
    def prompt(self) -> bytes:
        """The line the terminal shows last (between runs, its prompt, once the shell showed it: ``SETTLE``):
        where a command typed now shows."""
        self._settled.wait(self._settle_for)
        self._release()
        with self._route_lock:
            return bytes(self.line)

    def _release(self) -> None:
        with self._route_lock:
            if self.current is None:   # the last marker line's echo has come: what is held back is a prompt's
                self._text(self.filter.release(), None, self.fanout, own=False)

    def mirror(self, fanout) -> None:
        """Show what the terminal shows on ``fanout`` too (webapp/shells/fanout.py): what it showed
        lately, then all it shows. A run's output is its run's to acknowledge; what the terminal prints
        between runs (the learner typing into it) is then ``fanout``'s, as the terminal panel's is."""
        with self._route_lock:
            fanout.feed(bytes(self.recent), own=False, activity=False)
            self.fanout = fanout
            fanout.credit.attach(self.process.ack)

    def close(self) -> None:
        if self.current:
            self.current._end(None, INTERRUPTED)
        self.process.stop(grace=0.5)

    # -- internals --------------------------------------------------------
    def _route(self, data: bytes) -> None:
        with self._route_lock:
            taken = self._route_parts(data)
        # bytes cut out, or printed between runs with nothing mirroring them, count as dealt with:
        # nobody will acknowledge them
        self.process.ack(len(data) - taken)

    def _route_parts(self, data: bytes) -> int:
        """Hand text to the run of the moment and to the mirror; how many bytes they will acknowledge."""
        taken = 0
        fanout = self.fanout
        for part in self.filter.feed(data):
            run = self.current
            echoed, self._echoed = self._echoed, part[0] == "echo"
            if part[0] == "text":
                taken += self._text(part[1], run, fanout)
                if part[1]:
                    self._settled.set()
            elif part[0] == "marker":
                _, token, status, outer = part
                self._settled.clear()
                self._settle_for = SETTLE_OWN if outer else SETTLE
                if echoed:   # a shell ran the marker line: the prompt it showed for it goes, the next replaces it
                    self._shown(ERASE_LINE)
                    if fanout is not None:
                        fanout.feed(ERASE_LINE, own=False, activity=False)
                self._skip_prompt = self._skip_prompt or outer
                if run is not None and token == run.token:
                    run._end(status)
            elif part[0] == "prompt":
                if self._skip_prompt:
                    self._skip_prompt = False
                elif run is not None:
                    run._prompt_seen(part[1])
        del self.recent[:max(0, len(self.recent) - RECENT)]
        return taken

    def _text(self, text: bytes, run: TypedCommand | None, fanout, own: bool = True) -> int:
        """Hand text to the run and the mirror; how many bytes they will acknowledge (``own``: bytes of the
        PTY not yet acknowledged)."""
        self._shown(text)
        if run is not None:
            run.on_output(text)
        if fanout is not None:
            fanout.feed(text, own=own and run is None)
        return len(text) if own and (run is not None or fanout is not None) else 0

    def _shown(self, text: bytes) -> None:
        """Keep what the terminal showed: its recent past, and its last line."""
        self.recent += text
        if text == ERASE_LINE:   # ours, or the shell's own: the line is empty
            self.line.clear()
            return
        end = text.rfind(b"\n")
        if end >= 0:
            self.line[:] = text[end + 1:]
        else:
            self.line += text
        del self.line[:max(0, len(self.line) - LINE_KEPT)]

    def _run_ended(self, run: TypedCommand) -> None:
        with self._lock:
            if self.current is run:
                self.current = None

    def _interrupt_run(self, run: TypedCommand, grace: float = 3.0) -> None:
        for keys in (b"\x03", b"\x03", b"\x1c"):     # ^C twice, then ^\ (SIGQUIT)
            if not run.running:
                return
            try:
                self.process.write(keys)
                time.sleep(0.05)
                self.process.write(marker_line(run.token))
            except (ProcessLookupError, BlockingIOError):
                break
            if run.wait(grace):
                return
        # the foreground program ignores the terminal: the terminal is lost
        run._end(None)
        self.process.stop(grace=0.5)

    def _watch_timeout(self, run: TypedCommand) -> None:
        if run.wait(run.timeout) is None:
            run._stopping = TIMED_OUT
            self._interrupt_run(run)
