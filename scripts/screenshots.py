"""Screenshots of labnb's pages for docs/screenshots/, made again with one command: the lab page wide (1366x800)
after lab 2's steps with the network picture and the terminal open, the same at a phone's size (390x844), in dark
mode (the browser's colour scheme emulated), and the instructor's dashboard with two learners seated.

By default it starts a workshop server of lab 2 on a state dir of its own, as the tests do (tests/web_support.py:
real sandbox lab hosts, so as root), and removes all of it at the end. Or it uses a workshop server that runs:
--url, --code (the access code) and --operator-token; two learners then join it, named Ana and Ben.

Usage, from the repository, with the test venv (Playwright, Debian's chromium at /usr/bin/chromium):
    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--url URL --code CODE --operator-token T]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_support import CHROMIUM_ARGS, ROOT, serving  # noqa: E402
from workshop_support import workshop_server  # noqa: E402

LAB = "02-netns-veth"
STEPS = ["list", "add-ns0", "veth-pair", "add-ns1", "move", "addresses"]
WIDE = {"width": 1366, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
LONG = 120_000   # ms: a lab host starting, a step running


@contextlib.contextmanager
def own_server(uid_slot: int):
    """A workshop of lab 2 for two learners on a state dir of its own, removed afterwards."""
    server = workshop_server("screenshots", uid_slot=uid_slot, capacity=2, labs_dir=str(ROOT / "labs"),
                             workshop_labs=LAB)
    yield from serving(server)


def join(browser, url: str, code: str, name: str):
    """A learner's browser, seated, on the lab's page with its lab host ready."""
    page = browser.new_context(viewport=WIDE).new_page()
    page.set_default_timeout(LONG)
    page.goto(f"{url}/join?code={code}")
    page.fill("input[name=name]", name)
    page.click(".join-form button[type=submit]")
    if f"/labs/{LAB}" not in page.url:
        page.goto(f"{url}/labs/{LAB}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    return page


def lab_page_in_use(page, first: bool) -> None:
    """The terminal and the network picture open; the ``first`` time, lab 2's steps run before and a command is
    typed into the terminal (a page opened later shows its output again: the server keeps it)."""
    for step in STEPS if first else []:
        cell = page.locator(f".cell[data-step='{step}']")
        cell.locator("button.run").click()
        expect(cell).to_have_attribute("data-status", "done", timeout=LONG)
    # clicked as a script does (what covers a control at some size is for the tests to find, not to shoot);
    # the terminal first, so that the picture is drawn in the panel's final size
    if page.locator(".terminal-body").is_hidden():
        page.locator(".terminal-toggle").dispatch_event("click")
    rows = page.locator("#terminal .xterm-rows")
    expect(rows).to_contain_text("#", timeout=LONG)   # the shell's prompt: it takes what is typed
    if first:
        page.locator("#terminal .xterm-helper-textarea").focus()
        page.keyboard.type("ip -br addr\n")
    expect(rows).to_contain_text("docker0")
    if page.locator("#network").is_hidden():
        page.locator(".network-toggle").dispatch_event("click")
    page.locator("#network .network-view[data-view=picture]").dispatch_event("click")
    expect(page.locator("#network .network-screen canvas").first).to_be_attached()
    expect(page.locator("#network .network-info")).to_contain_text("namespaces")
    page.locator(f"#step-{STEPS[-1]}").scroll_into_view_if_needed()


def same_learner(browser, page, **options):
    """The learner's page again, in a new browser context with their cookie (another size, a colour scheme)."""
    context = browser.new_context(**options)
    context.add_cookies(page.context.cookies())
    other = context.new_page()
    other.set_default_timeout(LONG)
    other.goto(page.url)
    expect(other.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    return other


def settle(page) -> None:
    """The picture fitted to its panel as it is now (a redraw after the terminal opened may have been laid out
    before), then two animation frames: a still page."""
    fit = page.locator("#network .network-fit")
    if fit.is_visible():
        fit.dispatch_event("click")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def shoot(url: str, code: str, operator_token: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []

    def save(page, name: str) -> None:
        settle(page)
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        made.append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            ana = join(browser, url, code, "Ana")
            ben = join(browser, url, code, "Ben")
            ben.locator(f".cell[data-step='{STEPS[0]}'] button.run").click()
            lab_page_in_use(ana, first=True)
            save(ana, "lab-wide")
            for name, options in (("lab-phone", PHONE), ("lab-dark", {"viewport": WIDE, "color_scheme": "dark"})):
                page = same_learner(browser, ana, **options)   # a new context: its panels open again
                lab_page_in_use(page, first=False)
                save(page, name)
            teacher = browser.new_context(viewport=WIDE).new_page()
            teacher.goto(f"{url}/workshop?token={operator_token}")
            expect(teacher.locator("#grid tbody tr[data-place=seated]")).to_have_count(2)
            save(teacher, "dashboard")
        finally:
            browser.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--url", help="a workshop server that runs (else one is started)")
    parser.add_argument("--code", help="its access code (with --url)")
    parser.add_argument("--operator-token", help="its operator token (with --url)")
    parser.add_argument("--uid-slot", type=int, default=0, help="the started server's first lab host uid slot")
    args = parser.parse_args()
    if args.url:
        if not (args.code and args.operator_token):
            parser.error("--url needs --code and --operator-token")
        made = shoot(args.url.rstrip("/"), args.code, args.operator_token, args.out)
    else:
        with own_server(args.uid_slot) as server:
            made = shoot(server.url, server.env["LABNB_ACCESS_CODE"], server.operator_token, args.out)
    for path in made:
        print(path)


if __name__ == "__main__":
    main()
