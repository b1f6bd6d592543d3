"""Issue 29's new views under a hostile learner, in Debian's chromium against the real server: a display
name, a hand's message and a failing step that the learner chose reach the instructor's dashboard (the
per-learner facts: the step that fails and why, the catch-up), the watch page (its terminal note, in an
attribute) and the learner's own reset notice as text, never as markup. tests/unit/test_hostile_attacks.py
has the attacks that need no browser."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from web_support import TEST_LAB, serving
from workshop_support import browser, join_in_browser, new_page, workshop_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
expect.set_options(timeout=30_000)
LONG = 120_000   # ms: a lab host starting while other tests run
NAME = '"><img class=pwned src=x>'   # 25 characters: a display name has at most 40
MESSAGE = "</textarea><b class=pwned>help</b>"


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("ui-attacks", uid_slot=4, capacity=2))


@pytest.fixture
def errors():
    found = []
    yield found
    assert not found, found


def no_markup(page) -> None:
    expect(page.locator(".pwned")).to_have_count(0)
    assert page.evaluate("() => document.querySelectorAll('img').length") == 0


def test_a_learners_name_hand_and_failing_step_are_text_on_the_dashboard_the_watch_and_her_notice(
        room, browser, errors):
    learner = new_page(browser, errors)
    join_in_browser(learner, room, NAME)
    learner.goto(f"{room.url}/labs/{TEST_LAB}")
    expect(learner.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    learner.locator(".cell[data-step='failing'] button.run").click()
    expect(learner.locator("#step-failing")).to_have_attribute("data-state", "failed")
    learner.fill("#room input[name=message]", MESSAGE)
    learner.click("#room form.raise button")
    expect(learner.locator("#room .hand")).to_be_visible()

    teacher = new_page(browser, errors, context=browser.new_context(viewport={"width": 1366, "height": 800}))
    teacher.goto(f"{room.url}/workshop?token={room.operator_token}")
    row = teacher.locator("#grid tbody tr[data-place=seated]")
    expect(row.locator("td.name a.watch")).to_have_text(NAME)
    expect(row.locator("td.failing .why")).to_have_text("The file /nonexistent must exist: create it with touch.")
    expect(teacher.locator("body")).to_contain_text(MESSAGE)   # the hands' queue
    no_markup(teacher)

    href = row.locator("td.name a.watch").get_attribute("href")
    watch = new_page(browser, errors, context=teacher.context)
    watch.goto(room.url + href)
    expect(watch.locator("h1 .watching")).to_have_text(NAME)
    assert watch.locator(".terminal-note").get_attribute("title").startswith(NAME + "'s, read-only")
    no_markup(watch)
    watch.close()

    # the instructor's reset: her notice (and its catch-up) as text, no one else's business
    row.locator("button", has_text="Reset lab host").click()
    expect(learner.locator("#room .reset-notice")).to_be_visible(timeout=LONG)
    expect(learner.locator("#room .me")).to_have_text(NAME)
    no_markup(learner)
    no_markup(teacher)
