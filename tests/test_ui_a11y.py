"""The lab page for a screen reader and a keyboard, in Debian's chromium against the real server: one <h1>, a
step's status and checks announced while its output is a log that is not read out as it streams, blocks that
scroll sideways reachable with Tab while they scroll, and the network panel's Text view: the picture's JSON as
tables, with no Cytoscape loaded, names from the lab host as text. (axe's audit: tests/test_accessibility.py.)"""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from web_support import TEST_LAB, ShellTab, chromium_browser, own_server

pytestmark = pytest.mark.slow

LONG = 120_000
expect.set_options(timeout=60_000)
LAB_2 = "02-netns-veth"
CYTOSCAPE = re.compile(r"cytoscape[^/]*\.js")   # however it is named and loaded


@pytest.fixture(scope="module")
def web_server():
    """This module's own (a new learner per test)."""
    yield from own_server("ui-a11y")


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


@pytest.fixture
def page(browser, web_server):
    """A learner of their own, at 1366x800, whose page must end with no script error."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{web_server.url}/?token={web_server.token}")
    yield page
    context.close()
    assert not errors, errors


def open_lab(page, web_server, lab: str = TEST_LAB):
    page.goto(f"{web_server.url}/labs/{lab}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)


def run(page, step: str, status: str = "done"):
    cell = page.locator(f".cell[data-step='{step}']")
    cell.locator("button.run").click()
    expect(cell).to_have_attribute("data-status", status, timeout=LONG)
    return cell


def test_one_h1_and_a_step_announces_its_status_and_checks_but_not_its_output(page, web_server):
    open_lab(page, web_server)
    expect(page.locator("h1")).to_have_count(1)   # the lab's intro says "# Web test lab" too
    expect(page.locator("h1")).to_have_text("Web test lab")
    cell = run(page, "failing", "failed")
    status, checks, output = cell.locator(".status"), cell.locator(".checks"), cell.locator(".output")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(checks).to_have_attribute("aria-live", "polite")
    expect(checks).to_contain_text("The file /nonexistent must exist")
    expect(output).to_have_attribute("role", "log")
    expect(output).to_have_attribute("aria-live", "off")   # a log is polite by default: streaming would drown all
    expect(output).to_have_accessible_name("Output of step 5")
    output.focus()   # it scrolls as it grows: the keyboard reaches it
    expect(output).to_be_focused()


def test_a_command_that_scrolls_sideways_takes_the_focus_only_while_it_scrolls(page, web_server):
    open_lab(page, web_server)
    long = page.locator("#step-lines .command pre")   # yes '... 0123456789 abcdefghijklmnopqrstuvw' | head -c ...
    page.set_viewport_size({"width": 700, "height": 800})
    expect(long).to_have_attribute("tabindex", "0")
    expect(long).to_have_accessible_name("Command, wider than the page: scroll it with the arrow keys")
    long.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("pre => pre.scrollLeft > 0", arg=long.element_handle())
    short = page.locator("#step-echo .command pre")
    expect(short).not_to_have_attribute("tabindex", "0")
    page.add_style_tag(content="main { max-width: none !important; }")   # wide enough for it
    page.set_viewport_size({"width": 2400, "height": 800})
    expect(long).not_to_have_attribute("tabindex", "0")
    expect(long).not_to_have_attribute("role", "group")


def shell_of(page, web_server) -> requests.Session:
    """The page's learner as a requests session (their cookie), for a shell of theirs beside the page."""
    http = requests.Session()
    for c in page.context.cookies():
        http.cookies.set(c["name"], c["value"])
    return http


def test_the_network_as_text_without_cytoscape_names_as_text_and_the_picture_labelled(page, web_server):
    page.route(CYTOSCAPE, lambda route: route.abort())
    open_lab(page, web_server, LAB_2)
    for step in ("list", "add-ns0", "veth-pair", "add-ns1", "move", "addresses"):
        run(page, step)
    with ShellTab(web_server, shell_of(page, web_server), lab=LAB_2) as shell:   # a name that is markup ('/' is no name's)
        assert "error" not in shell.open()
        shell.type("ip link add '<b>x' type veth peer name '<i>y' && echo MA''DE\r")
        shell.wait_text("MADE")
    assert page.evaluate("typeof window.cytoscape") == "undefined"
    page.locator(".network-toggle").click()
    page.locator("#network .network-view[data-view=text]").click()
    expect(page.locator("#network .network-view[data-view=text]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#network .network-screen")).to_be_hidden()
    text = page.locator("#network .network-text")
    ns0 = text.locator("table", has=page.locator("caption", has_text="netns ns0"))
    veth0 = ns0.locator("tbody tr", has=page.locator("th", has_text="veth0"))
    expect(veth0.locator("td")).to_have_text(["veth", "UP", "10.0.0.1/24", "veth pair with veth1 in netns ns1"])
    host = text.locator("table").first
    assert {"<b>x", "<i>y"} <= set(host.locator("tbody th").all_inner_texts())
    expect(host.locator("tr", has=page.locator("th", has_text="<b>x")).locator("td").last).to_have_text(
        "veth pair with <i>y")
    expect(text.locator("b, i")).to_have_count(0)
    # the tables say what the JSON says: a table per namespace, a row per interface
    picture = page.evaluate("labnb.network.picture")
    expect(text.locator("caption")).to_have_text([ns["label"] for ns in picture["namespaces"]])
    assert text.locator("tbody th").all_inner_texts() == [
        i["name"] for ns in picture["namespaces"] for i in ns["interfaces"]]

    # with Cytoscape, the picture is drawn when chosen, and labelled; the choice of view is remembered
    page.unroute(CYTOSCAPE)
    page.reload()
    expect(page.locator("#network .network-view[data-view=text]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#network .network-text table").first).to_be_visible()
    page.locator("#network .network-view[data-view=picture]").click()
    screen = page.locator("#network .network-screen")
    expect(screen.locator("canvas").first).to_be_attached()
    expect(screen).to_have_attribute("role", "img")
    expect(screen).to_have_accessible_name(f"A picture of the lab host's network, {len(picture['namespaces'])} "
                                           "namespaces: Text lists them")
    expect(text).to_be_hidden()
