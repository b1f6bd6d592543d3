"""The lab format: the built-in labs, the documented example, and broken labs
(each problem reported at its line, with a message that says what is wrong)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from webapp.lab import (
    Check, Command, LabError, Match, Prose, Sample, check_lab, load_lab, load_labs, render_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"

GOOD_HEAD = "---\ntitle: T\nterminals: [b1]\n---\n"  # lines 1-4


def write(tmp_path: Path, text: str | bytes, name: str = "lab.md") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# -- the built-in labs --------------------------------------------------------

EXPECTED_STEPS = {
    "01-network-modes": ["networks", "docker0", "bridge-default", "veth-pair", "inspect", "port-mapping",
                         "two-containers", "container-mode", "separate-fs", "shared-port", "leave-containers", "host-mode",
                         "none-mode"],
    "02-netns-veth": ["list", "add-ns0", "file-exists", "exec", "unreachable", "lo-up", "veth-pair",
                      "add-ns1", "move", "addresses", "ping", "rename"],
    "03-container-ops": ["hostname", "set-hostname", "resolv-conf", "dns", "embedded-dns", "add-host",
                         "daemon-json"],
}


def test_builtin_labs_have_no_problems():
    for path in sorted(LABS.glob("*.md")):
        assert check_lab(path) == [], path


def test_builtin_labs_steps():
    labs = load_labs(LABS)
    assert [lab.id for lab in labs] == sorted(EXPECTED_STEPS)
    for lab in labs:
        assert [s.id for s in lab.steps] == EXPECTED_STEPS[lab.id]
        assert [s.index for s in lab.steps] == list(range(1, len(lab.steps) + 1))
        assert lab.title and lab.summary and lab.duration_min
        for step in lab.steps:
            assert step.commands, (lab.id, step.id)
        # checks on most steps
        assert sum(bool(s.checks) for s in lab.steps) >= len(lab.steps) - 1


def test_network_modes_lab_uses_terminals_for_container_mode():
    lab = load_lab(LABS / "01-network-modes.md")
    assert lab.terminals == ["b1", "b2"]
    assert set(lab.requires) == {"docker", "busybox-image", "iptables", "bridge-utils"}
    step = lab.step("container-mode")
    first = step.commands[0]
    assert first.terminal == "b2" and "--network container:b1" in first.text
    texts = "\n".join(c.text for s in lab.steps for c in s.commands)
    for needle in ("docker network ls", "brctl show", "docker network inspect bridge", "-p 8080:80",
                   "iptables -t nat -vnL", "--network host", "--network none", "ifconfig -a",
                   "httpd -h /tmp", "wget -O - -q 172.17.0.2:80", "mkdir -p /tmp/data"):
        assert needle in texts, needle


def test_netns_lab_shows_failures_and_an_endless_ping():
    lab = load_lab(LABS / "02-netns-veth.md")
    assert "ip netns delete ns0" in lab.cleanup and "ip netns delete ns1" in lab.cleanup
    failing = [c.text for s in lab.steps for c in s.commands if c.fails]
    assert "ip netns add ns0" in failing
    assert any("ping -c 1 127.0.0.1" in t for t in failing)
    endless = [c for s in lab.steps for c in s.commands if c.endless]
    assert len(endless) == 1 and endless[0].stop_after == 3 and "ping 127.0.0.1" in endless[0].text


def test_container_ops_lab_restarts_docker_after_daemon_json():
    lab = load_lab(LABS / "03-container-ops.md")
    texts = [c.text for c in lab.step("daemon-json").commands]
    assert any("/etc/docker/daemon.json" in t and '"dns"' in t for t in texts)
    assert "restart-docker" in texts
    all_text = "\n".join(c.text for s in lab.steps for c in s.commands)
    for needle in ("--hostname daxinyu", "--dns", "--add-host www.a.com:1.1.1.1", "cat /etc/resolv.conf"):
        assert needle in all_text


# -- the documented example -----------------------------------------------------

def doc_example() -> str:
    """The complete example lab in docs/lab-format.md: its one ````markdown fence."""
    tokens = MarkdownIt("commonmark").parse((ROOT / "docs" / "lab-format.md").read_text(encoding="utf-8"))
    examples = [t.content for t in tokens if t.type == "fence" and t.info.strip() == "markdown"]
    assert len(examples) == 1
    return examples[0]


def test_doc_example_parses(tmp_path):
    lab = load_lab(write(tmp_path, doc_example()))
    assert lab.title == "Ports and bridges"
    assert lab.duration_min == 20
    assert lab.terminals == ["web"]
    assert lab.setup and lab.cleanup
    assert lab.intro_md.startswith("# Ports and bridges")
    first, second, third = lab.steps
    assert (first.id, first.title) == ("run-web", "Start a web server")
    assert [type(b) for b in first.blocks] == [Prose, Command, Prose, Sample, Match]
    assert second.id == "look-inside"  # from the title
    web = second.commands[0]
    assert web.terminal == "web" and web.timeout == 30 and web.name == "shell in web"
    assert isinstance(second.checks[0], Check) and second.checks[0].timeout == 10
    endless = third.commands[0]
    assert endless.endless and endless.stop_after == 5
    assert third.commands[1].fails and not third.commands[2].run


# -- broken labs -----------------------------------------------------------------

STEP = "## S\n\n```sh\necho\n```\n"

BROKEN = [
    # id, file text, line, message fragment
    ("bad-yaml", "---\ntitle: T\nsummary: [a\n---\n" + STEP, 3,
     "bad YAML in front matter: while parsing a flow sequence; expected ',' or ']'"),
    ("yaml-tab", "---\ntitle: T\n\tsummary: x\n---\n" + STEP, 3, "bad YAML"),
    ("not-a-mapping", "---\n- a\n- b\n---\n" + STEP, 1, "front matter must be a mapping"),
    ("empty-front-matter", "---\n---\n" + STEP, 1, "front matter is empty"),
    ("no-front-matter", "# T\n\n" + STEP, 1, "no front matter"),
    ("front-matter-not-closed", "---\ntitle: T\n\n" + STEP, 1, "front matter is not closed"),
    ("missing-title", "---\nsummary: s\n---\n" + STEP, 1, "no title"),
    ("empty-title", "---\ntitle: '  '\n---\n" + STEP, 2, "title is empty"),
    ("title-not-string", "---\ntitle: [a]\n---\n" + STEP, 2, "title must be a string"),
    ("unknown-key", "---\ntitle: T\nauthor: me\n---\n" + STEP, 3, "unknown front matter key 'author' (known: title, summary"),
    ("misspelt-key", "---\ntitle: T\nsumary: x\n---\n" + STEP, 3, "unknown front matter key 'sumary' (did you mean 'summary'?)"),
    ("duplicate-key", "---\ntitle: T\ntitle: U\n---\n" + STEP, 3, "'title' is given twice"),
    ("bad-duration", "---\ntitle: T\nduration: soon\n---\n" + STEP, 3, "duration 'soon' not understood"),
    ("zero-duration", "---\ntitle: T\nduration: 0\n---\n" + STEP, 3, "not understood"),
    ("requires-not-list", "---\ntitle: T\nrequires: docker\n---\n" + STEP, 3, "requires must be a list"),
    ("unknown-requires", "---\ntitle: T\nrequires: [docker, kvm]\n---\n" + STEP, 3, "requires: unknown item 'kvm' (known: docker,"),
    ("requires-twice", "---\ntitle: T\nrequires: [docker, docker]\n---\n" + STEP, 3, "'docker' is listed twice"),
    ("bad-terminal-name", "---\ntitle: T\nterminals: [B 1]\n---\n" + STEP, 3, "bad terminal name 'B 1'"),
    ("empty-setup", "---\ntitle: T\nsetup: ''\n---\n" + STEP, 3, "setup is empty"),
    ("cleanup-not-string", "---\ntitle: T\ncleanup: [a]\n---\n" + STEP, 3, "cleanup must be a string"),
    ("not-utf8", b"---\ntitle: T\n---\n## S\n\nCaf\xe9\n", 6, "not UTF-8"),
    ("no-steps", GOOD_HEAD + "Just an intro.\n", 1, "no steps"),
    ("empty-step", GOOD_HEAD + "## Empty\n\n## Full\n\ntext\n", 5, "is empty"),
    ("empty-step-title", GOOD_HEAD + "## {#x}\n\ntext\n", 5, "empty step title"),
    ("bad-step-id", GOOD_HEAD + "## Step {#Bad Id}\n\ntext\n", 5, "bad step id 'Bad Id'"),
    ("duplicate-step-id", GOOD_HEAD + "## Run it\n\ntext\n\n## Run it!\n\ntext\n", 9, "duplicate step id 'run-it'"),
    ("duplicate-explicit-id", GOOD_HEAD + "## A {#x}\n\ntext\n\n## B {#x}\n\ntext\n", 9, "duplicate step id 'x'"),
    ("h1-in-step", GOOD_HEAD + "## S\n\ntext\n\n# Big\n", 9, "'#' heading inside a step"),
    ("unclosed-fence", GOOD_HEAD + "## S\n\n```sh\necho\n\n## T\n\ntext\n", 7, "code fence is not closed"),
    ("unclosed-longer-fence", GOOD_HEAD + "## S\n\n````text\nx\n```\n", 7, "not closed"),
    ("unclosed-in-list", GOOD_HEAD + "## S\n\n- item\n  ```text\n  x\n\nafter\n", 8, "not closed"),
    ("invalid-json", GOOD_HEAD + '## S\n\n```sh {"timeout": 5,}\necho\n```\n', 7, "attributes are not valid JSON"),
    ("attributes-not-object", GOOD_HEAD + '## S\n\n```sh {}\necho\n```\n\n```check ["x"]\ntrue\n```\n', 11,
     'attributes must be a JSON object, like {"timeout": 30}'),
    ("attributes-trailing-text", GOOD_HEAD + '## S\n\n```sh {"a": 1} x\necho\n```\n', 7,
     "attributes are not valid JSON (Extra data)"),
    ("duplicate-attribute", GOOD_HEAD + '## S\n\n```sh {"run": true, "run": false}\necho\n```\n', 7,
     "'run' is given twice"),
    ("unknown-attribute", GOOD_HEAD + '## S\n\n```sh {"tiemout": 5}\necho\n```\n', 7, "unknown attribute 'tiemout' for a sh block (did you mean 'timeout'?)"),
    ("attribute-wrong-type", GOOD_HEAD + '## S\n\n```sh {"fails": "yes"}\necho\n```\n', 7,
     "'fails' must be true or false"),
    ("timeout-not-number", GOOD_HEAD + '## S\n\n```sh {"timeout": "30s"}\necho\n```\n', 7,
     "'timeout' must be a number"),
    ("timeout-negative", GOOD_HEAD + '## S\n\n```sh {"timeout": -1}\necho\n```\n', 7, "more than 0"),
    ("timeout-too-big", GOOD_HEAD + '## S\n\n```sh {"timeout": 7200}\necho\n```\n', 7, "at most 3600"),
    ("check-timeout-zero", GOOD_HEAD + '## S\n\n```check {"hint": "h", "timeout": 0}\ntrue\n```\n', 7,
     "timeout must be more than 0"),
    ("stop-after-without-endless", GOOD_HEAD + '## S\n\n```sh {"stop_after": 3}\nping x\n```\n', 7,
     "stop_after is only for endless"),
    ("stop-after-over-timeout", GOOD_HEAD + '## S\n\n```sh {"endless": true, "stop_after": 9, "timeout": 5}\nping x\n```\n',
     7, "less than the timeout"),
    ("endless-and-fails", GOOD_HEAD + '## S\n\n```sh {"endless": true, "fails": true}\nping x\n```\n', 7,
     "cannot also be expected to fail"),
    ("unknown-terminal", GOOD_HEAD + '## S\n\n```sh {"terminal": "b2"}\necho\n```\n', 7, "unknown terminal 'b2'"),
    ("terminal-not-string", GOOD_HEAD + '## S\n\n```sh {"terminal": 1}\necho\n```\n', 7,
     "'terminal' must be a string"),
    ("match-unknown-terminal", GOOD_HEAD + '## S\n\n```match {"hint": "h", "terminal": "x"}\nok\n```\n', 7,
     "unknown terminal 'x'"),
    ("terminal-on-check", GOOD_HEAD + '## S\n\n```check {"hint": "h", "terminal": "b1"}\ntrue\n```\n', 7,
     "unknown attribute 'terminal' for a check block (known: hint, timeout, host)"),
    ("empty-command", GOOD_HEAD + "## S\n\n```bash\n\n```\n", 7, "empty bash block"),
    ("check-without-command", GOOD_HEAD + '## S\n\ntext\n\n```check {"hint": "h"}\n  \n```\n', 9,
     "check without a command"),
    ("match-without-pattern", GOOD_HEAD + '## S\n\ntext\n\n```match {"hint": "h"}\n```\n', 9,
     "match without a pattern"),
    ("bad-regex", GOOD_HEAD + '## S\n\n```sh\necho\n```\n\n```match {"hint": "h"}\ninet (addr\n```\n', 11,
     "bad regex in match: missing ), unterminated subpattern"),
    ("check-without-hint", GOOD_HEAD + "## S\n\n```check\ntrue\n```\n", 7, "a check needs a hint"),
    ("match-empty-hint", GOOD_HEAD + '## S\n\n```match {"hint": " "}\nx\n```\n', 7, "a match needs a hint"),
    ("check-before-first-step", GOOD_HEAD + 'Intro.\n\n```check {"hint": "h"}\ntrue\n```\n\n' + STEP, 7,
     "check block before the first step"),
    ("command-before-first-step", GOOD_HEAD + "Intro.\n\n```sh\necho\n```\n\n" + STEP, 7, "or into setup"),
    ("command-in-list", GOOD_HEAD + "## S\n\n1. Run:\n\n   ```sh\n   echo\n   ```\n", 9,
     "inside a list or quote is never run"),
    ("command-in-quote", GOOD_HEAD + "## S\n\n> ```sh\n> echo\n> ```\n", 7, "inside a list or quote"),
    ("attributes-on-sample", GOOD_HEAD + '## S\n\ntext\n\n```console {"terminal": "b1"}\n$ echo\n```\n', 9,
     "only sh, bash, shell, check and match blocks take attributes"),
]


@pytest.mark.parametrize("text, line, fragment", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_lab(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    problems = check_lab(path)
    assert any(p.line == line and fragment in p.message for p in problems), "\n".join(map(str, problems))
    with pytest.raises(LabError) as err:
        load_lab(path)
    assert f"{path}:{line}: " in str(err.value)


def test_enough_kinds_of_broken_labs():
    assert len(BROKEN) >= 30 and len({c[0] for c in BROKEN}) == len(BROKEN)


def test_file_not_found(tmp_path):
    (problem,) = check_lab(tmp_path / "missing.md")
    assert problem.line == 0 and str(problem) == f"{tmp_path / 'missing.md'}: file not found"


def test_all_problems_are_reported_not_only_the_first(tmp_path):
    path = write(tmp_path, GOOD_HEAD.replace("title: T\n", "title: T\nlevel: 3\n") + (
        '## S\n\n```sh {"timeout": 0, "fails": 1}\n\n```\n\n'
        '```match\n(\n```\n'))
    found = sorted((p.line, p.message.split(":")[0].split(" (")[0]) for p in check_lab(path))
    assert found == [
        (3, "unknown front matter key 'level'"),
        (8, "attribute 'fails' must be true or false, not a number"),
        (8, "empty sh block"),
        (8, "timeout must be more than 0 and at most 3600 seconds, not 0"),
        (12, "a match needs a hint"),
        (12, "bad regex in match"),
    ]


def test_load_labs_reports_problems_of_every_file(tmp_path):
    write(tmp_path, "---\ntitle: A\n---\n" + STEP, "a.md")
    write(tmp_path, "---\ntitle: B\nfoo: 1\n---\n" + STEP, "b.md")
    write(tmp_path, "# no front matter\n" + STEP, "c.md")
    with pytest.raises(LabError) as err:
        load_labs(tmp_path)
    assert [(Path(p.path).name, p.line) for p in err.value.problems] == [("b.md", 3), ("c.md", 1)]
    assert len(str(err.value).splitlines()) == 2


# -- details that are easy to get wrong --------------------------------------------

def test_bom_and_crlf_are_accepted(tmp_path):
    path = write(tmp_path, ("\ufeff---\r\ntitle: T\r\n---\r\n## S\r\n\r\n```sh\r\necho\r\n```\r\n").encode("utf-8"))
    lab = load_lab(path)
    assert lab.steps[0].commands[0].text == "echo" and lab.steps[0].commands[0].line == 6


def test_durations():
    from webapp.lab.validate import parse_duration
    cases = {45: 45, "45": 45, "30m": 30, "1h": 60, "45 min": 45, "1h 30m": 90, "2 hours": 120,
             "90 minutes": 90, "1.5h": None, "": None, True: None, -5: None, "h": None}
    assert {k: parse_duration(k) for k in cases} == cases


def test_step_ids_and_titles(tmp_path):
    lab = load_lab(write(tmp_path, GOOD_HEAD + (
        "Intro\n\n## Host mode: `--network host`\n\ntext\n\n## Über *alles* {#uber}\n\ntext\n\n"
        "## !!!\n\ntext\n\nSetext step\n-----------\n\ntext\n")))
    assert [(s.id, s.title, s.line) for s in lab.steps] == [
        ("host-mode-network-host", "Host mode: --network host", 7),
        ("uber", "Über alles", 11),
        ("step-3", "!!!", 15),
        ("setext-step", "Setext step", 19),
    ]


def test_blocks_keep_file_order_and_prose_between(tmp_path):
    lab = load_lab(write(tmp_path, GOOD_HEAD + (
        "## S\n\nFirst.\n\n```sh {\"terminal\": \"b1\", \"name\": \"enter\"}\ndocker run -it busybox\n```\n\n"
        "Between.\n\n### A sub-heading is prose\n\n```\nno language\n```\n\n```shell {\"run\": false}\nrm -rf /\n```\n"
        "```match {\"hint\": \"h\", \"terminal\": \"b1\"}\n^/ # \n```\n\n"
        "- a list with a sample:\n  ```text\n  in the list\n  ```\n")))
    (step,) = lab.steps
    kinds = [(type(b).__name__, getattr(b, "line", None)) for b in step.blocks]
    assert kinds == [("Prose", None), ("Command", 9), ("Prose", None), ("Sample", 17), ("Command", 21),
                     ("Match", 24), ("Prose", None)]
    assert step.blocks[2].md == "Between.\n\n### A sub-heading is prose"
    assert step.blocks[3] == Sample("", "no language", 17)
    assert step.commands[1].run is False and step.commands[0].name == "enter"
    assert step.blocks[-1].md.startswith("- a list") and "in the list" in step.blocks[-1].md
    assert step.checks == [step.blocks[5]]


def test_command_defaults(tmp_path):
    lab = load_lab(write(tmp_path, GOOD_HEAD + '## S\n\n```sh\necho\n```\n\n```sh {"endless": true}\nping x\n```\n'
                                              '\n```check {"hint": "h"}\ntrue\n```\n'))
    plain, endless = lab.steps[0].commands
    assert plain == Command("echo", 7, None, 60, False, False, None, True, None)
    assert endless.endless and endless.stop_after == 3
    assert lab.steps[0].checks[0].timeout == 30


def test_match_sees_terminal_output_as_text():
    m = Match(r"^data$", 1, "h")
    assert m.test("/ # ls /tmp\r\n\x1b[1;34mdata\x1b[m\r\n/ # ")
    assert not m.test("/ # ls /tmp\r\n/ # ")


# -- rendering -------------------------------------------------------------------

def test_render_markdown_escapes_html():
    html = render_markdown('<script>alert(1)</script>\n\nHi <b onclick="x()">there</b> '
                           "[link](javascript:alert(1))\n")
    assert "<script>" not in html and "<b " not in html
    assert "&lt;script&gt;" in html and "&lt;b onclick" in html
    assert 'href="javascript:' not in html


def test_render_markdown_tables_and_code_classes():
    html = render_markdown('| a | b |\n|---|---|\n| 1 | 2 |\n\n```sh {"terminal": "b1"}\necho <x>\n```\n\n'
                           "```\nplain\n```\n")
    assert "<table>" in html and "<td>1</td>" in html
    assert '<pre><code class="language-sh">echo &lt;x&gt;\n</code></pre>' in html
    assert "<pre><code>plain\n</code></pre>" in html
