"""A lab as Markdown with each step's last output (webapp/notebook/export.py): what a learner keeps."""
from __future__ import annotations

import re

import pytest

from webapp.lab import load_lab
from webapp.notebook import export
from webapp.notebook.export import export_markdown

LAB = """---
title: Bridges
summary: How containers meet.
terminals: [b1]
---
Intro is not exported.

## Look {#look}

Run this:

```sh
ip -br link
```

```text
lo UNKNOWN
```

```match {"hint": "is docker0 there?"}
docker0
```

## Attach {#attach}

```sh {"terminal": "b1"}
docker attach b1
```

```check {"hint": "start b1 first"}
docker inspect b1
```

## Later {#later}

Nothing run here yet.

```sh
true
```
"""


@pytest.fixture
def lab(tmp_path):
    path = tmp_path / "bridges.md"
    path.write_text(LAB)
    return load_lab(path)


def ran(store, step, output: bytes, status="done", exit_code=0, checks=()):
    run = store.start_run("ada", "bridges", step, "cmd", None)
    if output:
        store.append_chunk(run, 0, output)
    for idx, ok in checks:
        store.record_check(run, idx, "output", ok)
    store.finish_run(run, status, exit_code=exit_code)
    return run


def test_an_untouched_lab_is_its_text_with_nothing_run(lab, store):
    md = export_markdown(lab, store, "ada")
    assert md.startswith("# Bridges\n\nExported from labnb: 0 of 3 steps passed.\n\nHow containers meet.\n")
    assert md.count("*Not run.*") == 3 and "Intro is not exported" not in md
    assert "## 1. Look\n" in md and "## 3. Later\n" in md


def test_blocks_are_fenced_with_their_language_and_a_terminals_command_says_where_it_was_typed(lab, store):
    md = export_markdown(lab, store, "ada")
    assert "```sh\nip -br link\n```\n" in md and "```text\nlo UNKNOWN\n```\n" in md
    assert "Typed (in terminal b1):\n\n```sh\ndocker attach b1\n```" in md


def test_a_run_step_shows_its_status_output_and_verdicts(lab, store):
    ran(store, "look", b"\x1b[1mdocker0\x1b[0m UP\r\n", checks=[(0, True)])
    md = export_markdown(lab, store, "ada")
    assert "Exported from labnb: 1 of 3 steps passed." in md
    assert re.search(r"Output \(done, exit code 0, \d+\.\d s, \d{4}-\d\d-\d\d \d\d:\d\d\):\n\n```text\ndocker0 UP\n```",
                     md)
    assert "- output matches /docker0/: **passed**\n" in md


def test_a_failed_verdict_carries_its_hint_and_one_not_recorded_says_so(lab, store):
    ran(store, "attach", b"no such container\n", status="failed", exit_code=1, checks=[(0, False)])
    ran(store, "look", b"lo\n")
    md = export_markdown(lab, store, "ada")
    assert "Output (failed, exit code 1," in md
    assert "- check: **failed**: start b1 first" in md
    assert "- output matches /docker0/: **not run**" in md


def test_only_the_last_run_of_a_step_is_exported(lab, store):
    ran(store, "look", b"first try\n")
    ran(store, "look", b"second try\n")
    md = export_markdown(lab, store, "ada")
    assert "second try" in md and "first try" not in md


def test_another_learners_runs_are_not_in_the_export(lab, store):
    run = store.start_run("bob", "bridges", "look", "cmd", None)
    store.append_chunk(run, 0, b"bob was here\n")
    assert "bob was here" not in export_markdown(lab, store, "ada")


def test_output_with_backticks_cannot_close_its_fence(lab, store):
    ran(store, "look", b"````\n# not a heading of the export\n")
    md = export_markdown(lab, store, "ada")
    assert "`````text\n````\n# not a heading of the export\n`````" in md


def test_a_long_output_shows_its_ends_and_what_was_left_out(lab, store, monkeypatch):
    monkeypatch.setattr(export, "HEAD_BYTES", 10)
    monkeypatch.setattr(export, "TAIL_BYTES", 10)
    ran(store, "look", b"HEAD-12345" + b"m" * 100 + b"12345-TAIL")
    md = export_markdown(lab, store, "ada")
    assert "HEAD-12345\n[... 100 bytes omitted: download the whole log from the lab page ...]\n12345-TAIL" in md


def test_a_run_still_running_shows_its_output_so_far_without_an_exit_code(lab, store):
    run = store.start_run("ada", "bridges", "look", "cmd", None)
    store.append_chunk(run, 0, b"so far\n")
    md = export_markdown(lab, store, "ada")
    assert re.search(r"Output \(running, \d{4}-", md) and "so far" in md
