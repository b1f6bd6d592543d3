"""A lab's intro under its page's one <h1> (webapp/lab/render.py, ``render_intro``): the lab page shows the title
as its <h1>, so the intro's '#' title, said again, would make it two (axe's page-has-heading-one, a screen reader's
outline)."""
from __future__ import annotations

from webapp.lab import render_intro


def test_the_intros_title_said_again_is_left_out():
    html = render_intro("# Ports and *bridges*\n\nWhat a bridge does.\n", "Ports and bridges")
    assert "<h1>" not in html and "bridges</" not in html and html == "<p>What a bridge does.</p>\n"


def test_another_hash_heading_becomes_an_h2_and_the_rest_is_as_before():
    html = render_intro("# Before you start\n\n### Needs\n\n`<b>` & text\n", "Ports and bridges")
    assert html == "<h2>Before you start</h2>\n<h3>Needs</h3>\n<p><code>&lt;b&gt;</code> &amp; text</p>\n"
