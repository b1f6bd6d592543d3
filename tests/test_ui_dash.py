"""The instructor's dashboard in Chromium at 1366x800 (issue 29, item 9): each lab's title over its steps'
columns, the learners' names and their actions in view however far the grid is scrolled, what matters of a
learner (the step they are at, the check that fails, how long idle, the time left of their place, a raised
hand), a watch that opens at the learner's step, and a broadcast box as wide as the page."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web_support import TEST_LAB, serving
from workshop_support import browser, join, join_in_browser, new_page, workshop_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
expect.set_options(timeout=30_000)
LONG = 120_000   # ms: a lab host starting while other tests run
WIDE = {"width": 1366, "height": 800}
# three labs: 35 step columns, as a real workshop has
LABS = {TEST_LAB: "Web test lab", "01-network-modes": "Docker's four network modes",
        "02-netns-veth": "Network namespaces and veth pairs"}


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("ui-dash", uid_slot=4, capacity=2, workshop_labs=",".join(LABS)))


@pytest.fixture
def errors():
    found = []
    yield found
    assert not found, found


def dashboard(room, browser, errors):
    page = new_page(browser, errors, context=browser.new_context(viewport=WIDE))
    page.goto(f"{room.url}/workshop?token={room.operator_token}")
    return page


def box(locator) -> dict:
    b = locator.bounding_box()
    assert b is not None, locator
    return b


def on_top(locator) -> bool:
    """Whether the point at the middle of what ``locator`` finds is its own, not a sticky bar's or cell's."""
    b = box(locator)
    return locator.evaluate("(e, p) => e.contains(document.elementFromPoint(p.x, p.y))",
                            {"x": b["x"] + b["width"] / 2, "y": b["y"] + b["height"] / 2})


def test_lab_titles_head_their_steps_and_names_and_actions_stay_in_view(room, browser, errors):
    join(room, "Grace")
    page = dashboard(room, browser, errors)
    row = page.locator("#grid tbody tr", has_text="Grace")
    expect(row).to_have_count(1)
    heads = page.locator("#grid thead th.lab-head")
    expect(heads).to_have_text(list(LABS.values()))
    expect(heads.first).to_have_attribute("colspan", "10")
    expect(heads.first).to_have_attribute("scope", "colgroup")
    step = page.locator("#grid thead th.step-head").first   # a number to see, its title to hear
    expect(step).to_have_attribute("title", "Web test lab: 1. Count slowly")
    expect(step.locator(".sr-only")).to_have_text("1. Count slowly")
    expect(page.locator("#grid thead th.actions")).to_have_text("Actions")
    # the Catch up menu has a label of its own, not only a title
    expect(page.get_by_label("Catch Grace up to a step")).to_have_count(1)

    wrap = page.locator(".grid-wrap")
    expect(wrap).to_have_attribute("tabindex", "0")
    expect(wrap).to_have_attribute("aria-label", re.compile("Learners"))
    wrap.focus()
    expect(wrap).to_be_focused()
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth + 500"), "the grid is expected to scroll sideways"
    for where in ("0", "w.scrollWidth / 2", "w.scrollWidth"):
        wrap.evaluate(f"w => {{ w.scrollLeft = {where}; }}")
        seen = box(wrap)
        for cell in (row.locator("td.name"), row.locator("td.actions"), page.locator("#grid thead th.name")):
            b = box(cell)
            assert seen["x"] - 1 <= b["x"] and b["x"] + b["width"] <= seen["x"] + seen["width"] + 1, (where, cell, b)
            assert on_top(cell), (where, cell)   # over what scrolls under it
    # a control with the keyboard focus keeps it when the grid is drawn again (at each push of the room's state)
    extend = row.locator("td.actions button.extend")
    extend.focus()
    extend.evaluate("b => { b.dataset.before = 'the push'; }")
    page.evaluate("""() => fetch("/workshop/broadcast", {method: "POST", body: new URLSearchParams({text: "redrawn"}),
        headers: {"X-CSRF-Token": JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]}})""")
    expect(page.locator("#current-banner .text")).to_have_text("redrawn")
    expect(row.locator("td.actions button[data-before]")).to_have_count(0)   # drawn again
    expect(extend).to_be_focused()
    expect(row.locator("td.actions button.end")).to_be_visible()
    row.locator("td.actions button.end").click()   # reachable: the place ends
    expect(page.locator("#grid tbody tr[data-place=ended]", has_text="Grace")).to_have_count(1)


def test_a_learners_row_says_what_matters_and_a_watch_opens_at_her_step(room, browser, errors):
    """Ana runs the failing step (its check fails), then Echo (it passes), and raises her hand."""
    learner, teacher = new_page(browser, errors), dashboard(room, browser, errors)
    join_in_browser(learner, room, "Ana")
    learner.goto(f"{room.url}/labs/{TEST_LAB}")
    expect(learner.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    row = teacher.locator("#grid tbody tr[data-place=seated]", has_text="Ana")
    learner.locator(".cell[data-step='failing'] button.run").click()
    expect(row.locator("td[data-step='failing']")).to_have_attribute("data-state", "failed")
    learner.locator(".cell[data-step='echo'] button.run").click()
    expect(row.locator("td[data-step='echo']")).to_have_attribute("data-state", "passed")
    learner.fill("#room input[name=message]", "stuck")
    learner.click("#room form.raise button")

    expect(row.locator("td.current")).to_have_text("Web test lab: 6. Echo")
    expect(row.locator("td.failing a")).to_have_text("Web test lab: 5. A failing check")
    expect(row.locator("td.failing .why")).to_have_text("The file /nonexistent must exist: create it with touch.")
    expect(row.locator("td.idle")).to_have_text(re.compile(r"^(\d+ s|\d+ min)$"))
    # the time left of her place (240 min), not the end a closed tab would bring ("4.0 h (gone in 10 min)")
    expect(row.locator("td.left")).to_have_text(re.compile(r"^(4 h|3 h \d+ min)$"))
    expect(row.locator("td.left .early")).to_have_count(0)
    expect(row.locator("td.name")).to_contain_text("Hand raised")

    # her name opens her notebook at the step she is at, the failed check at its step
    for link, step in ((row.locator("td.name a"), "echo"), (row.locator("td.failing a"), "failing")):
        href = link.get_attribute("href")
        assert href.endswith(f"/labs/{TEST_LAB}#step-{step}"), href
        watch = new_page(browser, errors, context=teacher.context)
        watch.goto(room.url + href)
        expect(watch.locator("h1 .watching")).to_have_text("Ana")
        expect(watch.locator(f"#step-{step} h2")).to_be_in_viewport()
        assert on_top(watch.locator(f"#step-{step} h2")), step   # not under the page's sticky bar
        expect(watch.locator("#step-count h2")).not_to_be_in_viewport()   # the first step, at the top
        watch.close()


def test_the_broadcast_box_is_as_wide_as_the_page(room, browser, errors):
    page = dashboard(room, browser, errors)
    text = page.get_by_label(re.compile("A message every learner sees"))
    expect(text).to_have_attribute("name", "text")
    assert text.evaluate("t => t.tagName") == "TEXTAREA"
    assert box(text)["width"] >= 0.9 * (1366 - 2 * 24 - 20), box(text)   # the page's width, less its margins
    text.fill("Break until 11:00, back in room 2")
    text.press("Enter")
    expect(page.locator("#current-banner .text")).to_have_text("Break until 11:00, back in room 2")
    expect(text).to_have_value("")
    page.locator("#clear-banner").click()
    expect(page.locator("#current-banner")).to_be_hidden()
