"""A workshop's results archive (webapp/workshop/export.py) from a snapshot made here: the rows, CSV that a
spreadsheet cannot take for formulas, JUnit XML, and each learner's notebooks."""
from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
import zipfile

import pytest

from webapp.lab import load_lab
from webapp.workshop.export import archive, junit, rows

T0 = 1_700_000_000.0   # 2023-11-14T22:13:20Z


def snapshot(names=("Ada", "Bob")) -> dict:
    labs = [{"id": "bridges", "title": "Bridges", "steps": [{"id": "look", "title": "Look"},
                                                             {"id": "attach", "title": "Attach"},
                                                             {"id": "later", "title": "Later"}]}]
    learners = []
    for n, name in enumerate(names):
        learners.append({"id": f"{n:032x}", "name": name, "place": "seated", "steps": {"bridges": {
            "look": {"state": "passed", "status": "done", "started": T0, "ended": T0 + 1.5},
            "attach": {"state": "failed", "status": "timed_out", "started": T0 + 10, "ended": T0 + 40},
            "later": {"state": "not_started"},
        }}})
    return {"workshop": {"labs": labs}, "learners": learners}


def test_a_row_per_learner_and_step_in_the_labs_order():
    table = rows(snapshot())
    assert [(r["name"], r["step_no"], r["step"]) for r in table] == [
        ("Ada", 1, "look"), ("Ada", 2, "attach"), ("Ada", 3, "later"),
        ("Bob", 1, "look"), ("Bob", 2, "attach"), ("Bob", 3, "later")]


def test_a_row_has_its_times_in_utc_and_its_duration():
    first = rows(snapshot())[0]
    assert (first["state"], first["status"], first["started"], first["ended"], first["duration_s"]) == (
        "passed", "done", "2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z", 1.5)


def test_a_step_not_started_has_empty_times():
    later = rows(snapshot())[2]
    assert (later["state"], later["status"], later["started"], later["ended"], later["duration_s"]) == (
        "not_started", "", "", "", "")


def test_junit_has_a_suite_per_learner_and_lab_and_a_case_per_step():
    root = ET.fromstring(junit(snapshot()))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["Ada: bridges", "Bob: bridges"]
    assert (suites[0].get("tests"), suites[0].get("failures"), suites[0].get("skipped")) == ("3", "1", "1")
    look, attach, later = suites[0].findall("testcase")
    assert look.get("name") == "01 look: Look" and look.get("time") == "1.500" and list(look) == []
    assert attach.find("failure").get("message") == "the step's last run: timed_out"
    assert later.find("skipped").get("message") == "not started" and later.get("time") is None


def test_junit_class_names_carry_a_slug_of_the_learners_name():
    root = ET.fromstring(junit(snapshot(names=("Zoë O'Neil!",))))
    assert root.find("testsuite/testcase").get("classname") == "bridges.Zo-O-Neil"


@pytest.fixture
def results(tmp_path, store):
    lab_path = tmp_path / "bridges.md"
    lab_path.write_text("---\ntitle: Bridges\n---\n## Look {#look}\n\n```sh\nip link\n```\n\n"
                        "## Attach {#attach}\n\ntext\n\n## Later {#later}\n\ntext\n")
    snap = snapshot(names=("=HYPERLINK(\"http://evil\")", "-1+2", "@SUM(A1)", "Ada", "***"))
    run = store.start_run(snap["learners"][3]["id"], "bridges", "look", "ip link", None)
    store.append_chunk(run, 0, b"eth0 UP\n")
    store.finish_run(run, "done", exit_code=0)
    return zipfile.ZipFile(io.BytesIO(archive(snap, [load_lab(lab_path)], store)))


def test_the_archive_holds_the_tables_and_every_learners_notebook(results):
    names = results.namelist()
    assert names[:3] == ["results.csv", "results.json", "junit.xml"]
    assert names[3:] == ["notebooks/001-HYPERLINK-http-evil/bridges.md", "notebooks/002-1-2/bridges.md",
                         "notebooks/003-SUM-A1/bridges.md", "notebooks/004-Ada/bridges.md",
                         "notebooks/005-learner/bridges.md"]
    ada = results.read("notebooks/004-Ada/bridges.md").decode()
    assert ada.startswith("# Bridges\n") and "eth0 UP" in ada
    assert "eth0 UP" not in results.read("notebooks/005-learner/bridges.md").decode()


def test_no_cell_of_the_csv_can_be_taken_for_a_formula(results):
    table = list(csv.DictReader(io.StringIO(results.read("results.csv").decode())))
    assert {r["name"] for r in table} == {"'=HYPERLINK(\"http://evil\")", "'-1+2", "'@SUM(A1)", "Ada", "***"}
    assert all(not v[:1] in "=+-@" or v == "" for r in table for v in r.values())


def test_the_json_keeps_the_names_as_they_are(results):
    data = json.loads(results.read("results.json"))
    assert data["labs"][0]["id"] == "bridges" and data["results"][0]["name"] == "=HYPERLINK(\"http://evil\")"
    assert len(data["results"]) == 15 and data["exported"].endswith("Z")
