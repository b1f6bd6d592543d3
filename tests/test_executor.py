"""The executor on real processes: PTY, output, input, signals, timeouts, backpressure."""
from __future__ import annotations

import os
import resource
import signal
import threading
import time

import pytest

from conftest import Output, cmdline
from web_support import wait_for
from webapp import executor
from webapp.executor.terminal import MarkerFilter, marker_line
from webapp.lab import load_lab
from webapp.learners import events as run_events
from webapp.labhost.relay import RELAY_RESTARTS
from webapp.learners.bench import Bench


def collect(host, command, **kw):
    out = Output()
    proc = executor.start(host, command, on_output=out, window=None, **kw)
    return proc, out


def test_exit_code_output_and_tty(plain):
    proc, out = collect(plain, "test -t 1 && echo tty; echo héllo; exit 3")
    outcome = proc.wait(10)
    assert (outcome.status, outcome.exit_code) == (executor.FAILED, 3)
    assert out.text == "tty\nhéllo\n"


def test_output_comes_as_read_a_character_split_across_reads_too(plain):
    chunks: list[bytes] = []
    proc = executor.start(plain, r"printf '\303'; sleep 0.3; printf '\251\n'", on_output=chunks.append, window=None)
    proc.wait(10)
    assert len(chunks) >= 2 and chunks[0] == b"\xc3"
    assert b"".join(chunks) == "é\r\n".encode()


def test_stdin_and_resize(plain):
    proc, out = collect(plain, "read -r line; echo got:$line; stty size")
    proc.resize(33, 77)
    proc.write("abc\n")
    assert proc.wait(10).ok
    text = out.text
    assert "got:abc" in text and "33 77" in text


def test_end_is_a_ctrl_c_to_the_process_group_first(plain):
    proc, out = collect(plain, "trap 'echo caught; exit 9' INT; echo ready; sleep 30 & wait")
    while "ready" not in out.text:
        time.sleep(0.01)
    proc.end()
    outcome = proc.wait(10)
    assert outcome.status == executor.INTERRUPTED and outcome.exit_code == 9
    assert "caught" in out.text


def test_stop_escalates_to_sigkill(plain):
    proc, out = collect(plain, "trap '' INT TERM HUP; echo ready; while :; do sleep 0.1; done")
    while "ready" not in out.text:
        time.sleep(0.01)
    outcome = proc.stop(grace=0.3)
    assert outcome.status == executor.INTERRUPTED and outcome.signal == 9


def test_timeout(plain):
    proc, _ = collect(plain, "sleep 30", timeout=0.5)
    outcome = proc.wait(10)
    assert outcome.status == executor.TIMED_OUT


def test_command_that_cannot_start(plain):
    proc, out = collect(plain, "/nonexistent/tool --flag")
    outcome = proc.wait(10)
    assert outcome.status == executor.FAILED and outcome.exit_code == 127
    assert "No such file or directory" in out.text


def test_backpressure_stops_reading_until_acknowledged(plain):
    delivered = []
    window = 256 * 1024
    proc = executor.start(plain, "head -c 20000000 /dev/zero | od -v", window=window,
                        on_output=lambda d: delivered.append(len(d)))
    # without acknowledgements the reader stops at the window (plus one read)
    deadline = time.monotonic() + 5
    while sum(delivered) < window and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    assert window <= sum(delivered) <= window + 65536
    assert proc.running, "the producer should be held by the full PTY, not finished"
    # acknowledging everything lets it run to the end
    acked = 0
    while proc.running or acked < sum(delivered):
        total = sum(delivered)
        proc.ack(total - acked)
        acked = total
        time.sleep(0.001)
    assert proc.wait(30).ok
    assert sum(delivered) > 20000000


def test_output_is_whole_however_late_the_consumer_takes_the_last_of_it(plain):
    """The command has exited with up to a pipe's worth of output still on its
    way: the reader takes it all, however long the consumer waits."""
    data, window = [], 256 * 1024
    proc = executor.start(plain, "head -c 3000000 /dev/zero | tr '\\0' a; echo END", window=window,
                        on_output=data.append)
    acked = 0
    while proc.running:
        total = sum(map(len, data))
        proc.ack(total - acked)
        acked = total
        time.sleep(0.6 if total > 2_000_000 else 0.01)   # past the drain grace, near the end
    assert proc.outcome.ok
    assert b"".join(data) == b"a" * 3_000_000 + b"END\r\n"


def test_a_background_job_holding_the_terminal_does_not_hold_the_run(plain):
    proc, out = collect(plain, "(trap '' HUP; exec sleep 30) & echo started")
    outcome = proc.wait(10)
    assert outcome is not None and outcome.ok
    assert "started" in out.text
    assert not relays_of_this_process()


@pytest.mark.parametrize("background", [False, True], ids=["pty-closed", "pty-held"])
def test_output_is_whole_when_the_relay_falls_behind(plain, background):
    """A loaded machine may not run the output relay for a while after the
    command has exited (and with a background job holding the terminal, the
    reader stops waiting after a grace): what is still in the PTY is read,
    not dropped. Stopped here with SIGSTOP past the grace, then let go."""
    hold = "(trap '' HUP; exec sleep 30) & " if background else ""
    proc, out = collect(plain, f"read go; {hold}for i in $(seq 200); do echo line$i; done")
    relay = proc.handle._relays[0]
    os.kill(relay.pid, signal.SIGSTOP)
    proc.write("go\n")
    threading.Timer(executor.process.DRAIN_GRACE * 3, relay.send_signal, (signal.SIGCONT,)).start()
    outcome = proc.wait(20)
    assert outcome is not None and outcome.ok
    assert [f"line{i}" for i in range(1, 201)] == [l for l in out.text.split("\n") if l.startswith("line")]


def test_output_is_whole_when_the_relay_dies(plain):
    """A relay that ends before the command (it should not) costs no output:
    what it left in the PTY is read there."""
    proc, out = collect(plain, "read go; for i in $(seq 200); do echo line$i; done")
    relay = proc.handle._relays[0]
    os.kill(relay.pid, signal.SIGKILL)
    relay.wait()
    proc.write("go\n")
    outcome = proc.wait(20)
    assert outcome is not None and outcome.ok
    assert [f"line{i}" for i in range(1, 201)] == [l for l in out.text.split("\n") if l.startswith("line")]


def test_a_pty_made_non_blocking_costs_only_its_own_output(plain):
    """The lab host's root may keep a copy of a PTY master its spawner handed
    over and make it non-blocking, for every holder: the relay's reads then
    fail. New relays take over a bounded number of times; the run ends when
    the command does, and the reader neither hangs nor spins."""
    proc, out = collect(plain, "read go; for i in $(seq 200); do echo line$i; sleep 0.01; done")
    os.set_blocking(proc.handle.master, False)
    proc.write("go\n")
    outcome = proc.wait(20)
    assert outcome is not None and outcome.ok
    assert proc.handle.restarts == RELAY_RESTARTS
    assert not relays_of_this_process()


def test_a_consumer_that_fails_ends_the_run_as_an_error(plain):
    """Output that could not be taken in (a full disk, a broken printer) is
    never a run that passed with its output cut short."""
    def on_output(data: bytes) -> None:
        if b"second" in data:
            raise OSError(28, "No space left on device")
    proc = executor.start(plain, "echo first; sleep 0.5; echo second; sleep 0.5; echo third; sleep 30",
                          on_output=on_output, window=None)
    outcome = proc.wait(20)
    assert outcome is not None and outcome.status == executor.ERROR
    assert "could not take in its output" in outcome.error and "No space left" in outcome.error
    assert not relays_of_this_process()


def relays_of_this_process() -> list[int]:
    """Our ``cat`` relays still alive (a relay outliving its process leaks)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "cat" and int(rest[1]) == os.getpid():
            found.append(int(pid))
    return found


def test_descriptors_above_1023_work(plain):
    """A busy server's PTYs and pipes get descriptors above select()'s limit.

    The server raises its soft limit of open files (server.py); so does this
    test, as far as the hard limit allows (Debian's soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        proc, out = collect(plain, "read -r x; echo got-$x")
        proc.write("high\n")
        assert proc.wait(10).ok
        assert "got-high" in out.text
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_marker_filter_finds_markers_split_at_every_byte():
    token = "0123456789ab"
    stream = (b"out\r\n" + marker_line(token).encode().rstrip(b"\n") + b"\r\n"
              + b"\x1b]7770;" + token.encode() + b";0;1\x07" + b"\x1b]7771;0\x07" + b"[prompt]# ")
    for cut in range(1, len(stream)):
        f = MarkerFilter()
        parts = f.feed(stream[:cut]) + f.feed(stream[cut:])
        text = b"".join(p[1] for p in parts if p[0] == "text") + f.pending   # held back: the rest
        assert text == b"out\r\n[prompt]# ", cut
        assert [p for p in parts if p[0] != "text"] == [("echo",), ("marker", token, 0, True), ("prompt", 0)]


SPLIT_LAB = r"""---
title: Split characters
summary: Characters whose bytes come in two reads, for the decoding test.
duration: 1m
terminals: [t]
---
# Split characters

## Split {#split}

```sh {"terminal": "t", "timeout": 10}
printf 'caf\303'; sleep 0.3; printf '\251 \342\234'; sleep 0.3; printf '\223\n'
```

```sh
printf '\360\237'; sleep 0.3; printf '\220\263 end\n'
```

```match {"hint": "The characters must come out whole."}
café ✓(.|\n)*🐳 end
```
"""


def lab_session(host, tmp_path, text: str) -> tuple:
    """A lab of ``text`` and a session of it on ``host``."""
    path = tmp_path / "lab.md"
    path.write_text(text)
    lab = load_lab(path)
    return lab, Bench(lab, host)


def test_a_run_decodes_characters_split_across_reads_whole(plain, tmp_path):
    """A step's output, from a named terminal and a one-shot command, is
    decoded by the run's one decoder: no character becomes U+FFFD."""
    lab, session = lab_session(plain, tmp_path, SPLIT_LAB)
    events: list[run_events.Event] = []
    try:
        run = session.run_step(lab.steps[0], events.append, window=None)
        assert run.wait(30) == executor.DONE, events
    finally:
        session.close()
    text = "".join(e.text for e in events if isinstance(e, run_events.Output))
    assert "café ✓" in text and "🐳 end" in text and "\ufffd" not in text, repr(text)
    assert [e.passed for e in events if isinstance(e, run_events.CheckJudged)] == [True]


DEAF_LAB = """---
title: Deaf
---
# Deaf

## Deaf to ^C {#deaf}

```sh
trap '' INT; sleep 1000
```
"""


def test_stop_ends_a_command_deaf_to_ctrl_c(plain, tmp_path):
    """Stop is a ^C first (ping prints its statistics); a command that
    ignores it is ended harder, so the learner's notebook is not held."""
    lab, session = lab_session(plain, tmp_path, DEAF_LAB)
    events: list[run_events.Event] = []
    try:
        run = session.run_step(lab.steps[0], events.append, window=None)
        wait_for(lambda: run._current is not None and run._current.pid, 10, what="the command to start")
        time.sleep(0.5)   # its trap is set
        threads = threading.active_count()
        for _ in range(200):   # a client repeating Stop
            run.stop()
        assert threading.active_count() <= threads + 1
        assert run.wait(20) == executor.INTERRUPTED
    finally:
        session.close()
    outcome = next(e.outcome for e in events if isinstance(e, run_events.CommandEnded))
    assert outcome.signal in (signal.SIGTERM, signal.SIGHUP, signal.SIGKILL), outcome


def test_terminal_keeps_state_between_runs(plain):
    term = executor.open_terminal(plain, "t")
    try:
        out = Output()
        r = term.type("cd /tmp; X=42; false", on_output=out, timeout=10)
        assert r.wait(15).status == executor.FAILED
        out.clear()
        r = term.type("echo $X $PWD", on_output=out, timeout=10)
        assert r.wait(15).ok
        assert "42 /tmp" in out.text
        with pytest.raises(executor.TerminalBusy):
            busy = term.type("sleep 30", on_output=lambda d: None, timeout=60)
            term.type("true", on_output=lambda d: None)
        busy.interrupt()
        assert busy.wait(10).status == executor.INTERRUPTED
        r = term.type("sleep 30", on_output=lambda d: None, timeout=0.5)
        assert r.wait(15).status == executor.TIMED_OUT
        out.clear()
        r = term.type("ping -i 0.2 127.0.0.1", on_output=out, endless=True)
        while "icmp_seq=2" not in out.text:
            time.sleep(0.05)
        r.interrupt()
        assert r.wait(10).status == executor.INTERRUPTED
        out.clear()
        r = term.type("echo still-here", on_output=out, timeout=10)
        assert r.wait(15).ok and "still-here" in out.text
    finally:
        term.close()


def test_sandbox_run_counts_against_the_lab_host(lab_host):
    """Inside, the command sees only its own cgroup namespace (rooted at the
    lab host's ``lab``); outside, it is in ``labnb/<id>/lab/init``."""
    out = Output()
    proc = executor.start(lab_host, "cat /proc/self/cgroup; id -u; hostname; exec sleep 30",
                        on_output=out, window=None)
    try:
        wait_for(lambda: "localhost" in out.text, 60, what="the command's output")
        text = out.text
        assert ":/init\n" in text and "labnb" not in text and "\n0\nlocalhost" in text

        def sleeping():   # bash execs sleep after printing: on a slow machine, a while after
            in_init = set()
            for path in lab_host.subtree.paths("lab/init"):
                with open(os.path.join(path, "cgroup.procs")) as f:
                    in_init.update(int(p) for p in f.read().split())
            return [p for p in in_init if cmdline(p) == b"sleep\x0030\x00"]
        wait_for(sleeping, 30, what="the command (sleep 30) in the lab host's lab/init cgroup")
    finally:
        proc.stop()


def test_dead_lab_host_says_what_to_do(settings):
    from webapp.labhost.base import LabHostError
    from webapp.labhost.pool import create

    host = create(settings)
    host.destroy()
    with pytest.raises(LabHostError, match="Reset the lab host"):
        executor.start(host, "true")
