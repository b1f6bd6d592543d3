"""A lab page's weight (issue 29, item 13), in Debian's chromium against the real server: with its panels
closed it loads neither xterm.js nor Cytoscape.js, and at most 300 KB of script; opening the terminal or
the network picture loads what it needs and works, and says so when that cannot load; static files are
served under versioned URLs that the browser keeps (a second visit asks for none), others revalidate."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web_support import TEST_LAB, chromium_browser, own_server

pytestmark = pytest.mark.slow
LONG = 120_000   # ms: a lab host starting while other tests run
LAB = "01-network-modes"   # a real lab's page, with named terminals
SCRIPT_BUDGET = 300_000   # bytes of script before the page comes alive
ON_DEMAND = re.compile(r"/static/vendor/(xterm|xterm-addon-fit|cytoscape)/")
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def web_server():
    """This module's own (a new learner per test)."""
    yield from own_server("ui-assets")


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def learner_state(browser, web_server):
    """One learner's cookie for the module, their lab host started: each test opens it in a new context
    (an empty cache)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{web_server.url}/labs/{LAB}?token={web_server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(browser, learner_state):
    """A new context's page that records what it loaded (``page.loaded``: responses) and its script errors."""
    context = browser.new_context(storage_state=learner_state)
    page = context.new_page()
    page.loaded, errors = [], []
    page.on("response", lambda response: page.loaded.append(response))
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def open_lab(page, web_server, lab: str = LAB):
    page.goto(f"{web_server.url}/labs/{lab}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    expect(page.locator(".cell button.run").first).to_be_enabled()
    page.wait_for_load_state("networkidle")


def on_demand(page) -> list[str]:
    return [r.url for r in page.loaded if ON_DEMAND.search(r.url)]


def test_a_lab_page_with_its_panels_closed_loads_neither_xterm_nor_cytoscape(page, web_server):
    open_lab(page, web_server)
    assert on_demand(page) == []
    scripts = {r.url: len(r.body()) for r in page.loaded if r.request.resource_type == "script"}
    assert "content-encoding" not in {h.lower() for r in page.loaded for h in r.headers}   # bytes as counted
    assert 0 < sum(scripts.values()) <= SCRIPT_BUDGET, scripts


def test_opening_the_terminal_loads_xterm_and_it_works(page, web_server):
    open_lab(page, web_server, TEST_LAB)
    panel = page.locator("#terminal")
    panel.locator("button.terminal-toggle").click()
    expect(panel.locator(".xterm-rows")).to_contain_text("]#", timeout=LONG)   # the prompt
    page.keyboard.type("echo loaded-$((6*7))")
    page.keyboard.press("Enter")
    expect(panel.locator(".xterm-rows")).to_contain_text("loaded-42")
    assert {re.sub(r"\?.*", "", u.split("/static/")[1]) for u in on_demand(page)} == {
        "vendor/xterm/xterm.css", "vendor/xterm/xterm.js", "vendor/xterm-addon-fit/addon-fit.js"}
    assert not [u for u in on_demand(page) if "cytoscape" in u]
    panel.locator("button.terminal-toggle").click()


def test_a_named_terminal_shows_what_a_step_typed_there(page, web_server):
    """The named terminal's output, typed by a step before xterm.js was loaded, shows once it is."""
    open_lab(page, web_server)
    cell = page.locator(".cell[data-step='two-containers']")   # starts containers b1, b2; types into b1
    cell.locator("button.run").click()
    expect(cell).to_have_attribute("data-status", "done", timeout=LONG)
    assert on_demand(page) == []
    panel = page.locator("#terminal")
    panel.locator(".terminal-tab[data-term='b1']").click()
    expect(panel).to_have_attribute("data-open", "true")
    expect(panel.locator(".shell-view[data-term='b1'] .xterm-rows")).to_contain_text("inet addr:172.17.0.2",
                                                                                     timeout=LONG)
    panel.locator("button.terminal-toggle").click()


def test_opening_the_network_picture_loads_cytoscape_and_draws(page, web_server):
    open_lab(page, web_server)
    page.locator("button.network-toggle").click()
    expect(page.locator("#network .network-info")).to_contain_text("namespaces, read in", timeout=LONG)
    page.wait_for_function("labnb.network.cy && labnb.network.cy.nodes().length > 0")   # drawn once loaded
    assert [u for u in on_demand(page) if "cytoscape" in u]
    assert not [u for u in on_demand(page) if "xterm" in u]
    page.locator("button.network-toggle").click()


def test_a_panel_says_when_its_script_cannot_load_and_tries_again(page, web_server):
    page.route(re.compile(r"/static/vendor/xterm/xterm\.js"), lambda route: route.abort())
    open_lab(page, web_server, TEST_LAB)
    panel = page.locator("#terminal")
    toggle = panel.locator("button.terminal-toggle")
    toggle.click()
    expect(panel.locator(".terminal-status")).to_contain_text(
        "The terminal could not load /static/vendor/xterm/xterm.js from the server")
    toggle.click()
    page.unroute(re.compile(r"/static/vendor/xterm/xterm\.js"))
    toggle.click()   # opened again: loaded this time
    expect(panel.locator(".xterm-rows")).to_contain_text("]#", timeout=LONG)
    toggle.click()


def test_a_second_visit_asks_the_server_for_no_static_file(page, web_server):
    open_lab(page, web_server)
    static = [r.url for r in page.loaded if "/static/" in r.url]
    assert static and all(re.search(r"\?v=[0-9a-f]{12}$", url) for url in static), static
    page.goto(f"{web_server.url}/")   # then back by a link, as a learner does (a reload asks again)
    cdp = page.context.new_cdp_session(page)   # Chromium's own account of what it took from its cache
    cdp.send("Network.enable")
    sent, cached = {}, set()
    cdp.on("Network.requestWillBeSent", lambda e: sent.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.requestServedFromCache", lambda e: cached.add(e["requestId"]))
    cdp.on("Network.responseReceived", lambda e: cached.add(e["requestId"]) if (
        e["response"].get("fromDiskCache") or e["response"].get("fromMemoryCache")) else None)
    open_lab(page, web_server)
    assert [url for rid, url in sent.items() if "/static/" in url and rid not in cached] == []


def test_a_versioned_static_url_is_kept_and_any_other_revalidated(web_server):
    http = web_server.learner()
    html = http.get(f"{web_server.url}/labs/{TEST_LAB}", timeout=30).text
    [url] = re.findall(r'src="(/static/labnb\.js\?v=[0-9a-f]+)"', html)
    kept = http.get(web_server.url + url, timeout=30)
    assert kept.status_code == 200
    assert kept.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert "Set-Cookie" not in kept.headers and "Cookie" not in kept.headers.get("Vary", "")
    for other in ("/static/labnb.js?v=000000000000", "/static/labnb.js"):
        r = http.get(web_server.url + other, timeout=30)
        assert r.status_code == 200 and r.content == kept.content
        assert r.headers["Cache-Control"] == "no-cache", other
    assert http.__class__().get(web_server.url + url, timeout=30).status_code == 403   # still the learners' only
