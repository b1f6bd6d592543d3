"""The pages where issue 29's pieces meet, in a real browser, as a learner and an instructor use them: the
stylesheet's sections parse whole, dark colours come from the theme, a step chosen from the step list lands
just below the sticky top, a lab's wide table scrolls from the keyboard, the dashboard scrolls no phone
sideways, and after a reset the steps' marks say what the progress box says."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web_support import TEST_LAB, serving
from workshop_support import CODE, browser, end_every_place, new_page, workshop_server

pytestmark = pytest.mark.slow

LONG = 120_000   # ms: a lab host starting while other tests run
expect.set_options(timeout=30_000)
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
LAPTOP = {"viewport": {"width": 1366, "height": 800}}
TABLE_LAB = "01-network-modes"   # its intro has a table wider than a phone

__all__ = ["browser"]   # a fixture


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("ui-together", uid_slot=0, capacity=2,
                                       workshop_labs=f"{TEST_LAB},{TABLE_LAB}"))


@pytest.fixture(scope="module")
def instructor(room):
    return room.operator()


@pytest.fixture(autouse=True)
def empty_room(room, instructor):
    yield
    end_every_place(room, instructor)


def joined(browser, room, errors: list, name: str, **context):
    """A learner's browser, joined (the workshop has two labs: they land on the catalogue), on the test lab's
    page with their lab host ready."""
    page = new_page(browser, errors, browser.new_context(**context))
    page.goto(f"{room.url}/join?code={CODE}")
    page.fill("input[name=name]", name)
    page.click(".join-form button[type=submit]")
    expect(page.locator(".lab-card")).to_have_count(2)
    page.goto(f"{room.url}/labs/{TEST_LAB}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    return page


def top_bottom(page) -> float:
    return page.evaluate("document.querySelector('.page-top').getBoundingClientRect().bottom")


def contrast(page, selector: str) -> float:
    """The contrast ratio (WCAG) of an element's text colour on its background colour."""
    def luminance(rgb: str) -> float:
        def channel(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        r, g, b = (channel(int(x) / 255) for x in re.findall(r"\d+", rgb)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    fg, bg = page.eval_on_selector(selector, "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_section_of_the_stylesheet_is_read(room, browser):
    """A stray brace in one helper's section made the browser drop the next rule (the summary's)."""
    page = new_page(browser, [])
    page.goto(f"{room.url}/join?code={CODE}")
    selectors = page.evaluate("""[...document.styleSheets].filter(s => (s.href || '').includes('labnb.css'))
        .flatMap(s => [...s.cssRules]).map(r => r.selectorText || '')""")
    assert ".lab-summary" in selectors, selectors[-40:]   # (".lab-summary .summary-next", after it, was kept)


def test_dark_switches_and_panels_keep_their_contrast(room, browser):
    """The network panel's pressed view and the terminal's pressed screen reader switch, in dark colours: white on
    the dark theme's light accent was 2.1:1."""
    errors: list = []
    page = joined(browser, room, errors, "Dana", color_scheme="dark", **LAPTOP)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.locator(".network-toggle").click()
    for view in ("picture", "text"):
        page.locator(f"#network .network-view[data-view={view}]").click()
        assert contrast(page, f"#network .network-view[data-view={view}]") >= 4.5
    page.locator(".terminal-toggle").click()
    reader = page.locator("#terminal .terminal-reader")
    reader.click()
    expect(reader).to_have_attribute("aria-pressed", "true")
    assert contrast(page, "#terminal .terminal-reader") >= 4.5
    # its pressed colours are the terminal's, light or dark
    assert page.eval_on_selector("#terminal .terminal-reader", "e => getComputedStyle(e).backgroundColor") \
        == page.eval_on_selector("#terminal .terminal-body", "e => getComputedStyle(e).backgroundColor")
    reader.click()
    assert not errors, errors


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_a_step_chosen_from_the_list_lands_just_below_the_top(room, browser, size):
    """The layout's scroll padding and a step's own scroll margin both counted: a chosen step landed twice the
    sticky top's height down (on a phone, 200 px below it)."""
    errors: list = []
    page = joined(browser, room, errors, f"Lea-{size}", **(PHONE if size == "phone" else LAPTOP))
    details = page.locator(".steps-nav details")
    if size == "phone":
        expect(details).not_to_have_attribute("open", "")
        page.locator(".steps-nav summary").click()
    page.locator(".steps-nav li[data-step='failing'] a").click()
    expect(page.locator("#step-failing")).to_be_focused()
    if size == "phone":
        expect(details).not_to_have_attribute("open", "")   # the menu closed after the pick
    top = top_bottom(page)
    step = page.locator("#step-failing").bounding_box()["y"]
    assert top <= step <= top + 24, (top, step)
    assert not errors, errors


def test_a_wide_table_in_a_lab_scrolls_from_the_keyboard(room, browser):
    """The layout makes a lab's table scroll inside itself on a narrow screen: it takes the focus then (axe's
    scrollable-region-focusable), and keeps its role. 280 px: a small phone, or a larger one zoomed (this
    table wraps its words down to about 300 px)."""
    errors: list = []
    page = new_page(browser, errors, browser.new_context(**{**PHONE, "viewport": {"width": 280, "height": 653}}))
    page.goto(f"{room.url}/join?code={CODE}")
    page.fill("input[name=name]", "Tom")
    page.click(".join-form button[type=submit]")
    expect(page.locator(".lab-card")).to_have_count(2)
    page.goto(f"{room.url}/labs/{TABLE_LAB}")
    table = page.locator("main .intro table").first
    expect(table).to_have_attribute("tabindex", "0")
    assert table.evaluate("t => t.scrollWidth > t.clientWidth")
    expect(table).to_have_attribute("aria-label", re.compile("Table, wider than the page"))
    assert table.get_attribute("role") is None
    assert page.evaluate("[document.documentElement.scrollWidth, innerWidth]") == [280, 280]
    assert not errors, errors


def test_the_dashboard_scrolls_no_phone_sideways(room, browser):
    """The grid's screen-reader words (absolute) took the page as their containing block: at 390 px the page was
    906 px wide."""
    learner = joined(browser, room, [], "Ada", **LAPTOP)
    errors: list = []
    page = new_page(browser, errors, browser.new_context(**PHONE))
    page.goto(f"{room.url}/workshop?token={room.operator_token}")
    expect(page.locator("#grid tbody tr[data-place=seated]")).to_have_count(1)
    grid = page.locator(".grid-wrap")
    assert grid.evaluate("g => g.scrollWidth > g.clientWidth")   # the grid itself scrolls
    assert page.evaluate("[document.documentElement.scrollWidth, innerWidth]") == [390, 390]
    learner.context.close()
    assert not errors, errors


def test_after_a_reset_the_steps_marks_say_what_the_progress_says(room, browser):
    """A step whose latest run was on an earlier lab host: its heading's mark is muted as its mark in the step
    list, beside "0 of N steps passed on this lab host"; run again, it is green again."""
    errors: list = []
    page = joined(browser, room, errors, "Rae", **LAPTOP)
    page.locator(".cell[data-step='echo'] button.run").click()
    expect(page.locator("#step-echo")).to_have_attribute("data-state", "passed", timeout=LONG)
    green = page.eval_on_selector("#step-echo .step-mark .mark", "e => getComputedStyle(e).color")
    host = page.locator("#host").get_attribute("data-host")
    page.locator("#host button", has_text="Reset").click()
    expect(page.locator("#host")).not_to_have_attribute("data-host", host, timeout=LONG)
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    expect(page.locator("#progress")).to_contain_text("0 of", timeout=LONG)
    expect(page.locator("#progress")).to_contain_text("on this lab host")
    expect(page.locator(".steps-nav li[data-step='echo']")).to_have_class(re.compile("earlier"))
    expect(page.locator("#step-echo")).to_have_class(re.compile("earlier"))
    muted = page.eval_on_selector(".steps-nav li[data-step='echo'] .mark", "e => getComputedStyle(e).color")
    assert page.eval_on_selector("#step-echo .step-mark .mark", "e => getComputedStyle(e).color") == muted != green
    page.locator(".cell[data-step='echo'] button.run").click()
    expect(page.locator("#step-echo")).not_to_have_class(re.compile("earlier"), timeout=LONG)
    expect(page.locator("#progress")).to_contain_text("1 of", timeout=LONG)
    assert page.eval_on_selector("#step-echo .step-mark .mark", "e => getComputedStyle(e).color") == green
    assert not errors, errors


def test_form_fields_take_the_themes_colours(room, browser):
    """The join page's fields in dark colours: the theme's surface and text, not the browser's own dark grey."""
    page = new_page(browser, [], browser.new_context(color_scheme="dark", **PHONE))
    page.goto(f"{room.url}/join?code={CODE}")
    theme = page.evaluate("""['--surface', '--fg'].map(p => {
        const probe = document.createElement('i'); probe.style.color = `var(${p})`; document.body.append(probe);
        const c = getComputedStyle(probe).color; probe.remove(); return c; })""")
    field = page.eval_on_selector("input[name=name]", "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    assert field == theme, (field, theme)
