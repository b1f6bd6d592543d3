"""The terminal panel's shells in a lab of several hosts (webapp/shells/manager.py): a shell per host, each
on its own lab host, its output said to be that host's; a learner's shells bounded however many host names
their labs use; a host's reset ends only its shell; the instructor watching picks a host. The manager on
fake lab hosts (bash of this machine) and a fake set of them; the browser's side is tests/test_ui_hosts.py."""
from __future__ import annotations

import threading
import time

import fakes
import pytest

from webapp.labhost.base import LabHostError
from webapp.shells.manager import SHELLS_PER_LEARNER, ShellError, ShellManager

DEADLINE = 20


class Lab:
    def __init__(self, lab_id: str, hosts: list[str]):
        self.id, self.hosts, self.terminals = lab_id, hosts, {"t1": None}


class Bench:
    """A bench on a set of lab hosts, as learners/bench.py's (``host(name)``; None: the first)."""

    def __init__(self, lab: Lab, hosts: dict):
        self.lab, self.hosts, self.terminals = lab, hosts, {}
        self.lab_host = next(iter(hosts.values()))

    def host(self, name: str | None = None):
        if name is None:
            return self.lab_host
        if name not in self.hosts:
            raise LabHostError(f"no lab host named {name!r} in this set (its hosts: {', '.join(self.hosts)})")
        return self.hosts[name]


class Learner:
    def __init__(self):
        self.lock = threading.RLock()


class Learners:
    """One learner, whose lab hosts are made as their labs name them (one per name, kept)."""

    def __init__(self, settings):
        self.settings, self.learner, self.hosts, self.released = settings, Learner(), {}, None

    def on_release(self, callback):
        self.released = callback

    def get(self, learner_id):
        return self.learner

    def touch(self, learner_id):
        pass

    def bench(self, learner, lab):
        for name in lab.hosts:
            if name not in self.hosts:
                host = self.hosts[name] = fakes.FakeLabHost(self.settings)
                host.start()
        return Bench(lab, {name: self.hosts[name] for name in lab.hosts})

    def close(self):
        for host in self.hosts.values():
            host.destroy()


class Emitted(list):
    def __call__(self, event, payload, to):
        self.append((event, payload, to))

    def screen(self, sid: str, host: str | None) -> str:
        return b"".join(p["data"] for e, p, to in list(self) if e == "shell_output" and to == sid
                        and p["term"] == "" and p.get("host") == host).decode(errors="replace")

    def wait(self, what: str, test) -> None:
        deadline = time.monotonic() + DEADLINE
        while not test():
            assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s"
            time.sleep(0.02)


@pytest.fixture
def world(tmp_path):
    learners = Learners(fakes.settings(str(tmp_path)))
    emitted = Emitted()
    manager = ShellManager(learners, {"two": Lab("two", ["node1", "node2"]), "one": Lab("one", ["node1"])}, emitted)
    yield manager, learners, emitted
    manager.close()
    learners.close()


def typed(manager, emitted, sid, host, line, shows):
    manager.input(sid, "ada", line.encode() + b"\n", host_name=host or "")
    emitted.wait(f"{shows!r} on {host}", lambda: shows in emitted.screen(sid, host))


def test_each_host_has_a_shell_of_its_own(world):
    manager, learners, emitted = world
    manager.open("tab", "ada", "two", host_name="node1")
    manager.open("tab", "ada", "two", host_name="node2")
    one, two = manager.shells["ada", "node1"], manager.shells["ada", "node2"]
    assert one.host is learners.hosts["node1"] and two.host is learners.hosts["node2"] and one is not two
    typed(manager, emitted, "tab", "node2", 'echo "on-$PWD"', f"on-{learners.hosts['node2'].home}")
    typed(manager, emitted, "tab", "node1", 'echo "on-$PWD"', f"on-{learners.hosts['node1'].home}")
    assert learners.hosts["node2"].home not in emitted.screen("tab", "node1")   # each output says its host
    manager.open("other", "ada", "two", host_name="node2")   # a second tab: the same shell, not a new one
    assert manager.shells["ada", "node2"] is two


def test_a_one_host_lab_s_shell_is_as_before(world):
    manager, _, emitted = world
    manager.open("tab", "ada", "one")
    assert list(manager.shells) == [("ada", "")]
    emitted.wait("the backlog", lambda: any(e == "shell_output" for e, _, _ in emitted))
    assert all("host" not in p for e, p, _ in emitted if e.startswith("shell_"))   # the events as they were


def test_a_host_the_lab_does_not_have_and_a_terminal_with_a_host_are_refused(world):
    manager, _, _ = world
    with pytest.raises(ShellError, match=r"lab two: no lab host named 'node3' in this set \(its hosts: node1, node2\)"):
        manager.open("tab", "ada", "two", host_name="node3")
    with pytest.raises(ShellError, match="give a terminal or a host"):
        manager.open("tab", "ada", "two", term="t1", host_name="node2")
    with pytest.raises(ShellError, match="open the terminal first"):
        manager.input("tab", "ada", b"ls\n", host_name="node2")


def test_a_learner_has_at_most_so_many_shells_the_oldest_ends(world):
    manager, learners, emitted = world
    names = [f"h{n}" for n in range(SHELLS_PER_LEARNER + 2)]
    manager.labs["many"] = Lab("many", names)
    for name in names:
        manager.open("tab", "ada", "many", host_name=name)
    assert [k for k in manager.shells] == [("ada", n) for n in names[-SHELLS_PER_LEARNER:]]
    for name in names[:2]:   # the shells opened first ended, and their tabs heard it
        emitted.wait(f"the end of the shell on {name}",
                     lambda: ("shell_exit", {"term": "", "host": name}, "tab") in emitted)


def test_a_reset_host_ends_its_shell_only(world):
    manager, learners, emitted = world
    manager.open("tab", "ada", "two", host_name="node1")
    manager.open("tab", "ada", "two", host_name="node2")
    one = manager.shells["ada", "node1"]
    learners.released("ada", learners.hosts["node2"])
    assert list(manager.shells) == [("ada", "node1")] and one.running
    emitted.wait("node2's shell to end", lambda: ("shell_exit", {"term": "", "host": "node2"}, "tab") in emitted)
    typed(manager, emitted, "tab", "node1", "echo still-$((40+2))", "still-42")


def test_the_instructor_watches_the_host_they_pick(world):
    manager, learners, emitted = world
    manager.open("learner-tab", "ada", "two", host_name="node2")
    typed(manager, emitted, "learner-tab", "node2", "echo mark-$((6*7))", "mark-42")
    with pytest.raises(ShellError, match="the learner has no shell open on node1 now"):
        manager.open("watcher", "ada", "two", host_name="node1", watching=True)
    assert ("ada", "node1") not in manager.shells   # nothing started for a watcher
    manager.open("watcher", "ada", "two", host_name="node2", watching=True)
    emitted.wait("the backlog in the watcher's tab", lambda: "mark-42" in emitted.screen("watcher", "node2"))
    with pytest.raises(ShellError, match="watching is reading"):
        manager.input("watcher", "ada", b"id\n", host_name="node2")
