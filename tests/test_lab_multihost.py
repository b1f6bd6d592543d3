"""A lab of two hosts, for real (docs/lab-format.md, "Hosts"): headless with `labnb run` and through the web
app's Socket.IO, a command on node2 makes a file only node2 has, a check on node2 finds it, the same check on
node1 does not; setup ran on each host knowing its name; each named terminal is on its host."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import labnb
from web_support import Server, Tab, _state_dir, serving

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "multihost"
LAB = "10-two-hosts"

pytestmark = pytest.mark.slow


def test_labnb_run_runs_each_part_on_its_host(settings, tmp_path):
    report = tmp_path / "report.json"
    out = labnb(settings, "run", str(FIXTURES / f"{LAB}.md"), "--json", str(report))
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr   # the last step fails, as it is meant to
    result = json.loads(report.read_text())
    assert result["setup"]["status"] == "done", result["setup"]
    assert set(result["lab_hosts"]) == {"node1", "node2"} and len(set(result["lab_hosts"].values())) == 2
    on_node2, terminals, on_node1 = result["steps"]
    assert on_node2["status"] == "done", out.stdout[-3000:]
    assert [c["host"] for c in on_node2["commands"]] == ["node2"]
    assert on_node2["commands"][0]["output"].strip() == "node2"   # the hostname the lab gave it
    assert [c["passed"] for c in on_node2["checks"]] == [True, True, True]
    assert terminals["status"] == "done", terminals
    assert [c["host"] for c in terminals["commands"]] == ["node2", "node1"]
    assert on_node1["status"] == "failed" and [c["passed"] for c in on_node1["checks"]] == [False]
    assert "node2$ echo only-node2" in out.stdout
    assert "node1 has no such file" in out.stdout


@pytest.fixture(scope="module")
def server():
    yield from serving(Server(_state_dir("multihost"), uid_slot=32, env={"LABNB_LABS_DIR": str(FIXTURES)}))


def test_the_web_app_runs_each_part_on_its_host(server):
    http = server.learner()
    server.open_lab(http, LAB)
    page = http.get(f"{server.url}/labs/{LAB}", timeout=10).text
    assert '<span class="host" title="Runs on the lab host node2">on node2</span>' in page
    tab = Tab(server, http, lab=LAB)
    try:
        end = tab.wait_end(tab.run("on-node2"))
        assert end["status"] == "done", tab.text(end["run"])
        assert "node2$ echo only-node2" in tab.text(end["run"])
        assert [c["passed"] for c in end["checks"]] == [True, True, True], end["checks"]
        end = tab.wait_end(tab.run("terminals"))
        assert end["status"] == "done", tab.text(end["run"])
        end = tab.wait_end(tab.run("on-node1"))
        assert end["status"] == "failed" and [c["passed"] for c in end["checks"]] == [False], end
    finally:
        tab.close()
