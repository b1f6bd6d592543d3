"""The lab page's run queue and each step's state, in a real browser (Debian's
chromium) against the real server (issue 29, items 4 and 5): Shift+Enter on
steps while one runs queues them, in order; a queued step can be taken back;
Run all stops at the first step that does not pass and says so on the steps
it dropped; Run to here; each state in words, as a mark on the step's heading,
in ``section.step[data-state]`` and told with a ``labnb-step-state`` event.

Each test is a new learner (a browser context of its own: its own lab host, no
runs), so what it finds is its own doing. The order runs took is read from
the page's ``labnb-step-state`` events, never from timing."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web_support import TEST_LAB, chromium_browser, own_server

LONG = 120_000   # ms: a lab host starting while other tests run
NETNS_LAB = "02-netns-veth"
expect.set_options(timeout=60_000)

# every labnb-step-state event the page tells, as [step, state], from its first script on
RECORD_STATES = """
window.stepStates = [];
document.addEventListener("labnb-step-state", function (e) { window.stepStates.push([e.detail.step, e.detail.state]); });
"""


@pytest.fixture(scope="module")
def web_server():
    """This module's own (a new learner per test)."""
    yield from own_server("ui-cells")


@pytest.fixture(scope="module")
def browser(web_server):
    yield from chromium_browser()


@pytest.fixture
def page(browser):
    """A new learner's tab; no test leaves an uncaught error in the page's scripts."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.add_init_script(RECORD_STATES)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def open_lab(page, web_server, lab: str = TEST_LAB):
    page.goto(f"{web_server.url}/labs/{lab}?token={web_server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)


def step(page, step_id: str):
    return page.locator(f"#step-{step_id}")


def states(page) -> list[list[str]]:
    return page.evaluate("window.stepStates")


def started(page) -> list[str]:
    """The steps whose runs started, in the order they started."""
    return [s for s, state in states(page) if state == "running"]


@pytest.mark.slow
def test_four_shift_enters_queue_four_steps_that_run_in_order(page, web_server):
    """Before, the second and third were refused ("still running; stop it first") and the focus moved past
    them. The fourth step pings until stopped, so it is still running at the end: Stop ends it (passed)."""
    open_lab(page, web_server)
    page.locator("#step-count h2").click()
    for _ in range(4):
        page.keyboard.press("Shift+Enter")
    expect(page.locator("#step-failing")).to_be_focused()   # the focus moved on each time
    expect(step(page, "ping")).to_have_attribute("data-state", "running")
    assert started(page) == ["count", "colours", "utf8", "ping"]
    for name in ("colours", "utf8", "ping"):   # each waited its turn, shown as queued
        assert [name, "queued"] in states(page)
    for name in ("count", "colours", "utf8"):
        expect(step(page, name)).to_have_attribute("data-state", "passed")
    step(page, "ping").locator("button.stop").click()
    expect(step(page, "ping")).to_have_attribute("data-state", "passed")
    expect(step(page, "failing")).to_have_attribute("data-state", "not-run")
    assert "failing" not in started(page)


@pytest.mark.slow
def test_a_queued_step_can_be_taken_back(page, web_server):
    open_lab(page, web_server)
    ping, echo = step(page, "ping"), step(page, "echo")
    ping.locator("button.run").click()
    expect(ping).to_have_attribute("data-state", "running")
    echo.locator("button.run").click()          # the endless ping runs: echo waits
    expect(echo).to_have_attribute("data-state", "queued")
    expect(echo.locator(".status")).to_have_text(re.compile("^queued"))
    expect(echo.locator(".step-mark")).to_contain_text("queued")
    unqueue = echo.locator("button.stop")
    expect(unqueue).to_have_text("Unqueue")
    unqueue.click()
    expect(echo).to_have_attribute("data-state", "not-run")
    expect(echo.locator("button.stop")).to_have_text("Stop")
    expect(echo.locator("button.stop")).to_be_disabled()
    ping.locator("button.stop").click()
    expect(ping).to_have_attribute("data-state", "passed")
    expect(ping.locator("button.run")).to_be_enabled()
    assert started(page) == ["ping"]             # echo never ran
    expect(echo).to_have_attribute("data-state", "not-run")


@pytest.mark.slow
def test_run_all_stops_at_the_first_failed_check(page, web_server):
    open_lab(page, web_server)
    page.locator("button.run-all").click()
    ping = step(page, "ping")
    expect(ping).to_have_attribute("data-state", "running")   # it runs until stopped; the rest wait
    for name in ("failing", "echo", "big", "lines"):
        expect(step(page, name)).to_have_attribute("data-state", "queued")
    ping.locator("button.stop").click()
    failing = step(page, "failing")
    expect(failing).to_have_attribute("data-state", "failed")
    expect(failing.locator(".status")).to_have_text(
        "check failed: The file /nonexistent must exist: create it with touch.")
    for name in ("echo", "big", "red", "flood", "lines"):   # dropped, and they say why
        expect(step(page, name)).to_have_attribute("data-state", "not-run")
        expect(step(page, name).locator(".problem")).to_have_text(
            "Not run: step 5 did not pass, so the queue stopped there.")
    assert started(page) == ["count", "colours", "utf8", "ping", "failing"]


@pytest.mark.slow
def test_run_to_here_and_a_step_that_fails_as_expected(page, web_server):
    """Run to here on step 3 runs steps 1 to 3; step 3's command is meant to fail (``fails``), and it did:
    before, that read "done (exit code 1)" in green."""
    open_lab(page, web_server, NETNS_LAB)
    expected = step(page, "file-exists")
    expected.locator("button.run-to").click()
    expect(expected).to_have_attribute("data-state", "failed-expected")
    expect(expected.locator(".status")).to_have_text(re.compile(r"^failed as expected \(exit code 1, \d+\.\d s\)$"))
    expect(expected.locator("h2 .step-mark")).to_contain_text("✓")
    expect(expected.locator("h2 .step-mark")).to_contain_text("failed as expected")
    for name in ("list", "add-ns0"):
        expect(step(page, name)).to_have_attribute("data-state", "passed")
    assert started(page) == ["list", "add-ns0", "file-exists"]
    expect(step(page, "exec")).to_have_attribute("data-state", "not-run")


@pytest.mark.slow
def test_each_state_in_words_and_marks_also_after_a_reload(page, web_server):
    open_lab(page, web_server)
    echo, failing, count = step(page, "echo"), step(page, "failing"), step(page, "count")
    expect(echo).to_have_attribute("data-state", "not-run")
    expect(echo.locator(".status")).to_have_text("not run")
    expect(echo.locator("h2 .step-mark")).to_have_text("○not run: ")
    echo.locator("button.run").click()
    expect(echo).to_have_attribute("data-state", "passed")
    expect(echo.locator(".status")).to_have_text(re.compile(r"^passed \(\d+\.\d s\)$"))
    expect(echo.locator("h2 .step-mark")).to_have_text("✓passed: ")
    failing.locator("button.run").click()
    expect(failing).to_have_attribute("data-state", "failed")
    # before: "failed (exit code 0, 0.1 s)"
    expect(failing.locator(".status")).to_have_text(
        "check failed: The file /nonexistent must exist: create it with touch.")
    expect(failing.locator("h2 .step-mark")).to_have_text("✗failed: ")
    count.locator("button.run").click()
    expect(count).to_have_attribute("data-state", "running")
    expect(count.locator(".status")).to_have_text("running…")
    expect(count.locator("h2 .step-mark")).to_have_text("⟳running: ")
    expect(count).to_have_attribute("data-state", "passed")

    # as the page loads, each step's state comes from its recorded run, told once per step
    page.reload()
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    told = states(page)
    steps = page.locator("section.step").evaluate_all("els => els.map(e => e.id.slice(5))")
    assert [s for s, _ in told[:len(steps)]] == steps
    assert dict(told[:len(steps)]) == {**{s: "not-run" for s in steps}, "echo": "passed", "failing": "failed",
                                       "count": "passed"}
    expect(failing.locator(".status")).to_have_text(
        "check failed: The file /nonexistent must exist: create it with touch.")
    expect(failing.locator(".checks li.fail")).to_contain_text("The file /nonexistent must exist")   # replayed
    assert dict(states(page)) == dict(told)
