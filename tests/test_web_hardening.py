"""Attacks of one client on the server and on other learners (issue 8): a
flood of WebSockets, learners minted by dropping the cookie, limits that do
not fit the machine, pages for the operator, and what the browser is told
to refuse (CSP, framing, sniffing, live links in output)."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess

import pytest
import requests
import websocket
from playwright.sync_api import expect, sync_playwright

from web_support import CHROMIUM_ARGS, LABNB, ROOT, TEST_LAB, Server, _state_dir, free_port, serving, wait_for
from webapp.config import Settings
from webapp.labhost import records
from webapp.errors import ConfigError
from webapp.guard.limits import NewLearners, Refusals, RunStarts, fit_memory, mem_total_mb

HARDENING_LAB = "91-hardening"
LINK = "http://127.0.0.1:9/away"   # never followed; nothing listens there


def raw_socket(server: Server, http: requests.Session) -> websocket.WebSocket:
    """An Engine.IO WebSocket as that learner, held open without a Socket.IO client."""
    return websocket.create_connection(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
                                       header=[f"Cookie: {server.cookie(http)}"], timeout=10,
                                       suppress_origin=True)


def open_sockets(server: Server, http: requests.Session, n: int) -> tuple[list, list[int]]:
    """Try ``n`` WebSockets; those held open and the HTTP statuses of those refused."""
    held, refused = [], []
    for _ in range(n):
        try:
            held.append(raw_socket(server, http))
        except websocket.WebSocketBadStatusException as e:
            refused.append(e.status_code)
    return held, refused


def hold(server: Server, http: requests.Session, n: int) -> list:
    """Exactly ``n`` WebSockets of that learner held, the next refused with
    429 (tried again while the server lets go of sockets closed just before)."""
    def tried():
        held, refused = open_sockets(server, http, n + 1)
        if len(held) == n and refused == [429]:
            return held
        for ws in held:
            ws.close()
        return None
    return wait_for(tried, 30, 0.2, f"{n} WebSockets held and one more refused")


def test_headers_tell_the_browser_to_refuse_other_pages(web_server):
    http = web_server.learner()
    for r in (http.get(f"{web_server.url}/labs/{TEST_LAB}", timeout=10),
              http.get(f"{web_server.url}/static/labnb.js", timeout=10),
              requests.get(web_server.url + "/", timeout=10)):          # the refusal too
        csp = r.headers["Content-Security-Policy"]
        assert f"script-src {web_server.url}/static/;" in csp and "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"


def test_a_block_shows_its_name_as_text(web_server):
    page = web_server.learner().get(f"{web_server.url}/labs/{TEST_LAB}", timeout=10).text
    assert '<span class="block-name">&lt;b&gt;colours&lt;/b&gt; &amp; markup</span>' in page


# -- a server of its own, with small limits ----------------------------------
@pytest.fixture(scope="module")
def limited():
    """Sockets: 8 per learner (the default), 12 in all; 4 new learners from
    127.0.0.1; the lab hosts of two learners; 8 runs started a minute per learner."""
    yield from serving(Server(_state_dir("limited"), uid_slot=50, pool_size=0, env={
        "LABNB_LABS_DIR": str(ROOT / "tests" / "fixtures" / "hardening"),
        "LABNB_MAX_LAB_HOSTS": "2",
        "LABNB_NEW_LEARNERS_PER_ADDRESS": "4",
        "LABNB_MAX_SOCKETS": "12",
        "LABNB_RUNS_PER_MINUTE": "8",
    }))


@pytest.fixture(scope="module")
def two_learners(limited):
    """Two of the four learners that 127.0.0.1 may be: an attacker, and one
    with the lab open (the operator, who is not counted, has the other lab host)."""
    attacker, other = limited.learner(), limited.learner()
    limited.open_lab(other, HARDENING_LAB)
    return attacker, other


@pytest.mark.slow
def test_300_websockets_of_one_learner_leave_the_others_served(limited, two_learners):
    attacker, other = two_learners
    outputs = []
    tab = limited.socket(other)
    tab.on("output", lambda msg: outputs.append(msg["seq"]))   # a ping's few bytes need no acknowledging
    run = tab.call("run", {"lab": HARDENING_LAB, "step": "ping"}, timeout=30)["run"]
    held = []
    try:
        wait_for(lambda: len(outputs) >= 2, 60, what="the ping to stream")
        held = hold(limited, attacker, 8)                   # LABNB_MAX_SOCKETS_PER_LEARNER's default, and a 9th
        more, refused = open_sockets(limited, attacker, 291)
        assert not more and refused == [429] * 291
        # the other learner's page loads and their run goes on streaming
        assert other.get(f"{limited.url}/labs/{HARDENING_LAB}", timeout=10).status_code == 200
        seen = len(outputs)
        wait_for(lambda: len(outputs) >= seen + 2, 30, what="the ping to stream on")
        # and a new tab of theirs connects
        limited.socket(other).disconnect()
    finally:
        for ws in held:
            ws.close()
        tab.call("stop", {"run": run}, timeout=30)
        tab.disconnect()
    log = limited.log.read_text()
    assert re.search(r"refused a WebSocket from 127\.0\.0\.1 \(learner \w{8}\): 8 WebSockets are open of this "
                     r"learner, the most \(LABNB_MAX_SOCKETS_PER_LEARNER\)", log), log[-2000:]


def test_websockets_are_counted_in_all_and_unauthenticated_ones_refused(limited, two_learners):
    a, b = two_learners
    held = hold(limited, a, 8)                              # the most of one learner
    try:
        held += hold(limited, b, 4)                         # the most in all
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            raw_socket(limited, requests.Session())         # no cookie: refused before it opens
        assert refused.value.status_code == 403
    finally:
        for ws in held:
            ws.close()
    log = limited.log.read_text()
    assert "12 WebSockets are open in all, the most (LABNB_MAX_SOCKETS)" in log
    assert "refused a WebSocket from 127.0.0.1: no valid token" in log


def test_dropping_the_cookie_cannot_mint_more_learners(limited, two_learners):
    url = f"{limited.url}/?token={limited.token}"
    tries = [requests.get(url, timeout=10, allow_redirects=False) for _ in range(6)]
    assert [r.status_code for r in tries] == [303, 303, 429, 429, 429, 429]
    assert "LABNB_NEW_LEARNERS_PER_ADDRESS" in tries[-1].text
    assert not tries[-1].cookies
    # a learner who joined goes on, with the token or without
    a, _ = two_learners
    assert a.get(url, timeout=10).status_code == 200
    # the operator is not counted
    assert limited.operator().get(limited.url + "/lab-hosts", timeout=10).status_code == 200
    assert "refused a new learner from 127.0.0.1: 4 new learners joined from 127.0.0.1" in limited.log.read_text()


def test_a_learner_starting_runs_in_a_loop_is_held_to_the_rate(limited, two_learners):
    """Start and stop, as fast as the server answers: past LABNB_RUNS_PER_MINUTE the starts are refused,
    said why, and logged; nothing was started for them."""
    _, other = two_learners
    tab = limited.socket(other)

    def idle():   # no run of the learner's goes on (of an earlier test's, or the last one here)
        def ended() -> bool:
            running = tab.call("open", {"lab": HARDENING_LAB}, timeout=10)["running"]
            for r in running:
                tab.call("stop", {"run": r["run"]}, timeout=10)
            return not running
        wait_for(ended, 30, every=0.5, what="the learner's runs to end")

    started, refusal = 0, None
    try:
        for _ in range(20):
            idle()
            reply = tab.call("run", {"lab": HARDENING_LAB, "step": "ping"}, timeout=30)
            if "error" in reply:
                refusal = reply["error"]
                assert not tab.call("open", {"lab": HARDENING_LAB}, timeout=10)["running"]   # nothing started
                break
            started += 1
            tab.call("stop", {"run": reply["run"]}, timeout=30)
        idle()
    finally:
        tab.disconnect()
    assert refusal is not None and "LABNB_RUNS_PER_MINUTE" in refusal and started <= 8, (started, refusal)
    assert re.search(r"refused a run from 127\.0\.0\.1 \(learner \w{8}\): 8 runs were started in the last "
                     r"minute, the most \(LABNB_RUNS_PER_MINUTE\)", limited.log.read_text())


def test_run_starts_are_counted_per_learner():
    starts = RunStarts(per_minute=2, refusals=Refusals())
    for _ in range(2):
        assert starts.refusal("a", "10.0.0.1") is None
        starts.count("a")
    assert "LABNB_RUNS_PER_MINUTE" in starts.refusal("a", "10.0.0.1")
    assert starts.refusal("b", "10.0.0.1") is None   # another learner behind the same address


def test_new_learners_in_all_are_counted():
    new = NewLearners(per_address=10, window=3600, total=3, refusals=Refusals())
    assert [new.take(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [None] * 3
    assert "LABNB_MAX_LEARNERS" in new.take("10.0.0.4")


@pytest.mark.slow
def test_a_link_in_output_is_not_live(limited):
    """OSC 8 hyperlinks: in a cell they are text; in the terminal they open
    only after a question naming the target. Nothing on the page breaks the CSP."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(30_000)
            console = []
            page.on("console", lambda m: console.append(m.text))
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{limited.url}/labs/{HARDENING_LAB}?token={limited.operator_token}")
            expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=120_000)
            cell = page.locator(".cell[data-step='link']")
            cell.locator("button.run").click()
            expect(cell).to_have_attribute("data-status", "done", timeout=60_000)
            output = cell.locator(".output")
            expect(output).to_contain_text("see the docs here")
            assert output.locator("pre a").count() == 0      # (the omitted-bytes note has a link of its own)
            expect(output.locator(".osc-link")).to_have_attribute("title", re.compile(re.escape(LINK)))
            before = page.url
            output.locator(".osc-link").click()
            assert page.url == before and len(context.pages) == 1

            page.locator(".terminal-toggle").click()
            expect(page.locator(".xterm-rows")).to_contain_text("]#", timeout=60_000)
            page.keyboard.type(f"printf '\\033]8;;{LINK}\\033\\\\%s%s\\033]8;;\\033\\\\\\n' linked text")
            page.keyboard.press("Enter")
            linked = page.locator(".xterm-rows span", has_text=re.compile("linkedtext"))
            expect(linked.first).to_be_visible()
            linked.first.hover()
            linked.first.click()
            wait_for(lambda: dialogs, 30, what="the question before the terminal's link opens")
            assert LINK in dialogs[0] and len(context.pages) == 1
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()


# -- limits that do not fit the machine ---------------------------------------
def _serve(env: dict) -> subprocess.CompletedProcess:
    state = _state_dir("unfit")
    try:
        return subprocess.run([LABNB, "serve", "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LABNB_STATE_DIR": state, **env})
    finally:
        subprocess.run(["rm", "-rf", state], check=True)


def test_a_reset_on_a_full_server_gets_a_fresh_lab_host(limited, two_learners):
    """After the link test the operator's browser holds one of the two lab
    hosts (LABNB_MAX_LAB_HOSTS=2) and the other learner the other: the old
    lab host makes room for the new one, instead of "all slots are taken"."""
    _, other = two_learners
    assert len(records.read_all(limited.state_dir)) == 2, "the server is not full: the test proves nothing"
    url = f"{limited.url}/labs/{HARDENING_LAB}"
    code = re.compile(r"<code>([^<]+)</code>")
    before = code.search(other.get(url + "/host", timeout=10).text).group(1)
    r = other.post(url + "/host/reset", headers={"X-CSRF-Token": limited.csrf(other, HARDENING_LAB)}, timeout=10)
    assert r.status_code == 200, r.text
    limited.open_lab(other, HARDENING_LAB)
    after = code.search(other.get(url + "/host", timeout=10).text).group(1)
    assert after != before


def test_limits_that_do_not_fit_the_memory_are_refused_at_start():
    memory = mem_total_mb()
    r = _serve({"LABNB_MAX_LAB_HOSTS": "64", "LABNB_MEMORY_MB": str(memory // 32)})
    assert r.returncode != 0
    fits = (memory - 1024) // (memory // 32)
    assert f"Set LABNB_MAX_LAB_HOSTS to at most {fits}" in r.stderr, r.stderr
    r = _serve({"LABNB_MEMORY_MB": str(memory * 2)})
    assert r.returncode != 0 and "Lower LABNB_MEMORY_MB" in r.stderr, r.stderr
    r = _serve({"LABNB_MAX_LAB_HOSTS": "2", "LABNB_POOL_SIZE": "3"})
    assert r.returncode != 0 and "Set LABNB_POOL_SIZE to at most 2" in r.stderr, r.stderr


def test_lab_hosts_not_set_are_as_many_as_fit():
    settings = Settings(max_lab_hosts=64, memory_mb=mem_total_mb() // 16, server_memory_mb=1024)
    settings = fit_memory(settings, max_lab_hosts_given=False)
    assert settings.max_lab_hosts < 16
    with pytest.raises(ConfigError, match="LABNB_MAX_LAB_HOSTS"):
        fit_memory(dataclasses.replace(settings, max_lab_hosts=64), max_lab_hosts_given=True)
