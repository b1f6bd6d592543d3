"""A lab of two hosts in a real browser (Debian's chromium driven by Playwright) against the real server, on
real lab hosts joined by their lab network: the network picture shows both hosts, what runs on each and the
lab network between them (picture, text and SVG); the terminal panel has a shell per host, and the one on
node2 is node2's (tabs by keyboard, a command's button types into its host's shell); axe finds nothing serious on the page. The fixture lab is tests/fixtures/hosts-ui/."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from test_accessibility import audit
from web_support import ROOT, checked_page, chromium_browser, own_server

pytestmark = pytest.mark.slow

LONG = 180_000   # ms: two lab hosts starting and wired, a container step, while other tests run
expect.set_options(timeout=60_000)
LAB = "95-two-hosts-ui"


@pytest.fixture(scope="module")
def web_server():
    yield from own_server("ui-hosts", {"LABNB_LABS_DIR": str(ROOT / "tests" / "fixtures" / "hosts-ui")})


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def page(browser, web_server):
    """One learner for the module (their set of two lab hosts is made once), who ran the lab's step; no
    script error on their page."""
    for page in checked_page(browser):
        page.goto(f"{web_server.url}/labs/{LAB}?token={web_server.token}")
        expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
        cell = page.locator(".cell[data-step='each']")
        cell.locator("button.run").click()
        expect(cell).to_have_attribute("data-status", "done", timeout=LONG)
        yield page


def test_the_picture_shows_both_hosts_what_runs_on_each_and_the_lab_network(page, web_server):
    page.locator("button.network-toggle").first.click()
    page.wait_for_function("""() => { const p = window.labnb.network.picture;
        return p && p.hosts && p.namespaces.some(ns => ns.label === 'container web')
               && p.namespaces.some(ns => ns.label === 'netns blue'); }""", timeout=LONG)
    pic = page.evaluate("window.labnb.network.picture")
    assert [h["name"] for h in pic["hosts"]] == ["node1", "node2"]
    assert "8080" in pic["hosts"][0]["label"], pic["hosts"][0]   # docker-proxy of `-p 8080:80` on node1
    net = pic["namespaces"][0]
    assert net["kind"] == "lab network" and "192.168.118.0/24" in net["label"]
    where = {ns["label"]: ns["host"] for ns in pic["namespaces"][1:] if ns["kind"] != "lab host"}
    assert where == {"container web": "node1", "netns blue": "node2"}
    ifaces = {i["id"]: i for ns in pic["namespaces"] for i in ns["interfaces"]}
    joined = sorted((ifaces[link["target"]]["name"], ifaces[link["source"]]["name"], ifaces[link["source"]]["addresses"])
                    for link in pic["links"] if link["kind"] == "lab")
    assert joined == [("node1", "ens33", ["192.168.118.137/24"]), ("node2", "ens33", ["192.168.118.138/24"])], joined
    # drawn once Cytoscape.js has loaded, after the picture came
    page.wait_for_function("() => window.labnb.network.cy && window.labnb.network.cy.nodes('.host').length")
    drawn = page.evaluate("""() => { const cy = window.labnb.network.cy;
        return [cy.nodes('.host').map(n => n.data('label').split(' ')[0]), cy.edges('.lab').length]; }""")
    assert drawn == [["node1", "node2"], 2]
    expect(page.locator("#network .legend-hosts")).to_be_visible()

    page.locator("#network .network-view[data-view='text']").click()
    text = page.locator("#network .network-text")
    expect(text.locator("ul.network-hosts li")).to_have_count(2)
    expect(text.locator("caption", has_text="node2: netns blue")).to_have_count(1)
    expect(text).to_contain_text("the lab network")   # each ens33's link, said in words
    page.locator("#network .network-view[data-view='picture']").click()

    svg = page.request.get(f"{web_server.url}/network.svg").text()
    assert "<title>Network of lab hosts node1 (" in svg and "node2 (" in svg and 'class="lab"' in svg


def screen_lines(rows) -> list[str]:
    return [line.replace("\u00a0", " ").rstrip() for line in rows.locator("> div").all_inner_texts()]


def test_a_shell_per_host_and_the_one_on_node2_is_node2(page):
    panel = page.locator("#terminal")
    if panel.get_attribute("data-open") != "true":
        panel.locator("button.terminal-toggle").click()
    tabs = panel.locator(".terminal-tab[data-term='']")
    expect(tabs).to_have_text(["node1", "node2"])
    expect(panel.locator(".shell-view[data-host='node1'] .xterm-rows")).to_contain_text("@node1", timeout=LONG)
    panel.locator(".terminal-tab[data-host='node2']").click()
    rows = panel.locator(".shell-view[data-host='node2'] .xterm-rows")
    expect(rows).to_contain_text("@node2", timeout=LONG)   # its prompt: [root@node2 ~]#
    page.keyboard.type("hostname; echo done-$((6*7))\n")
    expect(rows).to_contain_text("done-42")
    assert "node2" in screen_lines(rows), screen_lines(rows)
    expect(panel.locator(".shell-view[data-host='node2'] textarea")).to_have_attribute("aria-label", "Shell on host node2")

    node2 = panel.locator(".terminal-tab[data-host='node2']")   # the tabs by keyboard: focus stays on them
    node2.focus()
    page.keyboard.press("ArrowLeft")
    expect(panel.locator(".terminal-tab[data-host='node1']")).to_have_attribute("aria-selected", "true")
    expect(panel.locator(".terminal-tab[data-host='node1']")).to_be_focused()
    expect(panel.locator(".shell-view[data-host='node2']")).to_be_hidden()
    page.keyboard.press("End")
    expect(node2).to_have_attribute("aria-selected", "true")

    panel.locator(".terminal-tab[data-host='node1']").click()   # a command's button types into its host's shell
    page.locator(".command[data-host='node2'] button.to-terminal").click()
    expect(node2).to_have_attribute("aria-selected", "true")
    expect(rows).to_contain_text("ip netns add blue")


def test_axe_finds_nothing_serious_with_two_hosts(page):
    """With the terminal panel's host tabs and the picture of two hosts, as picture and as text."""
    rest: dict = {}
    panel = page.locator("#terminal")
    if panel.get_attribute("data-open") != "true":
        panel.locator("button.terminal-toggle").click()
    expect(panel.locator(".shell-view[data-host='node1'] .xterm-rows")).to_contain_text("@node1", timeout=LONG)
    audit(page, "a lab page of two hosts, the terminal open", rest)
    network = page.locator("#network")
    if network.is_hidden():
        page.locator("button.network-toggle").first.click()
    page.wait_for_function("() => window.labnb.network.picture && window.labnb.network.picture.hosts")
    network.locator(".network-view[data-view='picture']").click()
    audit(page, "a lab page of two hosts, the picture", rest)
    network.locator(".network-view[data-view='text']").click()
    audit(page, "a lab page of two hosts, the picture as text", rest)
    print("\naxe findings below serious:", sorted(rest))
