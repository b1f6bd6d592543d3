"""A long-lived named shell that steps type commands into.

A step may type into a shell that is still running ``docker run -it ...
busybox sh``: the executor cannot wait for a process to exit. After each
command it types a marker line that prints an invisible OSC sequence
(``ESC ] 7770 ; token ; $? BEL``); whatever shell is in the foreground, bash
on the lab host or busybox sh in a container, prints it once the command's
output has ended, with its exit status. The marker and the echo of the line
that prints it are cut from the output. A command that reads stdin (a bare
``cat``) swallows the marker line: then the run ends by its timeout.
"""
from __future__ import annotations

import re
import secrets
import threading
import time

from .outcome import DONE, FAILED, INTERRUPTED, TIMED_OUT, Outcome
from .process import OutputCallback, PtyProcess

PROMPT = r"[\u@\h \W]\$ "


class TerminalBusy(RuntimeError):
    pass


class MarkerFilter:
    """Cuts the marker line's echo and the marker itself out of a byte stream.

    Holds back a tail that might be the start of either, so a marker split
    across reads is still found and never shown.
    """

    def __init__(self, token: str):
        self.echo = marker_line(token).rstrip("\n").encode()
        self.pattern = re.compile(rb"\x1b\]7770;" + token.encode() + rb";(\d+)\x07")
        self.prefix = b"\x1b]7770;"
        self.pending = b""

    def feed(self, data: bytes) -> tuple[bytes, int | None]:
        """(bytes to show, exit status once the marker was seen)."""
        buf = self.pending + data
        buf = buf.replace(self.echo + b"\r\n", b"").replace(self.echo, b"")
        m = self.pattern.search(buf)
        if m:
            self.pending = b""
            return buf[:m.start()], int(m.group(1))
        keep = max(_partial_suffix(buf, self.echo), _partial_suffix(buf, self.prefix))
        if b"\x1b]7770;" in buf[-64:]:
            keep = max(keep, len(buf) - buf.rindex(b"\x1b]7770;"))
        self.pending = buf[len(buf) - keep:] if keep else b""
        return buf[:len(buf) - keep], None

    def flush(self) -> bytes:
        out, self.pending = self.pending, b""
        return out


def marker_line(token: str) -> str:
    # leading space: kept out of bash's history; \033 and \007 are written as
    # escapes so that the echo of this line never looks like the marker itself
    return f" printf '\\033]7770;%s;%s\\007' {token} \"$?\"\n"


def _partial_suffix(buf: bytes, needle: bytes) -> int:
    """Length of the longest end of ``buf`` that begins ``needle``."""
    for n in range(min(len(buf), len(needle) - 1), 0, -1):
        if needle.startswith(buf[-n:]):
            return n
    return 0


class TerminalRun:
    """One command typed into a terminal."""

    def __init__(self, terminal: "Terminal", on_output: OutputCallback, timeout: float | None, endless: bool):
        self.terminal, self.on_output = terminal, on_output
        self.timeout, self.endless = timeout, endless
        self.token = secrets.token_hex(6)
        self.filter = MarkerFilter(self.token)
        self.outcome: Outcome | None = None
        self.started = time.monotonic()
        self._done = threading.Event()
        self._stopping: str | None = None

    def feed(self, data: bytes, text: str) -> None:
        shown, status = self.filter.feed(data)
        if shown:
            self.on_output(shown, shown.decode(errors="replace"))
        # bytes cut out count as dealt with: they will never be acknowledged
        self.terminal.process.ack(len(data) - len(shown))
        if status is not None:
            self._end(status)

    def _end(self, status: int | None, why: str | None = None) -> None:
        if self._done.is_set():
            return
        why = why or self._stopping
        if why is None:
            why = DONE if status == 0 else FAILED
        self.outcome = Outcome(why, status, None, time.monotonic() - self.started)
        self._done.set()
        self.terminal._run_ended(self)

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

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, rows: int = 24, cols: int = 120,
                 on_idle_output: OutputCallback | None = None):
        self.name = name
        env = {**env, "PS1": PROMPT, "HISTCONTROL": "ignorespace"}
        self.on_idle_output = on_idle_output or (lambda data, text: None)
        self.process = PtyProcess(argv, env, on_output=self._route, rows=rows, cols=cols)
        self.current: TerminalRun | None = None
        self._lock = threading.Lock()

    def start(self, ready_timeout: float = 10.0) -> "Terminal":
        self.process.start()
        if self.process.outcome is not None:
            raise RuntimeError(f"terminal {self.name} could not start: {self.process.outcome.error}")
        first = self.run(on_output=lambda d, t: None, command=None, timeout=ready_timeout)
        if not first.wait(ready_timeout + 1) or first.outcome.status != DONE:
            self.close()
            raise RuntimeError(f"terminal {self.name} did not get ready within {ready_timeout:.0f} s")
        return self

    @property
    def alive(self) -> bool:
        return self.process.running

    def run(self, command: str | None, *, on_output: OutputCallback, timeout: float | None = None,
            endless: bool = False) -> TerminalRun:
        """Type ``command``, then (unless endless) the marker line; returns at once."""
        with self._lock:
            if self.current is not None:
                raise TerminalBusy(f"terminal {self.name} is still running a command; stop it first")
            if not self.alive:
                raise ProcessLookupError(f"terminal {self.name} has ended")
            run = self.current = TerminalRun(self, on_output, timeout, endless)
        text = (command.rstrip("\n") + "\n") if command else ""
        if not endless:
            text += marker_line(run.token)
        self.process.write(text)
        if timeout is not None:
            threading.Thread(target=self._watch_timeout, args=(run,), daemon=True).start()
        return run

    def write(self, data: bytes | str) -> None:
        """Raw keystrokes from a learner."""
        self.process.write(data)

    def resize(self, rows: int, cols: int) -> None:
        self.process.resize(rows, cols)

    def close(self) -> None:
        if self.current:
            self.current._end(None, INTERRUPTED)
        self.process.stop(grace=0.5)

    # -- internals --------------------------------------------------------
    def _route(self, data: bytes, text: str) -> None:
        run = self.current
        if run is not None:
            run.feed(data, text)
        else:
            self.on_idle_output(data, text)

    def _run_ended(self, run: TerminalRun) -> None:
        with self._lock:
            if self.current is run:
                self.current = None
        rest = run.filter.flush()
        if rest:
            self.on_idle_output(rest, rest.decode(errors="replace"))

    def _interrupt_run(self, run: TerminalRun, grace: float = 3.0) -> None:
        for keys in (b"\x03", b"\x03", b"\x1c"):     # ^C twice, then ^\ (SIGQUIT)
            if not run.running:
                return
            try:
                self.process.write(keys)
                time.sleep(0.05)
                self.process.write(marker_line(run.token))
            except (ProcessLookupError, TimeoutError):
                break
            if run.wait(grace):
                return
        # the foreground program ignores the terminal: the terminal is lost
        run._end(None)
        self.process.stop(grace=0.5)

    def _watch_timeout(self, run: TerminalRun) -> None:
        if run.wait(run.timeout) is None:
            run._stopping = TIMED_OUT
            self._interrupt_run(run)
