"""The lab format's units (webapp/lab/): the model, the value rules called directly, the parser's less
travelled paths and the renderer. (tests/test_labformat.py holds the built-in labs, the documented example
and the catalogue of broken files.)"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from webapp.lab import Check, Command, Lab, LabError, Match, Problem, Prose, Step, check_lab, load_lab, load_labs
from webapp.lab import plain_text, render_markdown, validate
from webapp.lab.parse import split_info

HEAD = "---\ntitle: T\nterminals: [b1]\n---\n"


def lab_file(tmp_path: Path, text: str, name: str = "lab.md") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


class Reported(list):
    """A ``report(line, message)`` that keeps what it is told."""

    def __call__(self, line: int, message: str) -> None:
        self.append((line, message))


# -- the model ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, seen", [
    ("\x1b[1;34mdata\x1b[m", "data"),
    ("a\r\nb\r\r\nc\rd", "a\nb\nc\nd"),
    ("\x1b]0;title\x07prompt", "prompt"),
    ("\x1b]8;;http://x\x1b\\link", "link"),
    ("\x1b(Bplain", "plain"),
    ("no escapes\n", "no escapes\n"),
])
def test_plain_text_is_what_a_reader_sees(raw, seen):
    assert plain_text(raw) == seen


def test_a_problem_names_its_file_and_line_or_the_file_alone():
    assert str(Problem("labs/x.md", 7, "bad")) == "labs/x.md:7: bad"
    assert str(Problem("labs/x.md", 0, "file not found")) == "labs/x.md: file not found"


def test_a_lab_error_holds_every_problem_one_a_line():
    problems = [Problem("a.md", 1, "one"), Problem("a.md", 3, "two")]
    err = LabError(problems)
    assert err.problems == problems and str(err) == "a.md:1: one\na.md:3: two"


def test_a_match_looks_at_every_line_of_the_output():
    match = Match(r"^inet 172\.17\.", 1, "h")
    assert match.test("eth0\ninet 172.17.0.2/16\n") and not match.test("eth0 inet 172.17.0.2/16")


def test_a_step_lists_its_commands_and_its_verdicts_in_file_order():
    cmd, check, match = Command("echo", 3), Check("true", 6, "h"), Match("ok", 9, "h")
    step = Step(1, "s", "S", 1, [Prose("p"), match, cmd, check])
    assert step.commands == [cmd] and step.checks == [match, check]


def test_a_lab_is_named_by_its_file_and_finds_its_steps_by_id():
    lab = Lab(Path("/labs/02-netns.md"), "T", steps=[Step(1, "a", "A", 5), Step(2, "b", "B", 9)])
    assert lab.id == "02-netns" and lab.step("b").index == 2 and lab.step("c") is None


# -- fences' info strings ------------------------------------------------------------------------

@pytest.mark.parametrize("info, parts", [
    ("sh", ("sh", "")), ('sh {"timeout": 5}', ("sh", '{"timeout": 5}')), ('sh{"run": false}', ("sh", '{"run": false}')),
    ("  check  {}  ", ("check", "{}")), ("", ("", "")), ('{"a": 1}', ("", '{"a": 1}')), ("text extra words", ("text", "extra words")),
])
def test_split_info(info, parts):
    assert split_info(info) == parts


# -- the value rules, called directly ----------------------------------------------------------------

def test_front_matter_gives_the_lab_fields_it_names():
    reported = Reported()
    out = validate.front_matter({"title": "  T  ", "summary": " s ", "duration": "1h", "requires": ["docker"],
                                 "terminals": ["b1", "b2"], "setup": "a\n", "cleanup": "b"}, {}, reported)
    assert reported == []
    assert out == {"title": "T", "summary": "s", "duration_min": 60, "requires": ["docker"], "terminals": ["b1", "b2"],
                   "setup": "a\n", "cleanup": "b"}


def test_an_empty_summary_is_allowed_an_empty_title_is_not():
    reported = Reported()
    out = validate.front_matter({"title": " ", "summary": ""}, {"title": 2, "summary": 3}, reported)
    assert out == {"summary": ""} and reported == [(2, "title is empty")]


def test_a_terminal_listed_twice_is_reported_once_and_kept_once():
    reported = Reported()
    out = validate.front_matter({"title": "T", "terminals": ["b1", "b1", "b1"]}, {"terminals": 4}, reported)
    assert out["terminals"] == ["b1"] and reported == [(4, "terminals: 'b1' is listed twice")]


@pytest.mark.parametrize("name, good", [("b1", True), ("a" * 32, True), ("web_1-x", True), ("a" * 33, False),
                                        ("1b", False), ("B1", False), ("-b", False), ("", False)])
def test_terminal_names(name, good):
    reported = Reported()
    validate.front_matter({"title": "T", "terminals": [name]}, {}, reported)
    assert (reported == []) is good


def test_a_block_with_every_attribute_becomes_a_command():
    reported = Reported()
    cmd = validate.block("bash", "ping x", {"terminal": "b1", "timeout": 20, "endless": True, "stop_after": 2.5,
                                            "run": False, "name": "pinger"}, 7, ["b1"], reported)
    assert reported == []
    assert cmd == Command("ping x", 7, "b1", 20, False, True, 2.5, False, "pinger")


def test_a_check_and_a_match_become_their_models():
    reported = Reported()
    assert validate.block("check", "test -e /x", {"hint": "make /x", "timeout": 5}, 3, [], reported) == Check(
        "test -e /x", 3, "make /x", 5)
    assert validate.block("match", "^ok$", {"hint": "say ok", "terminal": "b1"}, 9, ["b1"], reported) == Match(
        "^ok$", 9, "say ok", "b1")
    assert reported == []


def test_a_block_with_any_mistake_is_none_and_every_mistake_is_reported():
    reported = Reported()
    assert validate.block("sh", "", {"timeout": 0, "color": 1}, 5, [], reported) is None
    assert [line for line, _ in reported] == [5, 5, 5]
    assert {m.split(" ")[0] for _, m in reported} == {"unknown", "timeout", "empty"}


def test_a_terminal_named_when_none_is_declared_says_so():
    reported = Reported()
    validate.block("sh", "echo", {"terminal": "b1"}, 5, [], reported)
    assert reported == [(5, "unknown terminal 'b1': list it in the front matter's terminals (none are declared)")]


def test_an_endless_block_may_not_stop_at_or_after_its_timeout():
    reported = Reported()
    assert validate.block("sh", "ping x", {"endless": True, "timeout": 3}, 1, [], reported) is None
    assert reported == [(1, "stop_after must be more than 0 and less than the timeout (3 s)")]


def test_an_endless_block_cannot_be_expected_to_fail():
    reported = Reported()
    assert validate.block("sh", "ping x", {"endless": True, "fails": True}, 4, [], reported) is None
    assert reported == [(4, "an endless block is stopped, so it cannot also be expected to fail (fails)")]


def test_a_float_timeout_and_the_largest_timeout_are_fine():
    reported = Reported()
    assert validate.block("sh", "x", {"timeout": 0.5}, 1, [], reported).timeout == 0.5
    assert validate.block("check", "x", {"hint": "h", "timeout": validate.MAX_TIMEOUT}, 1, [], reported)
    assert reported == []


@pytest.mark.parametrize("value, minutes", [
    (" 45 ", 45), ("2h", 120), ("1 hr 5 m", 65), ("1hrs", 60), ("10 mins", 10), ("1 minute", 1), ("1H30M", 90),
    ("0", None), ("0h 0m", None), ("45 sec", None), (4.5, None), (None, None), ([45], None), (0, None),
])
def test_parse_duration_more(value, minutes):
    assert validate.parse_duration(value) == minutes


# -- parsing: paths the broken-lab catalogue does not take ------------------------------------------

def test_a_directory_without_labs_loads_none(tmp_path):
    assert load_labs(tmp_path) == []


def test_load_labs_takes_only_md_files_sorted_by_name(tmp_path):
    lab_file(tmp_path, HEAD + "## S\n\ntext\n", "b.md")
    lab_file(tmp_path, HEAD + "## S\n\ntext\n", "a.md")
    lab_file(tmp_path, "not a lab", "notes.txt")
    assert [lab.id for lab in load_labs(tmp_path)] == ["a", "b"]


def test_an_unreadable_path_is_a_problem_not_a_crash(tmp_path):
    (problem,) = check_lab(tmp_path)   # a directory
    assert problem.line == 0 and problem.message.startswith("cannot read the file: ")


def test_a_lab_without_runnable_blocks_loads_with_prose_only(tmp_path):
    lab = load_lab(lab_file(tmp_path, HEAD + "Intro.\n\n## Read this\n\nJust text.\n"))
    (step,) = lab.steps
    assert lab.intro_md == "Intro." and step.blocks == [Prose("Just text.")] and step.commands == []


def test_an_empty_intro_is_empty_text(tmp_path):
    assert load_lab(lab_file(tmp_path, HEAD + "## S\n\ntext\n")).intro_md == ""


def test_a_longer_fence_holds_a_shorter_one(tmp_path):
    lab = load_lab(lab_file(tmp_path, HEAD + "## S\n\n````sh\ncat <<'EOF'\n```\nEOF\n````\n"))
    assert lab.steps[0].commands[0].text == "cat <<'EOF'\n```\nEOF"


def test_a_tilde_fence_is_a_block_too(tmp_path):
    lab = load_lab(lab_file(tmp_path, HEAD + '## S\n\n~~~sh {"timeout": 9}\necho\n~~~\n'))
    assert lab.steps[0].commands[0].timeout == 9


def test_setup_keeps_its_lines_and_cleanup_is_optional(tmp_path):
    lab = load_lab(lab_file(tmp_path, "---\ntitle: T\nsetup: |\n  a\n  b\n---\n## S\n\ntext\n"))
    assert lab.setup == "a\nb" and lab.cleanup is None


def test_a_steps_line_is_its_headings(tmp_path):
    lab = load_lab(lab_file(tmp_path, HEAD + "\n\n## One\n\ntext\n\n\n## Two\n\ntext\n"))
    assert [(s.index, s.line) for s in lab.steps] == [(1, 7), (2, 12)]


def test_a_step_id_may_be_digits(tmp_path):
    lab = load_lab(lab_file(tmp_path, HEAD + "## Setup {#0}\n\ntext\n"))
    assert lab.steps[0].id == "0" and lab.steps[0].title == "Setup"


def test_a_non_string_front_matter_key_is_reported_as_unknown(tmp_path):
    problems = check_lab(lab_file(tmp_path, "---\ntitle: T\n1: x\n---\n## S\n\ntext\n"))
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [(3, "unknown front matter key 1")]


# -- rendering ------------------------------------------------------------------------------------

def test_a_fence_class_is_its_language_escaped():
    html = render_markdown('```sh"><script>\nx\n```\n')
    assert "<script>" not in html and 'class="language-sh&quot;&gt;&lt;script&gt;"' in html


def test_rendered_code_keeps_its_text_escaped():
    assert render_markdown("`<b>` & *em*") == "<p><code>&lt;b&gt;</code> &amp; <em>em</em></p>\n"


def test_a_tilde_fence_renders_as_code_with_its_language():
    assert render_markdown("~~~check {\"hint\": \"h\"}\ntrue\n~~~\n") == (
        '<pre><code class="language-check">true\n</code></pre>\n')
