"""The real server for the web tests: ``labnb serve`` (gunicorn, real sandbox
lab hosts) in a subprocess on a free loopback port, with a state dir of its
own under /var/lib (lab hosts hide /tmp), the fixture labs, and a known token.

Loaded as a plugin from conftest.py, so that every test_web_* module shares
one server. Every lab host it made is removed at the end (``labnb lab-hosts
gc --all`` on its state dir), whatever the tests did.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import socketio
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
LABNB = str(Path(sys.executable).with_name("labnb"))
FIXTURE_LABS = str(ROOT / "tests" / "fixtures" / "labs")
TEST_LAB = "90-web-test"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHELL_IDLE_TIMEOUT = 8   # seconds: long enough for a test's reconnects, short enough to wait for
LOG_LINES = 80   # of each running server's log, shown under a failed test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 60, every: float = 0.05, what: str = "a condition"):
    """Poll ``condition`` until it returns something true; that value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Server:
    """One ``labnb serve`` process group and the environment it runs with
    (``env`` adds to it). Every test learner comes from 127.0.0.1, so new
    learners and lab hosts per address, and runs a learner starts (tests and
    benches start them fast), are not limited unless ``env`` says so."""

    running: set["Server"] = set()   # started and not yet cleaned up: their logs go with a failure

    def __init__(self, state_dir: str, uid_slot: int, pool_size: int = 2, env: dict | None = None):
        self.state_dir = state_dir
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.operator_token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LABNB_STATE_DIR": state_dir,
            "LABNB_TOKEN": self.token,
            "LABNB_LABS_DIR": FIXTURE_LABS,
            "LABNB_POOL_SIZE": str(pool_size),
            "LABNB_UID_BASE": str(200000 + uid_slot * 65536),
            # every test browser that opens a lab keeps its lab host while the server runs
            "LABNB_MAX_LAB_HOSTS": "24",
            "LABNB_MEMORY_MB": "192",   # 24 lab hosts and the server must fit the memory of a 6 GiB test VM
            "LABNB_SHELL_IDLE_TIMEOUT": str(SHELL_IDLE_TIMEOUT),
            "LABNB_OPERATOR_TOKEN": self.operator_token,
            "LABNB_NEW_LEARNERS_PER_ADDRESS": "100000",
            "LABNB_LAB_HOSTS_PER_ADDRESS": "100000",
            "LABNB_RUNS_PER_MINUTE": "100000",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log = Path(state_dir + ".log")

    def prepare(self) -> "Server":
        subprocess.run([LABNB, "image", "build"], env=self.env, check=True, capture_output=True)
        return self

    def start(self) -> "Server":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([LABNB, "serve", "--port", str(self.port)], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        Server.running.add(self)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"labnb serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                return requests.get(self.url + "/", timeout=2).status_code == 403
            except requests.ConnectionError:
                return False
        wait_for(up, 60, 0.1, "the server to answer")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if sig == signal.SIGKILL:   # the worker is in the same group; make sure it is gone too
            wait_for(lambda: subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True).returncode,
                     30, 0.1, "the server's processes to end")

    def worker_pid(self) -> int:
        """The gunicorn worker: the process that serves (the master only watches it)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def cleanup(self) -> None:
        Server.running.discard(self)
        self.stop()
        subprocess.run([LABNB, "lab-hosts", "gc", "--all"], env=self.env, capture_output=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    # -- clients ---------------------------------------------------------------
    def learner(self, token: str | None = None) -> requests.Session:
        """A new browser identity: a session that has used the token (by default the learners') once."""
        http = requests.Session()
        r = http.get(f"{self.url}/?token={token or self.token}", timeout=10)
        assert r.status_code == 200, r.text
        return http

    def operator(self) -> requests.Session:
        """A browser that has opened the operator's URL."""
        return self.learner(self.operator_token)

    def cookie(self, http: requests.Session) -> str:
        """The Cookie header of that browser, for clients that do not take a requests session."""
        return "; ".join(f"{c.name}={c.value}" for c in http.cookies)

    def open_lab(self, http: requests.Session, lab: str = TEST_LAB) -> None:
        """Open a lab page as a browser would, and wait until the learner's lab host is ready."""
        assert http.get(f"{self.url}/labs/{lab}", timeout=10).status_code == 200

        def ready():
            html = http.get(f"{self.url}/labs/{lab}/host", timeout=10).text
            assert 'data-state="failed"' not in html, html
            return 'data-state="ready"' in html
        wait_for(ready, 120, 0.2, "the lab host to be ready")

    def learner_who_ran(self, lab: str, step: str) -> requests.Session:
        """A new learner with ``lab`` open, who ran its step ``step`` to its end, passed."""
        http = self.learner()
        self.open_lab(http, lab)
        tab = Tab(self, http, lab=lab)
        try:
            end = tab.wait_end(tab.run(step))
            assert end["status"] == "done", tab.text(end["run"])
        finally:
            tab.close()
        return http

    def csrf(self, http: requests.Session, lab: str = TEST_LAB) -> str:
        """The CSRF token a lab page gives its POSTs."""
        page = http.get(f"{self.url}/labs/{lab}", timeout=10).text
        return re.search(r'"X-CSRF-Token": "([^"]+)"', page).group(1)

    def socket(self, http: requests.Session, **kw) -> socketio.Client:
        """A Socket.IO client as that learner, speaking MessagePack as the
        server does. websocket-client checks UTF-8 in pure Python (a few MB/s);
        browsers do it natively, so skip it here."""
        kw.setdefault("websocket_extra_options", {"skip_utf8_validation": True})
        client = socketio.Client(reconnection=False, serializer="msgpack", **kw)
        client.connect(self.url, headers={"Cookie": self.cookie(http)}, transports=["websocket"], wait_timeout=10)
        return client


class Tab:
    """One browser tab's view of runs: chunks by seq, ends, checks, errors."""

    def __init__(self, server, http, ack: bool = True, lab: str = TEST_LAB):
        self.client = server.socket(http)
        self.lab = lab
        self.ack = ack
        self.chunks: dict[str, dict[int, dict]] = {}
        self.ends: dict[str, dict] = {}
        self.snapshots: dict[str, dict] = {}
        self.started: list[dict] = []
        self.errors: list[dict] = []
        self.lock = threading.Lock()
        c = self.client
        c.on("output", self._output)
        c.on("snapshot", self._snapshot)
        c.on("end", lambda m: self.ends.__setitem__(m["run"], m))
        c.on("run_started", lambda m: self.started.append(m))
        c.on("error", lambda m: self.errors.append(m))
        assert "running" in c.call("open", {"lab": lab}, timeout=10)

    def _output(self, m):
        with self.lock:
            run = self.chunks.setdefault(m["run"], {})
            assert m["seq"] not in run, f"seq {m['seq']} sent twice"
            run[m["seq"]] = m
        if self.ack:
            self.client.emit("ack", {"run": m["run"], "end": m["end"]})

    def _snapshot(self, m):
        self.snapshots[m["run"]] = m
        if self.ack:
            self.client.emit("ack", {"run": m["run"], "end": m["end"]})

    def run(self, step: str) -> str:
        reply = self.client.call("run", {"lab": self.lab, "step": step}, timeout=30)
        assert "run" in reply, reply
        return reply["run"]

    def text(self, run: str) -> str:
        with self.lock:
            chunks = self.chunks.get(run, {})
            return b"".join(chunks[s]["data"] for s in sorted(chunks)).decode()

    def wait_end(self, run: str, timeout: float = 120) -> dict:
        end = wait_for(lambda: self.ends.get(run), timeout, what=f"the end of run {run}")
        # the end is sent after the last chunk, but a thread may handle it first
        snapshot = self.snapshots.get(run, {"seq": -1})
        wait_for(lambda: end["seq"] in self.chunks.get(run, {}) or snapshot["seq"] >= end["seq"], 30,
                 what="the last chunk")
        return end

    def close(self):
        self.client.disconnect()


class ShellTab:
    """One browser tab's terminal panel: what it was sent, acknowledged or not; with ``term``, a tab of the
    lab's named terminal of that name."""

    def __init__(self, server, http, ack: bool = True, lab: str = TEST_LAB, term: str | None = None,
                 learner: str | None = None):
        self.client = server.socket(http)
        self.ack, self.lab = ack, lab
        self.about = {"term": term} if term else {}
        self.watched = {"learner": learner} if learner else {}   # the instructor watching that learner
        self.messages: list[dict] = []
        self.end = self.acked = 0   # the last end position sent, and the last acknowledged
        self.exits = 0
        self.errors: list[dict] = []
        self.lock = threading.Lock()
        self.client.on("shell_output", self._output)
        self.client.on("shell_exit", self._exit)
        self.client.on("error", lambda m: self.errors.append(m))

    def _exit(self, m=None):
        if (m or {}).get("term", "") == self.about.get("term", ""):
            self.exits += 1

    def _output(self, m):
        if m["term"] != self.about.get("term", ""):
            return   # another terminal's tab in the same page
        with self.lock:
            if not self.messages:   # the backlog: the tab's first position is where it starts
                self.acked = m["end"] - len(m["data"])
            self.messages.append(m)
            self.end = max(self.end, m["end"])
        if self.ack:
            self.acked = m["end"]
            try:
                self.client.emit("shell_ack", {**self.about, **self.watched, "end": m["end"]})
            except socketio.exceptions.BadNamespaceError:
                pass   # the tab closed while this output was on its way: a closed tab acknowledges nothing

    @property
    def unacked(self) -> int:
        return self.end - self.acked

    def ack_all(self) -> int:
        """Acknowledge everything received; how much that was."""
        with self.lock:
            owed, self.acked = self.end - self.acked, self.end
        self.client.emit("shell_ack", {**self.about, **self.watched, "end": self.acked})
        return owed

    def open(self, rows: int = 24, cols: int = 80) -> dict:
        return self.client.call("shell_open", {**self.about, **self.watched, "lab": self.lab, "rows": rows,
                                               "cols": cols}, timeout=30)

    def type(self, text: str) -> None:
        self.client.emit("shell_input", {**self.about, "data": text})

    def text(self) -> str:
        with self.lock:
            return b"".join(m["data"] for m in self.messages).decode(errors="replace")

    def wait_text(self, marker: str, timeout: float = 20) -> str:
        return wait_for(lambda: marker in self.text() and self.text(), timeout, what=repr(marker))

    def close(self):
        self.client.disconnect()

    def __enter__(self) -> "ShellTab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the end of each running server's log: its state dir and log are removed at the
    end, and in a VM run the report is all there is to read."""
    report = (yield).get_result()
    if report.failed:
        for server in list(Server.running):
            lines = server.log.read_text(errors="replace").splitlines()[-LOG_LINES:] if server.log.exists() else []
            report.sections.append((f"labnb serve on port {server.port}, its log's last {len(lines)} lines",
                                    "\n".join(lines)))


def _state_dir(name: str) -> str:
    return f"/var/lib/labnb-test-{name}-{os.getpid()}"


def serving(server: "Server"):
    """Start ``server`` for a fixture to yield, and remove all it made afterwards."""
    try:
        server.prepare().start()
        yield server
    finally:
        server.cleanup()


def chromium_browser():
    """Debian's chromium, headless, for a fixture to yield (closed after)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def checked_page(browser, width: int = 1366, height: int = 800):
    """A page in a browser context of its own (60 s for each wait), for a fixture to yield: at the end the
    test fails if a script on the page threw, which a step that passed would not show."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def own_server(name: str, env: dict | None = None):
    """A test module's own server, for a module that makes a new learner (a lab host) per test: they hold
    their lab hosts until the server stops, which the session's server (24, for every module) cannot
    spare. Its uid ranges are found machine-wide from slot 32 up, whatever the others hold. ``env``: its
    settings besides (a labs dir of its own, say)."""
    yield from serving(Server(_state_dir(name), uid_slot=32, env=env))


@pytest.fixture(scope="session")
def web_server():
    # slots 8 to 31; the others: workshops 0 to 7, conftest 32 to 47, service 48, limited 50, crash 52,
    # proxy attacks 54 to 59 and its room 60 to 62
    yield from serving(Server(_state_dir("web"), uid_slot=8))


@pytest.fixture(scope="module")
def learner(web_server):
    """A browser of its own per test module, with the test lab open."""
    http = web_server.learner()
    web_server.open_lab(http)
    return http
