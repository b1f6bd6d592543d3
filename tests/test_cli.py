"""`labnb check`: what a lab author and CI run before anything else; it must
pass on the built-in labs and point at every problem by file and line."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from webapp.commands.cli import main

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "fixtures" / "broken" / "bad.md"


def check(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def test_check_builtin_labs():
    result = check(str(ROOT / "labs"))
    assert result.exit_code == 0, result.output
    labs = sorted((ROOT / "labs").glob("*.md"))
    assert len(labs) == 4
    assert result.output.splitlines() == [f"{lab}: OK" for lab in labs]


def test_check_broken_lab_lists_every_problem():
    result = check(str(BROKEN), str(ROOT / "labs" / "02-netns-veth.md"))
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith(str(BROKEN))]
    assert problems == [
        f"{BROKEN}:3: unknown front matter key 'tiltle' (did you mean 'title'?)",
        f"{BROKEN}:9: a check needs a hint: what to look at when it fails",
        f"{BROKEN}:15: unknown terminal 'nope': list it in the front matter's terminals (none are declared)",
    ]
    assert all(re.match(r"\S+:\d+: ", line) for line in problems)
    assert f"{ROOT / 'labs' / '02-netns-veth.md'}: OK" in result.output
    assert "1 of 2 lab(s) have problems" in result.output


def test_check_missing_file_and_empty_dir(tmp_path):
    result = check(str(tmp_path / "nope.md"))
    assert result.exit_code == 1 and f"{tmp_path / 'nope.md'}: file not found" in result.output
    result = check(str(tmp_path))
    assert result.exit_code == 2 and "no *.md lab files" in result.output
