"""The fourth built-in lab, labs/04-two-hosts.md, for real: headless (`labnb run`) on a set of two sandbox lab
hosts wired on their own lab network, and in Chromium, every step run through the page; plus what a lab host
needs for its swarm overlay step (a /var/lib/docker of its own)."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import passing_run, sh
from web_support import Server, _state_dir, checked_page, chromium_browser, serving
from webapp.lab import load_lab

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "labs" / "04-two-hosts.md"
LONG = 180_000   # ms: a step of this lab (the swarm's) takes seconds; a slow CI machine, many more


def test_var_lib_docker_is_the_lab_hosts_docker_data(lab_host):
    """dockerd 20.10 writes a swarm overlay's load-balancer files under /var/lib/docker whatever its
    --data-root: without a writable one, attaching a container to an overlay network fails ("mkdir
    /var/lib/docker: permission denied", then "context deadline exceeded")."""
    outcome, out = sh(lab_host, "readlink /var/lib/docker; mkdir -p /var/lib/docker/network/files/lb_test "
                                "&& ls -d /var/lib/docker/containers /var/lib/docker/network/files/lb_test")
    assert outcome.exit_code == 0, out
    target, *listed = out.split()
    assert target.endswith(f"/hosts/{lab_host.id}/docker"), out   # its own data, the bounded tmpfs
    assert listed == ["/var/lib/docker/containers", "/var/lib/docker/network/files/lb_test"], out


@pytest.mark.slow
def test_two_host_lab_passes_headless(settings, tmp_path):
    """`labnb run` makes node1 and node2, joined on a lab network, and every step passes; commands and checks
    ran on both hosts."""
    lab = load_lab(LAB)
    assert lab.hosts == ["node1", "node2"]
    out, result = passing_run(settings, LAB, tmp_path / "report.json", timeout=900)
    assert [s["id"] for s in result["steps"]] == [s.id for s in lab.steps]
    # what only two hosts show: node2 fetched node1's page, the containers' own addresses crossed the routes,
    # the tunnel and the overlay carried pings
    assert "node2$ " in out.stdout and "node1$ " in out.stdout, out.stdout[-3000:]
    outputs = {s["id"]: "".join(c["output"] for c in s["commands"]) for s in result["steps"]}
    assert "hello from node1" in outputs["from-node2"]
    assert "172.18.0." in outputs["masquerade"]
    assert "3 packets transmitted, 3 received" in outputs["vxlan"]
    assert "This node joined a swarm as a worker" in outputs["swarm"]
    assert "3 packets transmitted, 3 packets received" in outputs["overlay"]


@pytest.fixture(scope="module")
def lab_server():
    """A server of this module's own with the built-in labs (the shared one serves the fixture labs)."""
    env = {"LABNB_LABS_DIR": str(ROOT / "labs"),
           "LABNB_MEMORY_MB": "512"}   # node1, the swarm's manager, holds 125 MB of raft log (docs/lab-hosts.md)
    yield from serving(Server(_state_dir("lab4"), uid_slot=32, env=env))


@pytest.fixture(scope="module")
def page(lab_server):
    for browser in chromium_browser():
        yield from checked_page(browser, 1600, 1000)


@pytest.mark.slow
def test_two_host_lab_passes_in_chromium(page, lab_server):
    """A learner opens the lab: the page sets up both hosts, and each step, run with its Run button,
    passes with every check."""
    lab = load_lab(LAB)
    page.goto(f"{lab_server.url}/labs/{lab.id}?token={lab_server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=LONG)
    for step in lab.steps:
        cell = page.locator(f".cell[data-step='{step.id}']")
        cell.locator("button.run").click()
        expect(cell).to_have_attribute("data-status", "done", timeout=LONG)
        expect(cell.locator(".checks li.pass")).to_have_count(len(step.checks))
        expect(cell.locator(".checks li.fail")).to_have_count(0)
    # node2's commands ran on node2: its hostname is in the first step's output
    expect(page.locator(".cell[data-step='hosts']")).to_contain_text("node2")
    # the picture: both hosts on their lab network, web and c1 on node1, c2 on node2
    page.locator("button.network-toggle").first.click()
    page.wait_for_function("""() => { const p = window.labnb.network.picture;
        return p && p.hosts && ['container web', 'container c1', 'container c2'].every(
            label => p.namespaces.some(ns => ns.label === label)); }""", timeout=LONG)
    pic = page.evaluate("window.labnb.network.picture")
    assert [h["name"] for h in pic["hosts"]] == ["node1", "node2"]
    assert pic["namespaces"][0]["kind"] == "lab network"
    where = {ns["label"]: ns["host"] for ns in pic["namespaces"] if ns["label"].startswith("container ")}
    assert (where["container web"], where["container c1"], where["container c2"]) == ("node1", "node1", "node2")
