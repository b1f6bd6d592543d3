"""A lab's hosts and images in its file (docs/lab-format.md, "Hosts" and "Images"): every rule, each
problem at its line and saying what to do; a lab without them parses as it always did."""
from __future__ import annotations

import pytest

from webapp.lab import Check, Command, Match, check_lab, load_lab

STEP = "## S\n\n```sh\ntrue\n```\n"


def write(tmp_path, front: str, body: str = STEP):
    path = tmp_path / "lab.md"
    path.write_text(f"---\ntitle: T\n{front}---\n{body}")
    return path


def problems(tmp_path, front: str, body: str = STEP) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in check_lab(write(tmp_path, front, body))]


def test_a_lab_without_hosts_has_one_unnamed_host_and_its_blocks_none(tmp_path):
    lab = load_lab(write(tmp_path, "terminals: [b1]\n", '## S\n\n```sh {"terminal": "b1"}\nls\n```\n\n'
                                                      '```check {"hint": "h"}\ntrue\n```\n'))
    assert lab.hosts == [] and lab.images == [] and lab.terminal_hosts == {}
    assert lab.terminal_host("b1") is None
    assert [b.host for b in lab.steps[0].blocks if isinstance(b, (Command, Check))] == [None, None]


def test_blocks_name_their_host_and_the_first_is_the_default(tmp_path):
    body = ('## S\n\n```sh\nhostname\n```\n\n```sh {"host": "node2"}\ntouch /only-here\n```\n\n'
            '```check {"hint": "h", "host": "node2"}\ntest -e /only-here\n```\n\n'
            '```check {"hint": "h"}\n! test -e /only-here\n```\n\n'
            '```match {"hint": "h", "host": "node2"}\nx\n```\n\n```match {"hint": "h"}\ny\n```\n')
    lab = load_lab(write(tmp_path, "hosts: [node1, node2]\n", body))
    assert lab.hosts == ["node1", "node2"]
    hosts = [(type(b).__name__, b.host) for b in lab.steps[0].blocks if not hasattr(b, "md")]
    # a match without host reads every host's output, as a match always read the whole step's
    assert hosts == [("Command", "node1"), ("Command", "node2"), ("Check", "node2"), ("Check", "node1"),
                     ("Match", "node2"), ("Match", None)]


def test_terminals_are_on_the_first_host_or_on_the_one_they_name(tmp_path):
    body = ('## S\n\n```sh {"terminal": "t2"}\nls\n```\n\n```sh {"terminal": "web"}\nls\n```\n\n'
            '```match {"hint": "h", "terminal": "t2"}\nx\n```\n')
    lab = load_lab(write(tmp_path, "terminals: [web, {name: t2, host: node2}]\nhosts: [node1, node2]\n", body))
    assert lab.terminals == ["web", "t2"] and lab.terminal_hosts == {"t2": "node2"}
    assert (lab.terminal_host("web"), lab.terminal_host("t2")) == ("node1", "node2")
    t2, web, match = [b for b in lab.steps[0].blocks if isinstance(b, (Command, Match))]
    assert (t2.host, web.host, match.host) == ("node2", "node1", "node2")


def test_a_block_may_repeat_its_terminals_host(tmp_path):
    body = '## S\n\n```sh {"terminal": "t2", "host": "node2"}\nls\n```\n'
    assert problems(tmp_path, "hosts: [node1, node2]\nterminals: [{name: t2, host: node2}]\n", body) == []


def test_images_are_kept_as_written_once_each(tmp_path):
    lab = load_lab(write(tmp_path, "images: [nginx:1.27, registry.example/team/tool:2]\n"))
    assert lab.images == ["nginx:1.27", "registry.example/team/tool:2"]


@pytest.mark.parametrize("front, line, fragment", [
    ("hosts: [node1, Node2]\n", 3, "hosts: bad host name 'Node2': use a-z, 0-9 and '-', starting with a letter"),
    ("hosts: [node1, 2nd]\n", 3, "bad host name '2nd'"),
    ("hosts: [node1, n_2]\n", 3, "bad host name 'n_2'"),
    ("hosts: [node1, a234567890123456x]\n", 3, "at most 16 characters"),
    ("hosts: [node1, node1]\n", 3, "hosts: 'node1' is listed twice"),
    ("hosts: [a, b, c, d, e, f]\n", 3, "hosts: 6 hosts, at most 5"),
    ("hosts: []\n", 3, "hosts is empty: leave it out for one lab host"),
    ("hosts: node1\n", 3, "hosts must be a list of strings, like [node1, node2]"),
    ("summary: s\nhosts: [node1, 7]\n", 4, "hosts must be a list of strings"),
    ("images: [nginx:1.27, NGINX]\n", 3, "images: "),
    ("images: [nginx:1.27, nginx:1.27]\n", 3, "images: 'nginx:1.27' is listed twice"),
    ("images: nginx\n", 3, "images must be a list of strings, like [nginx:1.27]"),
    ("terminals: [{name: t2, host: node2}]\n", 3, "terminals: 't2' names host 'node2', but the lab has one lab "
                                                 "host: declare them all in hosts"),
    ("hosts: [node1, node2]\nterminals: [{name: t2, host: node3}]\n", 4,
     "terminals: 't2' is on unknown host 'node3' (did you mean"),
    ("terminals: [{name: t2}]\n", 3, "must be a name, or {name: NAME, host: HOST} with both"),
    ("terminals: [{name: t2, host: node1, shell: zsh}]\n", 3, "must be a name, or {name: NAME, host: HOST}"),
    ("terminals: [7]\n", 3, "terminals: 7 must be a name, like b1"),
    ("terminals: [b1, {name: b1, host: node1}]\nhosts: [node1]\n", 3, "terminals: 'b1' is listed twice"),
    ("terminals: b1\n", 3, "terminals must be a list, like [b1, {name: t2, host: node2}]"),
])
def test_front_matter_problems(tmp_path, front, line, fragment):
    found = problems(tmp_path, front)
    assert any(at == line and fragment in message for at, message in found), found


def test_a_bad_image_name_says_why(tmp_path):
    (line, message), = problems(tmp_path, "images: [nginx:1.27, 'nginx:bad tag']\n")
    assert line == 3 and message.startswith("images: ") and "nginx:bad tag" in message


def test_a_hosts_problem_is_reported_once_and_every_problem_of_a_file_at_once(tmp_path):
    found = problems(tmp_path, "hosts: [node1, node1, node1, X]\nimages: [nginx:1.27, nginx:1.27]\n")
    assert sorted(found) == sorted([(3, "hosts: 'node1' is listed twice"),
                                    (3, "hosts: bad host name 'X': use a-z, 0-9 and '-', starting with a letter, "
                                        "at most 16 characters (it becomes the host's hostname)"),
                                    (4, "images: 'nginx:1.27' is listed twice")])


@pytest.mark.parametrize("front, block, fragment", [
    ("", '```sh {"host": "node2"}\ntrue\n```',
     "host 'node2', but the lab has one lab host: name its hosts in the front matter, like hosts: [node1, node2]"),
    ("", '```check {"hint": "h", "host": "node1"}\ntrue\n```', "but the lab has one lab host"),
    ("", '```match {"hint": "h", "host": "node1"}\nx\n```', "but the lab has one lab host"),
    ("hosts: [node1, node2]\n", '```sh {"host": "node3"}\ntrue\n```',
     "unknown host 'node3' (did you mean 'node2'?): a block's host is one of the front matter's hosts"),
    ("hosts: [node1, node2]\n", '```check {"hint": "h", "host": "web"}\ntrue\n```',
     "unknown host 'web' (known: node1, node2)"),
    ("hosts: [node1, node2]\n", '```sh {"host": 2}\ntrue\n```', "attribute 'host' must be a string, not a number"),
    ("hosts: [node1, node2]\nterminals: [{name: t2, host: node2}]\n", '```sh {"terminal": "t2", "host": "node1"}\n'
     'ls\n```', "terminal 't2' is on host 'node2', not 'node1': a block typed into a terminal runs on the "
                "terminal's host"),
    ("hosts: [node1, node2]\nterminals: [b1]\n", '```match {"hint": "h", "terminal": "b1", "host": "node2"}\nx\n```',
     "terminal 'b1' is on host 'node1', not 'node2'"),
])
def test_block_host_problems_at_the_blocks_line(tmp_path, front, block, fragment):
    body = f"## S\n\nSome text.\n\n{block}\n"
    line = 3 + front.count("\n") + 5   # ---, title, the front matter, ---, the heading, text
    found = problems(tmp_path, front, body)
    assert any(at == line and fragment in message for at, message in found), (line, found)


def test_a_block_with_a_host_problem_is_not_run(tmp_path):
    """A problem in a block makes the lab refuse to load, as any block problem does: never a run on a guess."""
    path = write(tmp_path, "hosts: [node1]\n", '## S\n\n```sh {"host": "node9"}\ntrue\n```\n')
    with pytest.raises(Exception, match=r"lab.md:7: unknown host 'node9'"):
        load_lab(path)


def test_one_named_host_is_allowed(tmp_path):
    lab = load_lab(write(tmp_path, "hosts: [solo]\n", '## S\n\n```sh {"host": "solo"}\ntrue\n```\n'))
    assert lab.hosts == ["solo"] and lab.steps[0].commands[0].host == "solo"


def test_the_documented_example_of_hosts_parses_as_it_says(tmp_path):
    """docs/lab-format.md's example under "Hosts": its one ````md fence."""
    from pathlib import Path

    from markdown_it import MarkdownIt
    doc = (Path(__file__).resolve().parents[2] / "docs" / "lab-format.md").read_text(encoding="utf-8")
    example, = [t.content for t in MarkdownIt("commonmark").parse(doc) if t.type == "fence" and t.info == "md"]
    path = tmp_path / "doc.md"
    path.write_text(example)
    lab = load_lab(path)
    assert lab.hosts == ["node1", "node2"] and lab.images == ["nginx:1.27"]
    assert (lab.terminal_host("b1"), lab.terminal_host("c2")) == ("node1", "node2")
    web, shells = lab.steps
    assert [c.host for c in web.commands] == ["node1", "node2"]
    assert [c.host for c in web.checks] == ["node2", "node1"]
    assert shells.commands[0].host == "node2" and shells.checks[0].host == "node2"
