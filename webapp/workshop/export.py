"""A workshop's results as one zip archive, for the instructor's records
and for graders: each learner's notebook of each lab as Markdown (what the
learner's own Export gives), every learner x step state with its times as
CSV and JSON, and JUnit XML (a test suite per learner and lab, a test case
per step) for tools that read test results."""
from __future__ import annotations

import csv
import io
import json
import re
import time
import xml.etree.ElementTree as ET
import zipfile

from ..notebook.export import export_markdown

COLUMNS = ["learner", "name", "place", "lab", "step_no", "step", "title", "state", "status", "started", "ended",
           "duration_s"]


def _cell(value):
    """A spreadsheet must not take a learner's text for a formula (CSV injection): such text gets a quote."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def rows(snapshot: dict) -> list[dict]:
    """One row per learner and step of the snapshot (Workshop.snapshot), in the labs' order."""
    out = []
    for learner in snapshot["learners"]:
        for lab in snapshot["workshop"]["labs"]:
            for no, step in enumerate(lab["steps"], 1):
                s = learner["steps"][lab["id"]][step["id"]]
                started, ended = s.get("started"), s.get("ended")
                out.append({"learner": learner["id"], "name": learner["name"], "place": learner["place"],
                            "lab": lab["id"], "step_no": no, "step": step["id"], "title": step["title"],
                            "state": s["state"], "status": s.get("status", ""), "started": _iso(started),
                            "ended": _iso(ended),
                            "duration_s": round(ended - started, 3) if started and ended else ""})
    return out


def _iso(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else ""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40] or "learner"


def junit(snapshot: dict) -> bytes:
    root = ET.Element("testsuites", name="workshop")
    for learner in snapshot["learners"]:
        for lab in snapshot["workshop"]["labs"]:
            suite = ET.SubElement(root, "testsuite", name=f"{learner['name']}: {lab['id']}")
            counts = {"failed": 0, "skipped": 0}
            for no, step in enumerate(lab["steps"], 1):
                s = learner["steps"][lab["id"]][step["id"]]
                case = ET.SubElement(suite, "testcase", classname=f"{lab['id']}.{_slug(learner['name'])}",
                                     name=f"{no:02d} {step['id']}: {step['title']}")
                if s.get("started") and s.get("ended"):
                    case.set("time", f"{s['ended'] - s['started']:.3f}")
                if s["state"] == "failed":
                    counts["failed"] += 1
                    ET.SubElement(case, "failure", message=f"the step's last run: {s.get('status')}",
                                  type=s.get("status", "failed"))
                elif s["state"] != "passed":
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=s["state"].replace("_", " "))
            suite.set("tests", str(len(lab["steps"])))
            suite.set("failures", str(counts["failed"]))
            suite.set("skipped", str(counts["skipped"]))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def archive(snapshot: dict, labs: list, store) -> bytes:
    """The zip archive of the workshop whose state is ``snapshot``."""
    table = rows(snapshot)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in table)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("results.csv", text.getvalue())
        z.writestr("results.json", json.dumps({"exported": _iso(time.time()), "labs": snapshot["workshop"]["labs"],
                                               "results": table}, indent=1, ensure_ascii=False))
        z.writestr("junit.xml", junit(snapshot))
        for no, learner in enumerate(snapshot["learners"], 1):
            for lab in labs:
                z.writestr(f"notebooks/{no:03d}-{_slug(learner['name'])}/{lab.id}.md",
                           export_markdown(lab, store, learner["id"]))
    return buf.getvalue()
