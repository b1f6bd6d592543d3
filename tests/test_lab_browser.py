"""Labs 1 and 2 in a real browser: the network picture drawn beside the steps as they run and saved as SVG,
and the named terminals (b1, b2) as tabs of the terminal panel."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import expect, sync_playwright

from web_support import CHROMIUM_ARGS

LONG = 120_000
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def page(web_server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert not errors, errors


def run_steps(page, web_server, lab: str, steps: list[str]) -> None:
    page.goto(f"{web_server.url}/labs/{lab}?token={web_server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    for step in steps:
        cell = page.locator(f".cell[data-step='{step}']")
        cell.locator("button.run").click()
        expect(cell).to_have_attribute("data-status", "done", timeout=LONG)


def drawn_box(page, member: str) -> dict:
    """The picture's box holding ``member``, once the page has drawn one with it (after a run it redraws)."""
    page.wait_for_function("""m => labnb.network.picture && labnb.network.picture.namespaces.some(
        ns => ns.members.some(x => x.name === m))""", arg=member)
    return page.evaluate("""m => labnb.network.picture.namespaces.find(
        ns => ns.members.some(x => x.name === m))""", member)


@pytest.mark.slow
def test_lab_1_container_mode_shows_b1_and_b2_in_one_box(page, web_server):
    run_steps(page, web_server, "01-network-modes", ["two-containers"])
    page.locator(".network-toggle").first.click()
    expect(page.locator("#network")).to_be_visible()
    run_steps(page, web_server, "01-network-modes", ["container-mode"])   # the panel stays open after a reload
    expect(page.locator("#network")).to_be_visible()
    page.wait_for_function("""() => labnb.network.picture && labnb.network.picture.namespaces.some(
        ns => ns.members.filter(m => m.name === 'b1' || m.name === 'b2').length === 2)""")
    box = drawn_box(page, "b1")
    assert {m["name"] for m in box["members"]} == {"b1", "b2"}
    [eth0] = [i for i in box["interfaces"] if i["name"] == "eth0"]
    assert eth0["addresses"] == ["172.17.0.2/16"]
    # drawn: a box labelled with both, holding eth0 with its address
    label = page.evaluate("id => labnb.network.cy.getElementById(id).data('label')", box["id"])
    assert label == "containers b1 + b2"
    assert "172.17.0.2/16" in page.evaluate("id => labnb.network.cy.getElementById(id).data('label')", eth0["id"])
    assert page.evaluate("id => labnb.network.cy.getElementById(id).parent().id()", eth0["id"]) == box["id"]


@pytest.mark.slow
def test_a_named_terminal_shows_the_steps_typing_and_takes_the_learners(page, web_server):
    """After lab 1's container-mode steps, terminal b1 holds container b1's shell: its tab shows what the
    step typed there, and what the learner types runs in the container."""
    page.goto(f"{web_server.url}/labs/01-network-modes")
    panel = page.locator("#terminal")
    if panel.get_attribute("data-open") != "true":
        panel.locator("button.terminal-toggle").click()
    panel.locator(".terminal-tab[data-term='b1']").click()
    expect(panel.locator(".terminal-tab[data-term='b1']")).to_have_attribute("aria-selected", "true")
    rows = panel.locator(".shell-view[data-term='b1'] .xterm-rows")
    expect(rows).to_contain_text("ifconfig eth0")        # typed by the step "two-containers"
    expect(rows).to_contain_text("inet addr:172.17.0.2")
    page.keyboard.type("echo typed-$((6*7)); ifconfig")
    page.keyboard.press("Enter")
    expect(rows).to_contain_text("typed-42")
    expect(rows.locator("div", has_text="inet addr:172.17.0.2")).to_have_count(2)   # the step's, and ours
    expect(panel.locator(".shell-view[data-term='']")).to_be_hidden()
    panel.locator(".terminal-tab[data-term='']").click()   # the free shell is another terminal
    expect(panel.locator(".shell-view[data-term=''] .xterm-rows")).to_contain_text("]#")
    panel.locator("button.terminal-toggle").click()


@pytest.mark.slow
def test_the_host_mode_web_page_opens_through_its_link(page, web_server):
    run_steps(page, web_server, "01-network-modes", ["host-mode"])
    link = page.locator("#ports a", has_text="port 80")
    expect(link).to_be_visible()
    with page.context.expect_page() as opened:
        link.click()
    site = opened.value
    site.wait_for_load_state()
    assert site.url.startswith("http://p80-") and ".localhost:" in site.url
    expect(site.locator("body")).to_contain_text("hello world")
    site.close()


@pytest.mark.slow
def test_a_web_service_through_its_link_redirects_and_websockets_and_only_for_its_owner(page, web_server):
    """The proxy test lab's app (tests/fixtures/labs/93-proxy-test.md): its page's own WebSocket echoes, a
    redirect is followed, it never sees labnb's cookies; another learner and an anonymous browser are refused."""
    run_steps(page, web_server, "93-proxy-test", ["app"])
    link = page.locator("#ports a", has_text="port 8080")
    with page.context.expect_page() as opened:
        link.click()
    site = opened.value
    expect(site.locator("body")).to_contain_text("hello from the app")
    expect(site.locator("#echo")).to_have_text("echo: from the browser")     # a WebSocket through the proxy
    base = site.url.rstrip("/")
    site.locator("#on").click()
    expect(site.locator("body")).to_have_text("you were redirected")
    assert site.url == base + "/target"
    site.goto(base + "/headers")
    seen = dict(json.loads(site.locator("body").inner_text()))   # the headers the app was sent
    assert "labnb" not in seen.get("Cookie", ""), seen
    site.close()
    browser = page.context.browser
    for token in (web_server.token, None):   # another learner of this server, and a browser with no session
        other = browser.new_context()
        try:
            stranger = other.new_page()
            if token:
                stranger.goto(f"{web_server.url}/?token={token}")
            stranger.goto(base + "/")
            expect(stranger.locator("body")).to_contain_text("not signed in to this lab host's service")
        finally:
            other.close()


@pytest.mark.slow
def test_lab_2_veth_pair_joins_ns0_and_ns1_and_the_svg_downloads(page, web_server):
    run_steps(page, web_server, "02-netns-veth", ["list", "add-ns0", "veth-pair", "add-ns1", "move", "addresses"])
    page.wait_for_function("""() => labnb.network.picture.namespaces.some(
        ns => ns.interfaces.some(i => i.addresses.includes('10.0.0.2/24')))""")
    ns0, ns1 = drawn_box(page, "ns0"), drawn_box(page, "ns1")
    [veth0] = [i for i in ns0["interfaces"] if i["name"] == "veth0"]
    [veth1] = [i for i in ns1["interfaces"] if i["name"] == "veth1"]
    assert veth0["addresses"] == ["10.0.0.1/24"] and veth1["addresses"] == ["10.0.0.2/24"]
    edge = page.evaluate("""([a, b]) => labnb.network.cy.edges('.veth').filter(
        e => [e.source().id(), e.target().id()].sort().join() === [a, b].sort().join()).length""",
                         [veth0["id"], veth1["id"]])
    assert edge == 1
    with page.expect_download() as download:
        page.locator("#network .network-svg").click()
    path = download.value.path()
    assert download.value.suggested_filename.startswith("network-") and download.value.suggested_filename.endswith(".svg")
    texts = [t.text for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "netns ns0" in texts and "netns ns1" in texts and "10.0.0.1/24" in texts and "10.0.0.2/24" in texts
