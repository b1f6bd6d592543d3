"""The notebook in a real browser (Debian's chromium driven by Playwright)
against the real server: catalogue, lab page, live output, reload mid-run,
stop, checks, colours without markup injection, export, the terminal panel,
lab host reset."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from web_support import CHROMIUM_ARGS, TEST_LAB

LONG = 120_000   # ms: a lab host starting while other tests run
# Playwright's expect waits 5 s by default: a new shell and a second of
# sleeps took longer than that in an emulated Debian 13 VM
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def page(web_server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.script_errors = []
        page.on("pageerror", lambda error: page.script_errors.append(str(error)))
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def no_script_errors(page):
    """No test leaves an uncaught error in the page's scripts."""
    yield
    errors, page.script_errors[:] = list(page.script_errors), []
    assert not errors, errors


def open_lab(page, web_server, lab: str):
    page.goto(f"{web_server.url}/labs/{lab}?token={web_server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)


def cell(page, step: str):
    return page.locator(f".cell[data-step='{step}']")


def run_step(page, web_server, step: str):
    """Open the test lab, press Run on ``step``; its cell."""
    open_lab(page, web_server, TEST_LAB)
    c = cell(page, step)
    c.locator("button.run").click()
    return c


@pytest.mark.slow
def test_catalogue_and_the_first_step_of_lab_1(page, web_server):
    page.goto(f"{web_server.url}/?token={web_server.token}")
    assert "token" not in page.url
    cards = page.locator(".lab-card")
    expect(cards).to_have_count(6)   # tests/fixtures/labs
    test_card = page.locator(".lab-card", has_text="Web test lab")
    expect(test_card).to_contain_text("about 5 min")
    expect(test_card).to_contain_text("0 of 10 passed")
    page.locator(".lab-card h2 a").first.click()
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    first = page.locator(".cell").first
    first.locator("button.run").click()
    expect(first.locator(".output")).to_contain_text("bridge", timeout=60_000)
    expect(first).to_have_attribute("data-status", "done", timeout=60_000)
    expect(first.locator(".checks")).to_contain_text("passed")
    expect(page.locator("#progress")).to_contain_text(re.compile(r"1 of \d+ steps passed"))
    # commands can be typed into the terminal, but not those of a named terminal (a container's shell)
    assert page.locator(".command:not(.in-terminal) button.to-terminal").count() > 0
    assert page.locator(".command.in-terminal").count() > 0
    assert page.locator(".command.in-terminal button.to-terminal").count() == 0


@pytest.mark.slow
def test_live_output_survives_a_reload(page, web_server):
    count = run_step(page, web_server, "count")
    expect(count.locator(".output")).to_contain_text("line 3")
    expect(count).to_have_attribute("data-status", "running")   # the output came while it ran
    page.reload()
    count = cell(page, "count")
    expect(count.locator(".output")).to_contain_text("line 30", timeout=60_000)
    expect(count).to_have_attribute("data-status", "done")
    text = count.locator(".output").inner_text()
    assert [l for l in text.splitlines() if l.startswith("line ")] == [f"line {i}" for i in range(1, 31)]
    # drawn in many blocks, yet the text (as copied) has no line breaks of its own
    assert "\n".join(f"line {i}" for i in range(1, 31)) in text
    assert count.locator(".output pre > span").count() > 1


@pytest.mark.slow
def test_characters_split_between_chunks(page, web_server):
    """Output is sent as raw bytes; the page completes a character whose bytes
    came in two chunks, live and again from the store after a reload."""
    utf8 = run_step(page, web_server, "utf8")
    expect(utf8).to_have_attribute("data-status", "done", timeout=30_000)
    expect(utf8.locator(".output")).to_contain_text("café ✓ done")
    page.reload()
    expect(cell(page, "utf8").locator(".output")).to_contain_text("café ✓ done")
    assert "\ufffd" not in cell(page, "utf8").locator(".output").inner_text()


@pytest.mark.slow
def test_shift_enter_runs_the_step_and_moves_on(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    echo = cell(page, "echo")
    before = echo.locator(".cell-bar a.log").get_attribute("href")
    page.locator("#step-echo h2").click()          # a click in a step's text focuses the step
    page.keyboard.press("Shift+Enter")
    expect(echo.locator(".cell-bar a.log")).not_to_have_attribute("href", before or "")   # a new run
    expect(echo).to_have_attribute("data-status", "done", timeout=30_000)
    expect(echo.locator(".output")).to_contain_text("x")
    expect(page.locator("#step-big")).to_be_focused()


@pytest.mark.slow
def test_colours_without_markup_injection(page, web_server):
    colours = run_step(page, web_server, "colours")
    expect(colours.locator(".output .ansi-red-fg")).to_have_text("red")
    expect(colours.locator(".output")).to_contain_text('<img src=x onerror="window.pwned=1"> <b>not bold</b>')
    assert colours.locator(".output img, .output b").count() == 0
    assert page.evaluate("window.pwned") is None


@pytest.mark.slow
def test_stop_an_endless_ping(page, web_server):
    ping = run_step(page, web_server, "ping")
    expect(ping.locator(".output")).to_contain_text("bytes from 127.0.0.1")
    ping.locator("button.stop").click()
    expect(ping).to_have_attribute("data-status", "done")
    expect(ping.locator(".output")).to_contain_text("[stopped]")
    expect(ping.locator("button.run")).to_be_enabled()


@pytest.mark.slow
def test_a_colour_carries_across_output_not_drawn(page, web_server):
    """A colour set 2 MB into a long output holds to its end: through the
    tail's blocks, and through parts dropped before they were drawn (whether
    the page drops any depends on how fast it draws)."""
    red = run_step(page, web_server, "red")
    expect(red).to_have_attribute("data-status", "done", timeout=60_000)
    expect(red.locator(".output .tail .ansi-red-fg", has_text="still-red")).to_have_count(1)
    expect(red.locator(".output .tail")).to_contain_text("plain")
    assert red.locator(".output .tail .ansi-red-fg", has_text="plain").count() == 0


@pytest.mark.slow
def test_failed_check_shows_its_hint(page, web_server):
    failing = run_step(page, web_server, "failing")
    expect(failing).to_have_attribute("data-status", "failed")
    expect(failing.locator(".checks li.fail")).to_contain_text("The file /nonexistent must exist")


@pytest.mark.slow
def test_long_output_shows_head_and_tail_with_the_log(page, web_server):
    big = run_step(page, web_server, "big")
    page.evaluate("window.scrollTo(0, 0)")     # the cell out of sight while its output comes
    expect(big).to_have_attribute("data-status", "done", timeout=60_000)
    expect(big.locator(".omitted")).to_be_visible()
    expect(big.locator(".output .tail")).to_contain_text("THE-END")
    # the cell follows the output to its end, although blocks out of sight
    # were not laid out (their height was a guess) until it came into sight
    big.scroll_into_view_if_needed()
    page.wait_for_timeout(500)   # a few frames: what came into sight is laid out
    assert big.locator(".output").evaluate(
        "o => Math.abs(o.querySelector('.tail').getBoundingClientRect().bottom - o.getBoundingClientRect().bottom) < 16")
    assert big.locator(".output .settled").count() > 0
    href = big.locator(".omitted a.log").get_attribute("href")
    log = page.request.get(web_server.url + href)
    assert log.ok and log.body().endswith(b"THE-END\r\n") and len(log.body()) > 5_000_000


@pytest.mark.slow
def test_export(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    with page.expect_download() as download:
        page.locator("a.export").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.startswith("# Web test lab")
    assert "line 30" in text
    assert "The file /nonexistent must exist" in text


@pytest.mark.slow
def test_terminal_panel_types_into_a_shell_and_survives_a_reload(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    panel = page.locator("#terminal")
    panel.locator("button.terminal-toggle").click()
    expect(panel).to_have_attribute("data-open", "true")
    rows = panel.locator(".xterm-rows")
    expect(rows).to_contain_text("]#")                   # the prompt: [root@... ~]#
    # keys are separate events: a long line shows that they reach the shell in order
    page.keyboard.type("echo term-$((6*7)) --rm-abcdefghijklmnopqrstuvwxyz-0123456789")
    page.keyboard.press("Enter")
    expect(rows).to_contain_text("term-42 --rm-abcdefghijklmnopqrstuvwxyz-0123456789")
    # output comes as raw bytes: xterm completes a character whose bytes came apart
    page.keyboard.type("printf 'caf\\303'; sleep 0.5; printf '\\251-ok\\n'")
    page.keyboard.press("Enter")
    expect(rows).to_contain_text("café-ok")
    page.reload()                                        # the panel opens again and shows the backlog
    expect(page.locator("#terminal")).to_have_attribute("data-open", "true")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text("term-42")
    page.locator("#terminal button.terminal-toggle").click()
    expect(page.locator("#terminal .terminal-body")).to_be_hidden()


@pytest.mark.slow
def test_a_command_is_typed_into_the_terminal_with_a_click(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    page.locator("#step-utf8 .command button.to-terminal").click()
    panel = page.locator("#terminal")
    try:
        expect(panel).to_have_attribute("data-open", "true")
        expect(panel.locator(".xterm-rows")).to_contain_text("café ✓ done")
    finally:   # an open panel would cover the next test's buttons
        page.locator("#terminal button.terminal-toggle").click()


@pytest.mark.slow
def test_reset_lab_host_after_confirmation(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    before = page.locator("#host code").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#host button.reset").click()
    expect(page.locator("#host code")).not_to_have_text(before, timeout=LONG)
    expect(page.locator("#host")).to_have_attribute("data-state", "ready")
    echo = cell(page, "echo")
    echo.locator("button.run").click()
    expect(echo).to_have_attribute("data-status", "done")
