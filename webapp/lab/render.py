"""Lab Markdown to HTML for the browser. Raw HTML is off: a lab's text must
not be able to put markup or scripts into the page."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from .parse import _plain, split_info

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def _fence(self, tokens, idx, options, env) -> str:
    """Like markdown-it's, but the class is the language alone, without a Runme-style attribute object."""
    tok = tokens[idx]
    lang = split_info(tok.info)[0]
    cls = f' class="language-{escapeHtml(lang)}"' if lang else ""
    return f"<pre><code{cls}>{escapeHtml(tok.content)}</code></pre>\n"


_MD.add_render_rule("fence", _fence)


def render_markdown(md: str) -> str:
    return _MD.render(md)


def render_intro(md: str, title: str) -> str:
    """The intro under a page whose one ``<h1>`` is the lab's title (templates/lab.html): its ``#`` heading that
    says the title again is left out (it usually does, docs/lab-format.md), another ``#`` becomes an ``<h2>``."""
    tokens = _MD.parse(md)
    kept = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open" and tok.tag == "h1":
            if _plain(tokens[i + 1].content) == title.strip():
                i += 3   # open, inline, close
                continue
            tok.tag = tokens[i + 2].tag = "h2"
        kept.append(tok)
        i += 1
    return _MD.renderer.render(kept, _MD.options, {})
