"""A learner's bench: one lab set up on its lab hosts (one, or a set named by
the lab's ``hosts``), its named terminals, and the runs of its steps. The headless runner and the web notebook both drive
labs through this, so a step means the same thing in CI and in a browser.

A run of a step types or starts the step's commands in order, then judges
its checks. Everything it does is reported to one callback, as the typed
events of webapp/learners/events.py: ``CommandStarted``, ``Output``,
``CommandEnded`` per command, ``CheckJudged`` per check, ``RunEnded`` last.
"""
from __future__ import annotations

import codecs
import collections
import itertools
import threading
import uuid

from .. import executor
from ..executor import DONE, ERROR, FAILED, INTERRUPTED, TIMED_OUT, Outcome
from ..lab import Check, Command, Lab, Match, Step, plain_text
from ..labhost.base import LabHost
from ..labhost.hostset import HostSet, names_of
from .events import CheckJudged, CommandEnded, CommandStarted, OnEvent, Output, RunEnded

MATCH_HEAD = MATCH_TAIL = 4 << 20   # characters of a run's output that its matches see, at each end
SCRIPT_TIMEOUT = 300.0              # seconds a lab's setup or cleanup may take

_Source = tuple[str | None, str | None]   # (terminal, host) a chunk of a run's output came from


class StepRun:
    """One run of one step. ``ack(nbytes)``: the consumer has dealt with so many
    more bytes of its output (a run's ``flow.Credit`` says so), passed on to
    the command now running; ``stop()`` ends it (an endless command so ends
    as intended)."""

    def __init__(self, bench: "Bench", step: Step, on_event: OnEvent,
                 endless_for: float | None, window: int | None):
        self.id = uuid.uuid4().hex
        self.bench, self.step, self.on_event = bench, step, on_event
        self.endless_for, self.window = endless_for, window
        self.status: str | None = None
        self.waits_for_stop = False     # its command now is endless: it runs until the learner stops it
        # ((terminal, host), text) per chunk, for matches: of a long output, its start and its end
        self.output: list[tuple[_Source, str]] = []
        self._tail: collections.deque[tuple[_Source, str]] = collections.deque()
        self._kept = self._tail_kept = 0
        self._source: _Source = (None, None)   # where the output now comes from
        self._mid_line = False          # the output so far ends in a line not ended
        self._at_prompt: str | None = None   # ... which is this named terminal's prompt, after its last command
        self._current = None            # the PtyProcess or TypedCommand now running
        self._delivered = 0             # output bytes sent to the consumer
        self._current_base = 0          # ... before the current command started
        self._acked = 0
        # one decoder for the whole run: a character split across reads, or
        # across two of its commands' output, is decoded once, whole
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()

    # -- consumer side ----------------------------------------------------
    def ack(self, nbytes: int) -> None:
        with self._lock:
            # bytes of a command that has ended are no longer its process's to read on
            delta_from = max(self._acked, self._current_base)
            self._acked = min(self._acked + nbytes, self._delivered)
            current = self._current
            delta = self._acked - delta_from
        if current is not None and delta > 0:
            current.ack(delta)

    def stop(self) -> None:
        """Once, however often it is asked (a client repeating Stop)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            current = self._current
        if current is not None:
            _halt(current)

    def wait(self, timeout: float | None = None) -> str | None:
        self._done.wait(timeout)
        return self.status

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    # -- the run ----------------------------------------------------------
    def _emit_output(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if data:
            self._mid_line = not data.endswith(b"\n")
        with self._lock:
            self._delivered += len(data)
            if self.window is None:
                self._acked = self._delivered
        self._keep(text)
        self.on_event(Output(data, text))
        if self.window is None and self._current is not None:
            self._current.ack(len(data))

    def _keep(self, text: str) -> None:
        """Keep output for matches within MATCH_HEAD + MATCH_TAIL characters, so
        that an endless or huge output does not grow the server's memory."""
        if self._kept < MATCH_HEAD:
            self.output.append((self._source, text))
            self._kept += len(text)
            return
        self._tail.append((self._source, text))
        self._tail_kept += len(text)
        while self._tail_kept > MATCH_TAIL and len(self._tail) > 1:
            self._tail_kept -= len(self._tail.popleft()[1])

    def _run(self) -> None:
        status = DONE
        try:
            for i, block in enumerate(self.step.blocks):
                if isinstance(block, Command) and block.run:
                    status = self._run_command(i, block)
                    if status != DONE:
                        break
            unended = self._decoder.decode(b"", final=True)   # the bytes of a character cut off at the end
            if unended:
                self._keep(unended)
            if status == DONE:
                status = self._judge()
        except Exception as e:  # a lab host that died, a terminal that would not start
            self._emit_output(f"\r\nlabnb: {e}\r\n".encode())
            status = ERROR
        finally:
            self.status = status
            self.bench._run_ended(self)
            self.on_event(RunEnded(status))
            self._done.set()

    def _run_command(self, i: int, cmd: Command) -> str:
        if self._stop.is_set():
            return INTERRUPTED
        at_prompt, self._at_prompt = self._at_prompt, None
        if self._mid_line and not (cmd.terminal and at_prompt == cmd.terminal):
            self._emit_output(b"\r\n")   # what comes next starts a line
        self.on_event(CommandStarted(i, cmd.line, cmd.text, cmd.terminal, cmd.host))
        self._source = (cmd.terminal, cmd.host)
        term = self.bench.terminal(cmd.terminal) if cmd.terminal else None
        if term and at_prompt != cmd.terminal:
            # The terminal echoes the command where it is typed: after its prompt, which it showed
            # before this run, or at the end of this run's last command in another terminal.
            self._emit_output(term.prompt)
        with self._lock:
            self._current_base = self._delivered
        self.waits_for_stop = cmd.endless
        # headless runs stop endless commands after a while; a learner stops them
        endless_limit = (cmd.stop_after or self.endless_for) if cmd.endless and self.endless_for else None
        if term:
            self._current = term.type(cmd.text, on_output=self._emit_output,
                                      timeout=None if cmd.endless else cmd.timeout, endless=cmd.endless)
        else:
            self._current = executor.start(self.bench.host(cmd.host), cmd.text, on_output=self._emit_output,
                                         timeout=None if cmd.endless else cmd.timeout, window=self.window)
        if self._stop.is_set():
            _halt(self._current)
        if endless_limit is not None and self._current.wait(endless_limit) is None:
            _halt(self._current)
        outcome = self._current.wait()
        while outcome is None:
            outcome = self._current.wait(1)
        self._current = None
        self.waits_for_stop = False
        ok, note = verdict(cmd, outcome)
        if note and self._mid_line:
            self._emit_output(b"\r\n")   # the note a consumer shows starts a line
        elif term and self._mid_line:
            self._at_prompt = cmd.terminal   # the prompt it showed for our marker line: the next command's
        self.on_event(CommandEnded(i, outcome, ok, note))
        if ok:
            return DONE
        if outcome.status in (INTERRUPTED, TIMED_OUT, ERROR):
            return outcome.status
        return FAILED

    def _judge(self) -> str:
        passed_all = True
        for idx, check in enumerate(self.step.checks):
            if isinstance(check, Match):
                text = "".join(t for (term, host), t in itertools.chain(self.output, self._tail)
                               if check.terminal in (None, term) and check.host in (None, host))
                passed, detail = check.test(text), f"output must match /{check.pattern}/"
            else:
                passed, detail = self._run_check(check)
            passed_all &= passed
            self.on_event(CheckJudged(idx, "match" if isinstance(check, Match) else "check", passed, check.hint,
                                      detail))
        return DONE if passed_all else FAILED

    def _run_check(self, check: Check) -> tuple[bool, str]:
        outcome, output = executor.capture(self.bench.host(check.host), check.text, check.timeout)
        tail = plain_text(output).strip()[-500:]
        if outcome.status == TIMED_OUT:
            return False, f"the check timed out after {check.timeout:g} s"
        if outcome.status == ERROR:
            return False, f"the check could not run: {outcome.error}"
        return outcome.exit_code == 0, tail


def _halt(current: executor.PtyProcess | executor.TypedCommand) -> None:
    """End a command as Stop means, without waiting: a ^C (an endless ping
    prints its statistics), then harder if it goes on (it ignores ^C, or the
    ^C came before it could take one). A command typed into a named terminal
    gets ^C, ^C, ^\\ (its terminal's shell is lost only if it ignores them all)."""
    if isinstance(current, executor.PtyProcess):
        current.end()
    else:
        threading.Thread(target=current.interrupt, name="halt-typed", daemon=True).start()


def script(lab_host: LabHost, name: str | None, text: str) -> tuple[Outcome, str]:
    """A lab's setup or cleanup on one of its lab hosts, knowing the lab's name for it as ``$LABNB_HOST``
    (``name`` None, a lab without ``hosts``: as it always ran, without)."""
    if name is not None:   # a name of the lab format's (a-z, 0-9, -): nothing to quote
        text = f"LABNB_HOST={name}; export LABNB_HOST\n{text}"
    return executor.capture(lab_host, text, SCRIPT_TIMEOUT)


def prompt(host: str | None) -> str:
    """What a run's output shows before a command run in a fresh shell: ``$ ``, or on a lab of several
    hosts ``node2$ `` (the host it ran on)."""
    return f"{host}$ " if host else "$ "


def verdict(cmd: Command, outcome: Outcome) -> tuple[bool, str]:
    """Whether a command did what its block says, and a note for the learner."""
    if cmd.endless and outcome.status == INTERRUPTED:
        return True, "stopped"
    if outcome.status == ERROR:
        return False, outcome.error or "could not start"
    if outcome.status == INTERRUPTED:
        return False, "stopped before it finished"
    if outcome.status == TIMED_OUT:
        return False, f"timed out after {cmd.timeout:g} s"
    failed = outcome.exit_code != 0
    if cmd.fails:
        return failed, "failed, as expected" if failed else "was expected to fail, but succeeded"
    if not failed:
        return True, ""
    if outcome.exit_code is None:   # killed by a signal from outside (OOM, a lab host torn down)
        return False, f"killed by signal {outcome.signal}"
    return False, f"exited with {outcome.exit_code}"


class Bench:
    """One lab on a learner's lab hosts: ``lab_host`` the primary, ``hosts`` every one by the lab's names
    (None: the primary alone, by the lab's first name). One step runs at a time, as in a terminal."""

    def __init__(self, lab: Lab, lab_host: LabHost, hosts: dict[str, LabHost] | None = None):
        self.lab, self.lab_host = lab, lab_host
        self.hosts = HostSet(list(hosts.items()) if hosts else [(names_of(lab)[0], lab_host)])
        if self.hosts.host() is not lab_host:
            raise ValueError("a bench's lab_host must be the first of its hosts")
        self.terminals: dict[str, executor.Terminal] = {}
        self.current: StepRun | None = None
        self._lock = threading.Lock()

    def host(self, name: str | None = None) -> LabHost:
        """The lab host the lab names ``name`` (None: the first); LabHostError naming the set's hosts for
        a name the lab does not declare."""
        return self.hosts.host(name)

    def terminal(self, name: str) -> executor.Terminal:
        """The named terminal, started on first use (or again if it ended)."""
        with self._lock:
            term = self.terminals.get(name)
            if term is None or not term.alive:
                term = self.terminals[name] = executor.open_terminal(self.host(self.lab.terminal_host(name)), name)
            return term

    def run_script(self, text: str) -> list[tuple[str | None, Outcome, str]]:
        """Run a lab's setup or cleanup on every lab host at once (``script``); (host, outcome, output)
        each, the host None in a lab of one unnamed lab host."""
        names = self.lab.hosts or [None]
        results: list = [None] * len(names)

        def run(i: int, name: str | None) -> None:
            try:
                results[i] = (name, *script(self.host(name), name, text))
            except Exception as e:   # a lab host gone: raised below, as for one lab host
                results[i] = e

        threads = [threading.Thread(target=run, args=(i, n), name=f"script-{n}", daemon=True)
                   for i, n in enumerate(names[1:], 1)]
        for t in threads:
            t.start()
        run(0, names[0])
        for t in threads:
            t.join()
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def run_step(self, step: Step, on_event: OnEvent, *, endless_for: float | None = None,
                 window: int | None = executor.DEFAULT_WINDOW) -> StepRun:
        """Start a run of ``step`` in a thread; ``endless_for`` stops endless commands
        after so many seconds (headless runs), else they run until ``stop()``.
        One step runs at a time: callers look at ``current`` first."""
        with self._lock:
            if self.current is not None:
                raise RuntimeError(f"step {self.current.step.title!r} is still running; stop it first")
            run = self.current = StepRun(self, step, on_event, endless_for, window)
        threading.Thread(target=run._run, name=f"step-{run.id[:8]}", daemon=True).start()
        return run

    def _run_ended(self, run: StepRun) -> None:
        with self._lock:
            if self.current is run:
                self.current = None

    def close(self) -> None:
        run = self.current
        if run is not None:
            run.stop()
            run.wait(10)
        for term in self.terminals.values():
            term.close()
        self.terminals.clear()
