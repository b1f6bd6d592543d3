"""What a learner's page and tab say while their lab host starts, never gets ready, or a lab's setup runs
or fails (webapp/learners/registry.py), in process on the fakes: a slow lab host (SlowLabHost), one held
until the test lets it get ready, one that never gets ready (NeverLabHost), and labs whose setup waits or
fails. The slow tier's
tests/test_web_protocol.py tells the setups' part against the real server."""
from __future__ import annotations

import html
import os
import re
import threading

import pytest

import fakes
from apps import FAILING_SETUP, LAB, SLOW_SETUP, TOKEN, WAIT, Tab, browser, csrf, host_state, lab_host, ready, serving
from webapp.labhost import backends
from webapp.labhost.base import LabHostError

from web_support import wait_for


class HeldLabHost(fakes.FakeLabHost):
    """Gets ready when the test lets it (``go``): a lab host still starting for as long as a test needs."""

    go = threading.Event()

    def wait_ready(self, timeout: float) -> None:
        if not self.go.wait(timeout):
            raise LabHostError(f"lab host {self.id} did not get ready within {timeout:g} s")


@pytest.fixture
def held():
    """A backend of the test's own, registered the way any is: one class and one registry entry."""
    HeldLabHost.go.clear()
    backends.register(backends.Backend("fake-held", HeldLabHost, pooled=True, recorded=False, isolated=False))
    yield HeldLabHost.go
    HeldLabHost.go.set()
    backends.unregister("fake-held")


def test_a_slow_lab_host_shows_as_starting_then_ready(tmp_path):
    with serving(tmp_path, backend="fake-slow") as app:
        http = browser(app)
        page = http.get(f"/labs/{LAB}").text   # the lab host is claimed in the background
        assert 'data-state="starting"' in page and "Starting your lab host" in page
        ready(http)
        assert isinstance(lab_host(app, http), fakes.SlowLabHost)
        tab = Tab(app, http)
        try:
            assert tab.wait_end(tab.run("echo"))["status"] == "done"
        finally:
            tab.close()


def test_a_run_is_refused_while_the_lab_host_starts(tmp_path, held):
    with serving(tmp_path, backend="fake-held", ready_timeout=WAIT) as app:
        http = browser(app)
        assert host_state(http) == "starting"
        tab = Tab(app, http)
        try:
            reply = tab.call("run", {"lab": LAB, "step": "echo"})
            assert reply == {"error": "run: your lab host is still starting; try again in a moment"}
            assert tab.call("shell_open", {"lab": LAB}) == {
                "error": "shell_open: your lab host is still starting; try again in a moment"}
            assert host_state(http) == "starting"
            held.set()
            ready(http)
            assert tab.wait_end(tab.run("echo"))["status"] == "done"
        finally:
            tab.close()


def test_a_lab_host_that_never_gets_ready_says_why(tmp_path):
    with serving(tmp_path, backend="fake-never", ready_timeout=0.2) as app:
        http = browser(app)
        assert host_state(http) == "starting"
        wait_for(lambda: host_state(http) == "failed", WAIT, what="the lab host to fail")
        assert "did not get ready within 0.2 s" in http.get(f"/labs/{LAB}/host").text
        tab = Tab(app, http)
        try:
            reply = tab.call("run", {"lab": LAB, "step": "echo"})
            assert reply["error"].startswith("run: your lab host could not start: lab host fake-"), reply
            assert "did not get ready within 0.2 s" in reply["error"]
        finally:
            tab.close()


def test_a_labs_setup_runs_while_the_page_answers(tmp_path):
    with serving(tmp_path) as app:
        http = browser(app)
        ready(http)   # the lab host is ready; the slow lab's setup has not run on it
        assert "Setting up this lab" in http.get(f"/labs/{SLOW_SETUP}").text
        tab = Tab(app, http, lab=SLOW_SETUP)
        try:
            reply = tab.call("run", {"lab": SLOW_SETUP, "step": "setup-ran"})
            assert reply == {"error": "run: the lab's setup is still running; try again in a moment"}
            for _ in range(3):   # the page's health check is not held up by the setup
                assert host_state(http, SLOW_SETUP) == "starting"
            open(os.path.join(lab_host(app, http).home, "go"), "w").close()
            ready(http, SLOW_SETUP)
            run = tab.run("setup-ran", SLOW_SETUP)
            assert tab.wait_end(run)["status"] == "done" and "set-up-ran" in tab.text(run)
        finally:
            tab.close()


def test_a_failed_setup_says_why_and_retry_gives_a_fresh_lab_host(tmp_path):
    with serving(tmp_path) as app:
        http = browser(app)
        ready(http)
        first = lab_host(app, http)
        http.get(f"/labs/{FAILING_SETUP}")
        wait_for(lambda: host_state(http, FAILING_SETUP) == "failed", WAIT, what="the setup to fail")
        failed = http.get(f"/labs/{FAILING_SETUP}/host").text
        assert "This lab could not be set up" in failed and "exit code 3" in failed
        assert "the network this lab needs is not there" in failed
        tab = Tab(app, http, lab=FAILING_SETUP)
        try:
            assert "setup failed" in tab.call("run", {"lab": FAILING_SETUP, "step": "never"})["error"]
        finally:
            tab.close()
        assert host_state(http, LAB) == "ready"   # only this lab failed
        r = http.post(f"/labs/{FAILING_SETUP}/host/retry", headers=csrf(http))
        assert r.status_code == 200 and 'data-state="starting"' in r.text
        wait_for(lambda: host_state(http, FAILING_SETUP) == "failed", WAIT, what="the setup to fail again")
        ready(http)
        fresh = re.search(r"<code>([^<]+)</code>", http.get(f"/labs/{LAB}/host").text).group(1)
        assert fresh == lab_host(app, http).id != first.id and first.destroyed


def test_the_learners_of_one_address_hold_at_most_their_share_of_lab_hosts(tmp_path):
    with serving(tmp_path, lab_hosts_per_address=1) as app:
        ready(browser(app))
        second = browser(app)
        wait_for(lambda: host_state(second) == "failed", WAIT, what="the second lab host to be refused")
        assert "LABNB_LAB_HOSTS_PER_ADDRESS=1" in html.unescape(second.get(f"/labs/{LAB}/host").text)
        elsewhere = app.test_client()
        elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.8"
        elsewhere.get(f"/?token={TOKEN}")
        ready(elsewhere)
