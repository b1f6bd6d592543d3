"""The headless runner, for real: every built-in lab must pass in a sandbox
lab host (this is what keeps the labs honest in CI), and `labnb run` must
report failures in the lab's words, write JSON and JUnit, and leave no lab
host behind when interrupted."""
from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conftest import LABNB, labnb, labnb_env, passing_run
from webapp.lab import load_labs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runner"


@pytest.mark.slow
@pytest.mark.parametrize("lab", load_labs(ROOT / "labs"), ids=lambda lab: lab.id)
def test_builtin_lab_passes(settings, lab, tmp_path):
    """`labnb run` on each built-in lab, as an author would run it in CI."""
    out, result = passing_run(settings, lab.path, tmp_path / "report.json")
    assert len(result["steps"]) == len(lab.steps)
    _check_pictures(lab.id, {s["id"]: s["network"] for s in result["steps"]})
    assert not _our_lab_hosts(settings) or all(m["owner_alive"] for m in _our_lab_hosts(settings))


def _check_pictures(lab_id: str, pictures: dict[str, dict]) -> None:
    """Each step recorded the network as it left it; the ones the labs are about show what they teach."""
    assert all("namespaces" in p for p in pictures.values()), pictures

    def box(step: str, member: str) -> dict:
        return next(ns for ns in pictures[step]["namespaces"] if member in [m["name"] for m in ns["members"]])

    def addresses(ns: dict, name: str) -> list[str]:
        return next(i["addresses"] for i in ns["interfaces"] if i["name"] == name)

    if lab_id == "01-network-modes":
        shared = box("container-mode", "b1")
        assert {m["name"] for m in shared["members"]} == {"b1", "b2"}
        assert addresses(shared, "eth0") == ["172.17.0.2/16"]
    if lab_id == "02-netns-veth":
        ns0, ns1 = box("addresses", "ns0"), box("addresses", "ns1")
        veth0 = next(i for i in ns0["interfaces"] if i["name"] == "veth0")
        assert veth0["addresses"] == ["10.0.0.1/24"] and addresses(ns1, "veth1") == ["10.0.0.2/24"]
        assert veth0["peer"] in [i["id"] for i in ns1["interfaces"]]


def _our_lab_hosts(settings) -> list[dict]:
    """`labnb lab-hosts ls --json`, less the cgroups of other state dirs'
    lab hosts (cgroups are machine-wide; ours have a slot or a record)."""
    out = labnb(settings, "lab-hosts", "ls", "--json")
    assert out.returncode == 0, out.stderr
    return [m for m in json.loads(out.stdout) if m.get("slot") is not None or "pid" in m]


def test_failing_check_reports_hint_json_and_junit(settings, tmp_path):
    out = labnb(settings, "run", str(FIXTURES / "failing.md"),
                 "--json", str(tmp_path / "run.json"), "--junit", str(tmp_path / "run.xml"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "HINT: /nowhere should exist" in out.stdout
    assert "\x1b[" not in out.stdout    # no colours when stdout is not a terminal

    report = json.loads((tmp_path / "run.json").read_text())
    assert report["passed"] is False
    assert report["setup"]["status"] == "done" and report["cleanup"]["status"] == "done"
    hello, missing, bad = report["steps"]
    assert hello["status"] == "done" and hello["passed"]
    assert hello["commands"][0]["output"] == "set up\nhello from step one\n"
    assert hello["commands"][0]["exit_code"] == 0 and hello["commands"][0]["duration"] >= 0
    assert hello["checks"] == [{"kind": "match", "line": 18, "passed": True, "hint": "step one should greet",
                                "detail": "output must match /^hello from step one$/"}]
    assert missing["status"] == "failed"
    assert missing["checks"][0]["passed"] is False
    assert missing["failure"] == missing["checks"][0]["hint"] == \
        "HINT: /nowhere should exist; create it with mkdir /nowhere"
    assert bad["status"] == "skipped" and bad["commands"] == []

    suite = ET.parse(tmp_path / "run.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["01 hello: Say hello", "02 missing: Look for a missing file",
                                              "03 bad-command: A command that fails"]
    assert cases[0].find("failure") is None
    assert cases[1].find("failure").get("message") == "HINT: /nowhere should exist; create it with mkdir /nowhere"
    assert "looking for /nowhere" in cases[1].find("system-out").text
    assert cases[2].find("skipped") is not None


def test_step_option_runs_only_that_step(settings, tmp_path):
    out = labnb(settings, "run", str(FIXTURES / "failing.md"), "--step", "3",
                 "--json", str(tmp_path / "run.json"), "--junit", str(tmp_path / "run.xml"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "running only step 3 of 3" in out.stdout
    report = json.loads((tmp_path / "run.json").read_text())
    [step] = report["steps"]
    assert (step["index"], step["status"]) == (3, "failed")
    assert step["commands"][0]["exit_code"] == 3 and step["commands"][0]["note"] == "exited with 3"
    failure = ET.parse(tmp_path / "run.xml").find(".//failure")
    assert failure.get("message") == 'line 34: exited with 3: echo "about to fail"; exit 3'

    out = labnb(settings, "run", str(FIXTURES / "failing.md"), "--step", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1/1 steps passed" in out.stdout

    out = labnb(settings, "run", str(FIXTURES / "failing.md"), "--step", "4")
    assert out.returncode == 2 and "the lab has 3 steps" in out.stderr


def test_lab_with_problems_exits_2(settings):
    out = labnb(settings, "run", str(ROOT / "tests" / "fixtures" / "broken" / "bad.md"))
    assert out.returncode == 2
    assert "bad.md:3: unknown front matter key 'tiltle'" in out.stderr
    assert "labnb check" in out.stderr


def test_lab_host_that_cannot_start_exits_3(settings, tmp_path):
    env = {**labnb_env(settings), "LABNB_STATE_DIR": str(tmp_path / "state")}   # under /tmp: refused
    out = subprocess.run([*LABNB, "run", str(FIXTURES / "failing.md")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3
    assert "cannot make a lab host" in out.stderr and "Set LABNB_STATE_DIR" in out.stderr


def test_a_lab_host_without_what_the_lab_requires_is_refused(settings):
    """Lab 3 requires docker and the busybox image; the plain lab host (this
    machine) has them only if the machine runs a dockerd of its own with it."""
    machine_docker = subprocess.run(["docker", "image", "inspect", "busybox"], capture_output=True).returncode == 0
    if machine_docker:
        pytest.skip("this machine runs a dockerd with busybox: a plain lab host lacks nothing lab 3 requires")
    out = labnb(settings, "run", "--backend", "plain", str(ROOT / "labs" / "03-container-ops.md"))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "needs docker, busybox-image, which plain lab host" in out.stderr, out.stderr
    assert "step" not in out.stdout.split("\n", 1)[1], "a step ran on a lab host that lacks what it needs"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_run_and_removes_lab_host(settings, sig):
    before = _our_lab_hosts(settings)
    proc = subprocess.Popen([*LABNB, "run", str(FIXTURES / "sleep.md")], env=labnb_env(settings), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        seen = []
        while not any(line.strip() == "│ going to sleep" for line in seen):
            seen.append(lines.get(timeout=120))
        host_id = next(line.split()[-1] for line in seen if "lab host lh-" in line)
        assert host_id in [m["id"] for m in _our_lab_hosts(settings)]
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == 130, proc.stderr.read()
    finally:
        proc.kill()
    assert "interrupted" in proc.stderr.read()
    assert _our_lab_hosts(settings) == before
    assert host_id not in [m["id"] for m in json.loads(labnb(settings, "lab-hosts", "ls", "--json").stdout)]
