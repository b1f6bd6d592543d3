"""Starting commands in a lab host: a one-shot command (``start``; ``capture`` runs one to its end) and a
named shell that later commands are typed into (``open_terminal``), each refused at once on a lab host
that is gone."""
from __future__ import annotations

from ..labhost.base import BASH, HeadTail, LabHost, LabHostError
from .outcome import Outcome
from .process import DEFAULT_WINDOW, OutputCallback, PtyProcess
from .terminal import Terminal


def start(lab_host: LabHost, command: str, *, on_output: OutputCallback | None = None,
          timeout: float | None = None, window: int | None = DEFAULT_WINDOW,
          rows: int = 24, cols: int = 120, shell: str = "bash") -> PtyProcess:
    """Start ``command`` (bash syntax) in the lab host; returns the running process. ``shell`` is found
    on the learner's PATH, unless given by its path (the server's own jobs: ``capture``)."""
    _require_alive(lab_host)
    return PtyProcess(lab_host, [shell, "--norc", "--noprofile", "-c", command], on_output=on_output,
                      timeout=timeout, window=window, rows=rows, cols=cols).start()


def capture(lab_host: LabHost, command: str, timeout: float) -> tuple[Outcome, str]:
    """Run ``command`` to its end (a check, a lab's setup): how it ended, and a bounded head and tail of
    what it printed (``HeadTail``: a check's verdict is its exit code). Its shell is the machine's own;
    the programs it runs are found on the learner's PATH, as the lab's commands find them."""
    kept = HeadTail()
    outcome = start(lab_host, command, on_output=kept.feed, timeout=timeout, window=None, shell=BASH).wait()
    return outcome, kept.value().decode(errors="replace")


def open_terminal(lab_host: LabHost, name: str, *,
                  rows: int = 24, cols: int = 120) -> Terminal:
    """Start a named interactive shell in the lab host and wait for its first prompt."""
    _require_alive(lab_host)
    argv = ["bash", "--noprofile", "--rcfile", lab_host.shell_rc(), "-i"]
    return Terminal(name, lab_host, argv, rows=rows, cols=cols).start()


def _require_alive(lab_host: LabHost) -> None:
    if not lab_host.alive():
        raise LabHostError(f"lab host {lab_host.id} is gone (it was destroyed or its processes were killed)",
                           "Reset the lab host to get a fresh one")
