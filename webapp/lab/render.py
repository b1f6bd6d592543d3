"""Lab Markdown to HTML for the browser. Raw HTML is off: a lab's text must
not be able to put markup or scripts into the page."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from .parse import split_info

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
