"""A lab as Markdown with every step's last output: what a learner keeps
when the workshop is over."""
from __future__ import annotations

import re
import time

from ..lab import Command, Lab, Match, Prose, Sample, plain_text
from ..status import label
from ..store import Store

HEAD_BYTES = TAIL_BYTES = 64 << 10   # an export shows the ends of a longer output


def _fence(text: str, lang: str = "") -> str:
    """A fenced block longer than any backtick run in ``text``, so output cannot close it."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * (longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def _output(store: Store, run: dict) -> str:
    head, tail, total, omitted = store.output_head_tail(run["id"], HEAD_BYTES, TAIL_BYTES)
    text = plain_text(head.decode(errors="replace"))
    if omitted:
        text += f"\n[... {omitted} bytes omitted: download the whole log from the lab page ...]\n"
        text += plain_text(tail.decode(errors="replace"))
    return text


def _status(run: dict) -> str:
    parts = [label(run["status"])]
    if run["exit_code"] is not None:
        parts.append(f"exit code {run['exit_code']}")
    if run["duration"] is not None:
        parts.append(f"{run['duration']:.1f} s")
    parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(run["started"])))
    return ", ".join(parts)


def export_markdown(lab: Lab, store: Store, learner: str) -> str:
    last = store.last_runs(learner, lab.id)
    passed, total = store.progress(learner, lab.id, [s.id for s in lab.steps])
    out = [f"# {lab.title}\n", f"Exported from labnb: {passed} of {total} steps passed.\n"]
    if lab.summary:
        out.append(lab.summary + "\n")
    for step in lab.steps:
        out.append(f"## {step.index}. {step.title}\n")
        for block in step.blocks:
            if isinstance(block, Prose):
                out.append(block.md + "\n")
            elif isinstance(block, Sample):
                out.append(_fence(block.text, block.lang))
            elif isinstance(block, Command):
                label = f" (in terminal {block.terminal})" if block.terminal else ""
                if label:
                    out.append(f"Typed{label}:\n")
                out.append(_fence(block.text, "sh"))
        run = last.get(step.id)
        if run is None:
            out.append("*Not run.*\n")
            continue
        out.append(f"Output ({_status(run)}):\n")
        out.append(_fence(_output(store, run), "text"))
        verdicts = {c["idx"]: c for c in run["checks"]}
        for idx, check in enumerate(step.checks):
            v = verdicts.get(idx)
            mark = "not run" if v is None else ("passed" if v["passed"] else "failed")
            what = f"output matches /{check.pattern}/" if isinstance(check, Match) else "check"
            line = f"- {what}: **{mark}**"
            if v is not None and not v["passed"] and check.hint:
                line += f": {check.hint}"
            out.append(line + ("\n" if idx == len(step.checks) - 1 else ""))
    return "\n".join(out)
