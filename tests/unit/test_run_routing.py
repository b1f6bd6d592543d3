"""Where a step's parts run on a lab of several hosts (docs/lab-format.md, "Hosts"): each command, check
and named terminal on the lab host its block names, matches over the output of the hosts they name, setup
and cleanup on every host knowing its name; a lab of one lab host as always. Fake lab hosts (fakes.py):
each is a directory of its own, so a file one host makes is on that host alone."""
from __future__ import annotations

import re

import pytest

import apps
import fakes
from webapp.executor import DONE, FAILED
from webapp.lab import load_lab
from webapp.labhost import pool
from webapp.labhost.base import LabHostError
from webapp.learners import runner
from webapp.learners.bench import Bench
from webapp.learners.events import CheckJudged, CommandStarted

LAB = """---
title: Two hosts
hosts: [node1, node2]
terminals: [t1, {name: t2, host: node2}]
setup: echo "$LABNB_HOST" > setup-ran
cleanup: echo "$LABNB_HOST" > cleanup-ran
---
## Make a file on node2 {#make}

```sh {"host": "node2"}
echo only-here > made-on-node2 && echo "on $(cat setup-ran)"
```

```sh
echo "first $(cat setup-ran)"
```

```check {"hint": "node2 has the file", "host": "node2"}
test -e made-on-node2
```

```check {"hint": "node1 has no such file"}
test -e made-on-node2
```

```match {"hint": "node2 said so", "host": "node2"}
^on node2$
```

```match {"hint": "node1's output is not node2's", "host": "node2"}
^first node1$
```

```match {"hint": "without host, every host's output"}
^first node1$
```

## Terminals {#terms}

```sh {"terminal": "t2"}
cat setup-ran
```

```sh {"terminal": "t1"}
cat setup-ran
```

```match {"hint": "t2 is on node2", "terminal": "t2"}
^node2\\s*$
```

```check {"hint": "t1's output came from node1", "host": "node1"}
true
```
"""


pytestmark = pytest.mark.usefixtures("fake_backends")


@pytest.fixture
def hosts(tmp_path):
    made = {name: pool.create(fakes.settings(str(tmp_path))) for name in ("node1", "node2")}
    yield made
    for host in made.values():
        host.destroy()


@pytest.fixture
def lab(tmp_path):
    path = tmp_path / "two.md"
    path.write_text(LAB)
    return load_lab(path)


def on(host, name: str) -> str | None:
    try:
        with open(f"{host.home}/{name}") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def test_a_steps_blocks_run_on_the_hosts_they_name(lab, hosts):
    result = runner.run_lab(lab, hosts["node1"], hosts=hosts)
    make, terms = result.steps
    assert [c.host for c in make.commands] == ["node2", "node1"]
    assert [c.output.strip() for c in make.commands] == ["on node2", "first node1"]
    assert on(hosts["node2"], "made-on-node2") == "only-here" and on(hosts["node1"], "made-on-node2") is None
    # the check on node2 passes, the same check on node1 fails; a match with host reads that host's output
    assert [c.passed for c in make.checks] == [True, False, True, False, True]
    assert make.status == FAILED and terms.status == "skipped"
    assert result.lab_hosts == {"node1": hosts["node1"].id, "node2": hosts["node2"].id}
    assert runner.to_json(result)["lab_hosts"] == result.lab_hosts


def test_named_terminals_run_on_their_hosts(lab, hosts):
    result = runner.run_lab(lab, hosts["node1"], hosts=hosts, steps=[lab.step("terms")])
    terms, = result.steps
    assert [c.host for c in terms.commands] == ["node2", "node1"]
    assert "node2" in terms.commands[0].output and "node1" in terms.commands[1].output
    assert terms.status == DONE, terms.failure()


def test_setup_and_cleanup_run_on_every_host_each_knowing_its_name(lab, hosts):
    result = runner.run_lab(lab, hosts["node1"], hosts=hosts, steps=[])
    assert result.setup.ok and result.cleanup.ok
    for name, host in hosts.items():
        assert on(host, "setup-ran") == name and on(host, "cleanup-ran") == name


def test_a_setup_failing_on_one_host_fails_and_shows_that_hosts_output_first(tmp_path, hosts):
    path = tmp_path / "lab.md"
    path.write_text('---\ntitle: T\nhosts: [node1, node2]\nsetup: echo "ran on $LABNB_HOST"; '
                    'test "$LABNB_HOST" = node1\n---\n## S\n\n```sh\ntrue\n```\n')
    result = runner.run_lab(load_lab(path), hosts["node1"], hosts=hosts)
    assert not result.setup.ok and result.setup.exit_code == 1
    assert result.setup.output == "[node2]\nran on node2\n[node1]\nran on node1\n"
    assert result.steps[0].status == "skipped"


def test_the_bench_gives_each_name_its_host_and_refuses_a_host_it_does_not_have(lab, hosts):
    bench = Bench(lab, hosts["node1"], hosts)
    assert bench.host() is hosts["node1"] and bench.host("node2") is hosts["node2"]
    alone = Bench(lab, hosts["node1"])
    assert alone.host("node1") is hosts["node1"]
    with pytest.raises(LabHostError, match=r"no lab host named 'node2' in this set \(its hosts: node1\)"):
        alone.host("node2")


def test_a_lab_host_missing_from_the_set_is_an_error_that_says_so(lab, hosts):
    with pytest.raises(LabHostError, match=r"no lab host named 'node2' in this set \(its hosts: node1\)"):
        runner.run_lab(lab, hosts["node1"], steps=[])   # setup runs on every host: node2 is not there
    bench, said = Bench(lab, hosts["node1"]), []
    run = bench.run_step(lab.step("make"), lambda e: said.append(getattr(e, "text", "")), window=None)
    assert run.wait(30) == "error" and "no lab host named 'node2'" in "".join(said)
    bench.close()


def test_commands_tell_their_host_and_a_one_host_lab_runs_as_always(tmp_path, hosts):
    path = tmp_path / "one.md"
    path.write_text('---\ntitle: T\nsetup: echo "[$LABNB_HOST]" > s\n---\n## S\n\n```sh\ncat s\n```\n\n'
                    '```check {"hint": "h"}\ntest -e s\n```\n')
    lab = load_lab(path)
    events = []
    result = runner.run_lab(lab, hosts["node1"], on_event=events.append)
    assert result.passed and result.steps[0].commands[0].output.strip() == "[]"   # no LABNB_HOST: as before
    assert [e.host for e in events if isinstance(e, CommandStarted)] == [None]
    assert [e.passed for e in events if isinstance(e, CheckJudged)] == [True]
    assert "lab_hosts" not in runner.to_json(result)
    assert runner.to_junit(result).getroot().find(".//system-out").text.startswith("$ cat s\n")


def test_a_multi_host_run_shows_the_host_before_each_command(lab, hosts):
    result = runner.run_lab(lab, hosts["node1"], hosts=hosts, steps=[lab.step("make")])
    out = runner.to_junit(result).getroot().find(".//system-out").text
    assert out.startswith("node2$ echo only-here") and "node1$ echo \"first" in out


def test_the_notebook_shows_each_commands_host_on_a_lab_of_several_only(tmp_path):
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "two.md").write_text(LAB)
    (labs / "one.md").write_text('---\ntitle: One\n---\n## S\n\n```sh\ntrue\n```\n')
    with apps.serving(tmp_path / "state", labs_dir=str(labs)) as app:
        http = apps.browser(app)
        two, one = http.get("/labs/two").text, http.get("/labs/one").text
    heads = re.findall(r'<span class="on-host" title="Runs on the lab host (\w+)">on (\w+)</span>', two)
    assert heads == [("node2", "node2"), ("node1", "node1"), ("node2", "node2"), ("node1", "node1")]
    assert 'class="host"' not in one


def test_the_web_app_sets_up_every_host_and_runs_each_part_on_its_own(tmp_path):
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "two.md").write_text(LAB)
    with apps.serving(tmp_path / "state", labs_dir=str(labs)) as app:
        http = apps.browser(app)
        http.get("/labs/two")
        apps.ready(http, "two")
        hosts = dict(apps.services(app).learners.peek(apps.session_value(http, "learner")).hosts.members())
        assert {name: on(host, "setup-ran") for name, host in hosts.items()} == {"node1": "node1", "node2": "node2"}
        tab = apps.Tab(app, http, lab="two")
        end = tab.wait_end(tab.run("make", "two"))
        assert on(hosts["node2"], "made-on-node2") == "only-here" and on(hosts["node1"], "made-on-node2") is None
        assert [c["passed"] for c in end["checks"]] == [True, False, True, False, True]
        assert "node2$ echo only-here" in tab.text(end["run"])
        end = tab.wait_end(tab.run("terms", "two"))
        assert end["status"] == "done", tab.text(end["run"])
