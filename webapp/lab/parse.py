"""From a lab's Markdown file to a Lab: the document's structure (front
matter, intro, steps, fenced blocks). The rules for values are in validate.

Line numbers in problems are the file's, 1-based, so an author can jump to
them; markdown-it's token maps give them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from . import validate
from .model import Block, Lab, LabError, Problem, Prose, Sample, Step

_MD = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
_INFO = re.compile(r"([^\s{]*)\s*(.*)", re.S)
_HEADING_ID = re.compile(r"\s*\{#([^}]*)\}\s*$")
_STEP_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")


def load_lab(path: str | Path) -> Lab:
    """Parse a lab file; raise LabError listing every problem if there is any."""
    lab, problems = _parse(Path(path))
    if problems:
        raise LabError(problems)
    return lab


def check_lab(path: str | Path) -> list[Problem]:
    """Every problem in a lab file; an empty list means it loads."""
    return _parse(Path(path))[1]


def load_labs(directory: str | Path) -> list[Lab]:
    """All ``*.md`` labs of a directory, sorted by file name; one LabError for all their problems."""
    labs, problems = [], []
    for path in sorted(Path(directory).glob("*.md")):
        lab, found = _parse(path)
        labs.append(lab)
        problems += found
    if problems:
        raise LabError(problems)
    return labs


def split_info(info: str) -> tuple[str, str]:
    """A fence's info string as (language, attributes text): ``sh {"timeout": 5}``."""
    lang, rest = _INFO.match(info.strip()).groups()
    return lang, rest.strip()


def _parse(path: Path) -> tuple[Lab | None, list[Problem]]:
    problems: list[Problem] = []

    def report(line: int, message: str) -> None:
        problems.append(Problem(str(path), line, message))

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        report(0, "file not found")
        return None, problems
    except OSError as e:
        report(0, f"cannot read the file: {e.strerror}")
        return None, problems
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        report(raw.count(b"\n", 0, e.start) + 1, f"not UTF-8 (byte 0x{raw[e.start]:02x}): save the file as UTF-8")
        return None, problems
    # A BOM is harmless; markdown-it would otherwise see it as text before '---'.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    tokens = _MD.parse(text)

    fields, body_start = {}, 0
    if tokens and tokens[0].type == "front_matter":
        fields = _front_matter(tokens[0].content, report)
        body_start = tokens[0].map[1]
    elif lines[0].strip() == "---":
        report(1, "front matter is not closed: end it with a line '---'")
    else:
        report(1, "no front matter: a lab starts with a line '---', then 'title: ...', then '---'")
    lab = Lab(path, fields.pop("title", ""), **fields)
    _body(lab, tokens, lines, body_start, report)
    return lab, problems


def _front_matter(content: str, report) -> dict:
    """The front matter's fields; its first line is the file's line 2."""
    loader = yaml.SafeLoader(content)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        reason = "; ".join(filter(None, (getattr(e, "context", None), getattr(e, "problem", None))))
        report(2 + (mark.line if mark else 0), f"bad YAML in front matter: {reason or e}")
        return {}
    finally:
        loader.dispose()
    if data is None:
        report(1, "front matter is empty: it needs at least 'title: ...'")
        return {}
    if not isinstance(data, dict):
        report(1, "front matter must be a mapping of keys, like 'title: My lab'")
        return {}
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 2
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in lines:
            report(line, f"front matter key {key_node.value!r} is given twice (also at line {lines[key_node.value]})")
        else:
            lines[key_node.value] = line
    return validate.front_matter(data, lines, report)


def _body(lab: Lab, tokens: list[Token], lines: list[str], start: int, report) -> None:
    """Split the Markdown after the front matter into intro and steps."""
    step: Step | None = None
    cursor = start  # first line not yet given to the intro or a block
    step_lines: dict[int, int] = {}  # step index -> first line after its heading
    first_with_id: dict[str, int] = {}

    def prose_until(end: int) -> None:
        md = _text(lines[cursor:end])
        if step is None:
            lab.intro_md = md
        elif md:
            step.blocks.append(Prose(md))

    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0:
            line = tok.map[0] + 1
            if tok.tag == "h1" and step is not None:
                report(line, "a '#' heading inside a step: steps start with '##', only the intro may have a '#' title")
            if tok.tag != "h2":
                continue
            prose_until(tok.map[0])
            step = _step(len(lab.steps) + 1, tokens[i + 1].content, line, report)
            if step.id in first_with_id:
                report(line, f"duplicate step id {step.id!r} (also the step at line {first_with_id[step.id]}): "
                             "give one of them an id with {#some-id} at the end of its heading")
            first_with_id.setdefault(step.id, line)
            lab.steps.append(step)
            cursor = step_lines[step.index] = tok.map[1]
        elif tok.type == "fence" and _is_block(tok, lines, step, report):
            prose_until(tok.map[0])
            cursor = tok.map[1]
            block = _block(tok, lab, report)
            if block:
                step.blocks.append(block)
    prose_until(len(lines))

    if not lab.steps:
        report(1, "the lab has no steps: each step starts with a '##' heading")
    for s in lab.steps:
        end = lab.steps[s.index].line - 1 if s.index < len(lab.steps) else len(lines)
        if not _text(lines[step_lines[s.index]:end]):
            report(s.line, f"step {s.title!r} is empty: say what to do or see, or remove the heading")


def _step(index: int, heading: str, line: int, report) -> Step:
    step_id = None
    m = _HEADING_ID.search(heading)
    if m:
        heading = heading[:m.start()]
        if _STEP_ID.fullmatch(m[1]):
            step_id = m[1]
        else:
            report(line, f"bad step id {m[1]!r}: use a-z, 0-9, '_' and '-', starting with a letter or digit")
    title = _plain(heading)
    if not title:
        report(line, "empty step title")
    slug = re.sub(r"\W+", "-", title.lower()).strip("-_")
    return Step(index, step_id or slug or f"step-{index}", title, line)


def _is_block(tok: Token, lines: list[str], step: Step | None, report) -> bool:
    """Whether a fence is a block of its step; a fence that is not stays in
    the prose around it, and is reported if it was meant to run."""
    line = tok.map[0] + 1
    lang, rest = split_info(tok.info)
    runnable = lang in validate.RUNNABLE_LANGS
    if not _closed(tok, lines):
        report(line, f"code fence is not closed, so it swallows what follows: close it with a line {tok.markup}")
        return False
    if not runnable and rest.startswith("{"):
        what = f"a {lang} block" if lang else "a block without a language"
        langs = validate.RUNNABLE_LANGS
        report(line, f"only {', '.join(langs[:-1])} and {langs[-1]} blocks take attributes, not {what}")
    if tok.level:
        if runnable:
            report(line, f"a {lang} block inside a list or quote is never run: move it out, unindented")
        return False
    if step is None:
        if runnable:
            report(line, f"a {lang} block before the first step ('##') is never run: move it into a step"
                         + (" or into setup" if lang in validate.SHELL_LANGS else ""))
        return False
    return True


def _block(tok: Token, lab: Lab, report) -> Block | None:
    line = tok.map[0] + 1
    lang, rest = split_info(tok.info)
    body = tok.content.removesuffix("\n")
    if lang not in validate.RUNNABLE_LANGS:
        return Sample(lang, body, line)
    attrs = _attributes(rest, line, report)
    return None if attrs is None else validate.block(lang, body, attrs, line, lab.terminals, report, lab.hosts,
                                                     lab.terminal_hosts)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _DuplicateKey(f"attribute {k!r} is given twice")
    return dict(pairs)


def _attributes(rest: str, line: int, report) -> dict | None:
    if not rest:
        return {}
    try:
        attrs = json.loads(rest, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        report(line, str(e))
        return None
    except ValueError as e:
        report(line, f"attributes are not valid JSON ({getattr(e, 'msg', e)}): {rest}")
        return None
    if not isinstance(attrs, dict):
        report(line, f'attributes must be a JSON object, like {{"timeout": 30}}, not: {rest}')
        return None
    return attrs


def _closed(tok: Token, lines: list[str]) -> bool:
    """markdown-it lets an unclosed fence run to the end of its container;
    only the raw line where it stops tells whether it was really closed."""
    last = tok.map[1] - 1
    if last <= tok.map[0]:
        return False
    fence = re.sub(r"^[\s>]*", "", lines[last]).rstrip()
    return len(fence) >= len(tok.markup) and fence == tok.markup[0] * len(fence)


def _plain(inline_md: str) -> str:
    """A heading's text without Markdown marks: '`--network host`' -> '--network host'."""
    out = []
    for tok in _MD.parseInline(inline_md)[0].children or []:
        if tok.type in ("text", "text_special", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" ")
    return "".join(out).strip()


def _text(lines: list[str]) -> str:
    """Lines as Markdown without the blank lines around them ('' if all blank)."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines)
