"""The accessibility audit: axe-core (carried by the axe-playwright-python package, pinned in the test lock: nothing
is downloaded) run in Debian's chromium on every page a learner or an instructor meets, in the states they meet
it in, light and dark. No violation of impact serious or critical may be left; the rest (minor, moderate) are listed in
docs/accessibility.md with the reason they stay, and printed at the end of this module (``pytest -s``)."""
from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from web_support import TEST_LAB, chromium_browser, serving
from workshop_support import CODE, join_in_browser, new_page, workshop_server

pytestmark = pytest.mark.slow

LONG = 120_000   # ms: a lab host starting while other tests run
expect.set_options(timeout=30_000)
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = {"serious", "critical"}
WIDE = {"width": 1366, "height": 800}


@pytest.fixture(scope="module")
def room():
    yield from serving(workshop_server("a11y", uid_slot=0, capacity=2))


@pytest.fixture(scope="module")
def chromium():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def rest():
    """The findings of impact minor or moderate, printed when the module ends: docs/accessibility.md's list."""
    found: dict[tuple[str, str], dict] = {}
    yield found
    print("\n\naxe findings below serious (docs/accessibility.md):")
    for (where, rule), v in sorted(found.items()):
        print(f"- {rule} ({v['impact']}) on {where}: {', '.join(v['targets'])}: {v['help']}")


@pytest.fixture(scope="module")
def errors():
    return []


@pytest.fixture(scope="module")
def learner(room, chromium, errors):
    """Ana, seated, on the test lab's page, who ran a step that passes, one that fails its check, and one in colour."""
    page = new_page(chromium, errors, chromium.new_context(viewport=WIDE))
    join_in_browser(page, room, "Ana")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    for step, status in (("echo", "done"), ("failing", "failed"), ("colours", "done")):
        page.locator(f".cell[data-step='{step}'] button.run").click()
        expect(page.locator(f".cell[data-step='{step}']")).to_have_attribute("data-status", status, timeout=LONG)
    return page


@pytest.fixture(scope="module")
def teacher(room, chromium, errors, learner):
    page = new_page(chromium, errors, chromium.new_context(viewport=WIDE))
    page.goto(f"{room.url}/workshop?token={room.operator_token}")
    expect(page.locator("#grid tbody tr[data-place=seated]")).to_have_count(1)
    return page


def audit(page, where: str, rest: dict) -> None:
    """Run axe on the page as it is; fail on any serious or critical violation, saying which rule, where, on what."""
    found = Axe().run(page, options={"runOnly": {"type": "tag", "values": TAGS}, "resultTypes": ["violations"]})
    blocking = []
    for v in found.response["violations"]:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"]]
        if v["impact"] in BLOCKING:
            summaries = sorted({node.get("failureSummary", "").replace("\n", " ") for node in v["nodes"]})
            blocking.append(f"{v['id']} ({v['impact']}): {v['help']}\n    on: {'; '.join(targets[:8])}"
                            f"{' …' if len(targets) > 8 else ''}\n    why: {' | '.join(summaries)[:600]}")
        else:
            rest[(where, v["id"])] = {"impact": v["impact"], "help": v["help"], "targets": targets[:4]}
    assert not blocking, f"axe on {where}: {len(blocking)} serious or critical violations:\n" + "\n".join(blocking)


def test_catalogue(room, learner, rest):
    learner.goto(f"{room.url}/")
    expect(learner.locator(".lab-card")).to_have_count(1)
    audit(learner, "the catalogue", rest)


def test_lab_page_with_its_panels_closed(room, learner, rest):
    learner.goto(f"{room.url}/labs/{TEST_LAB}")
    expect(learner.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    expect(learner.locator(".cell[data-step='failing'] .checks")).to_contain_text("failed")
    audit(learner, "a lab page, its panels closed", rest)


def test_lab_page_at_phone_size(room, learner, rest):
    page = learner.context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{room.url}/labs/{TEST_LAB}")
    expect(page.locator(".cell[data-step='failing'] .checks")).to_contain_text("failed")
    audit(page, "a lab page at phone size (390x844)", rest)
    page.close()


def test_lab_page_with_the_network_picture_and_its_text(learner, rest):
    learner.locator(".network-toggle").click()
    expect(learner.locator("#network .network-screen canvas").first).to_be_attached()
    audit(learner, "a lab page, the network picture open", rest)
    learner.locator("#network .network-view[data-view=text]").click()
    expect(learner.locator("#network .network-text table").first).to_be_visible()
    audit(learner, "a lab page, the network panel's text", rest)
    learner.locator(".network-toggle").click()


def test_lab_page_with_the_terminal_open(learner, rest):
    learner.locator(".terminal-toggle").click()
    expect(learner.locator("#terminal .xterm-rows")).to_contain_text("#", timeout=LONG)
    audit(learner, "a lab page, the terminal open", rest)
    learner.locator(".terminal-toggle").click()


def dark(page):
    """The page in dark colours (the system's, as static/theme.js follows it), for what the test does with it."""
    page.emulate_media(color_scheme="dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")


def test_lab_page_in_dark_colours(learner, rest):
    dark(learner)
    try:
        audit(learner, "a lab page in dark colours", rest)
        learner.locator(".network-toggle").click()
        expect(learner.locator("#network .network-view[aria-pressed=true]")).to_be_visible()
        audit(learner, "a lab page in dark colours, the network panel open", rest)
        learner.locator(".network-toggle").click()
    finally:
        learner.emulate_media(color_scheme="light")


def test_join_page(room, chromium, errors, rest):
    page = new_page(chromium, errors, chromium.new_context(viewport=WIDE))
    page.goto(f"{room.url}/join?code={CODE}")
    audit(page, "the join page", rest)
    page.context.close()


def test_dashboard(teacher, rest):
    expect(teacher.locator("#grid tbody tr td.cell-state").first).to_be_attached()
    audit(teacher, "the dashboard, a learner seated", rest)


def test_dashboard_in_dark_colours(teacher, rest):
    dark(teacher)
    try:
        audit(teacher, "the dashboard in dark colours", rest)
    finally:
        teacher.emulate_media(color_scheme="light")


def test_watch_page(room, teacher, rest):
    href = teacher.locator("#grid tbody tr td.name a").first.get_attribute("href")
    watch = new_page(teacher.context.browser, [], teacher.context)
    watch.goto(room.url + href)
    expect(watch.locator(".cell[data-step='echo']")).to_have_attribute("data-status", "done")
    audit(watch, "the watch page", rest)
    watch.close()


def test_no_script_errors(errors):
    assert not errors, errors
