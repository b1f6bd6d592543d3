"""Labs: Markdown files whose steps hold shell commands and checks.
The format is described in docs/lab-format.md."""

from .model import Check, Command, Lab, LabError, Match, Problem, Prose, Sample, Step, plain_text
from .parse import check_lab, load_lab, load_labs
from .render import render_intro, render_markdown

__all__ = [
    "Check", "Command", "Lab", "LabError", "Match", "Problem", "Prose", "Sample", "Step",
    "check_lab", "load_lab", "load_labs", "plain_text", "render_intro", "render_markdown",
]
