"""The lab page carries how each step's last run ended (webapp/notebook/views.py, ``recorded_ends``), so its
cells show each step's state as it loads (static/cells.js), not once the output is replayed: a finished run's
status, exit code, duration and checks' verdicts with their hints, never a check's detail (long, and sent
with the replay); a run still going has none (the page attaches to it)."""
from __future__ import annotations

import html
import json
import re

from apps import LAB


def ends(http) -> dict[str, dict]:
    page = http.get(f"/labs/{LAB}").text
    return {step: json.loads(html.unescape(end))
            for step, end in re.findall(r'data-step="([^"]+)" data-run="[^"]*" data-end=\'([^\']+)\'', page)}


def test_the_page_has_each_finished_runs_end_and_none_of_a_run_still_going(app, http, tab):
    tab.wait_end(tab.run("echo"))
    tab.wait_end(tab.run("failing"))
    endless = tab.run("endless")
    tab.wait(lambda: tab.named("output"), "the endless step's output")
    try:
        got = ends(http)
        assert set(got) == {"echo", "failing"}
        assert got["echo"]["status"] == "done" and got["echo"]["exit_code"] == 0 and got["echo"]["checks"] == []
        assert got["failing"]["status"] == "failed" and got["failing"]["exit_code"] == 0
        assert got["failing"]["checks"] == [
            {"kind": "check", "passed": False, "hint": "The file nonexistent must exist: create it with touch."}]
        assert all(isinstance(end["duration"], float) for end in got.values())
    finally:
        tab.call("stop", {"run": endless})
        tab.wait_end(endless)
