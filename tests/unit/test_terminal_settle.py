"""A command typed into a named terminal right after the last one ended waits for the shell's prompt: typed
while the shell is still busy between commands (here a PROMPT_COMMAND that sleeps, as a slow prompt or a loaded
machine makes it), the kernel would echo it and the line editor show it again: twice on the learner's screen."""
from __future__ import annotations

import pytest

from apps import Tab, browser, ready, serving, services, session_value
from test_terminal_echo import shown

LAB = "86-settle"
TYPED = [f"echo slow-{n}-$(({n}+{n}))" for n in range(1, 5)]
TEXT = """---
title: Settle
terminals: [t1]
---
# Settle

## Typed into a slow shell {#slow}

```sh {"terminal": "t1"}
PROMPT_COMMAND='sleep 0.2' PS1='sl# ' bash --norc --noprofile -i
```
""" + "".join(f'\n```sh {{"terminal": "t1"}}\n{command}\n```\n' for command in TYPED)


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    labs = tmp_path_factory.mktemp("labs")
    (labs / f"{LAB}.md").write_text(TEXT)
    with serving(tmp_path_factory.mktemp("settle"), labs_dir=str(labs)) as app:
        http = browser(app)
        ready(http, LAB)
        tab = Tab(app, http, lab=LAB)
        tab.wait_end(tab.run("slow", LAB))
        yield tab
        tab.close()
        services(app).learners.end(session_value(http, "learner"))


def test_each_command_typed_at_a_slow_prompt_shows_once(tab):
    [run] = tab.chunks
    lines = shown(tab.text(run))
    for n, command in enumerate(TYPED, 1):
        assert sum(command in line for line in lines) == 1, lines
        assert f"slow-{n}-{2 * n}" in lines, lines
