"""A learner's set of lab hosts (webapp/labhost/hostset.py, webapp/learners/registry.py) on the fakes: it grows
when a lab declares more hosts, joined by one lab network (``fakes.FakeNet``) and named as the lab names
them; a reset, an end or an idle reclaim gives back every member and removes the network; a lab of one host
is as it always was; the per-address limit counts a set as its hosts. The slow tier's tests/test_hostset.py
and tests/test_hostset_attacks.py tell the real lab network's part."""
from __future__ import annotations

import dataclasses
import pathlib

import pytest

import fakes
from webapp.guard.limits import LabHostsPerAddress, Refusals
from webapp.lab import Lab
from webapp.labhost.base import LabHostError
from webapp.labhost.hostset import HostSet, names_of
from webapp.labhost.pool import Pool
from webapp.learners.bench import Bench
from webapp.learners.registry import READY, Learners, NotReady

from web_support import wait_for

LEARNER = "a" * 32


@dataclasses.dataclass
class HostsLab(Lab):
    """A lab that declares its hosts (the lab format's ``hosts:``)."""

    hosts: list[str] = dataclasses.field(default_factory=list)


def lab(name: str, hosts: list[str] | None = None, setup: str | None = None) -> Lab:
    return HostsLab(path=pathlib.Path(f"{name}.md"), title=name, hosts=hosts or [], setup=setup)


@pytest.fixture
def pool(tmp_path):
    fakes.register()
    fakes.FakeNet.made.clear()
    pool = Pool(fakes.settings(str(tmp_path), "fake", max_lab_hosts=8, lab_hosts_per_address=8))
    yield pool
    pool.close()
    fakes.unregister()


@pytest.fixture
def learners(pool):
    learners = Learners(pool)
    yield learners
    learners.close()


def ready_learner(learners):
    learner = learners.get(LEARNER)
    wait_for(lambda: learner.state == READY, 10, what="the lab host")
    return learner


def bench(learners, learner, the_lab) -> Bench:
    def set_up():
        try:
            return learners.bench(learner, the_lab)
        except NotReady as e:
            assert "still running" in str(e), str(e)
            return None
    return wait_for(set_up, 10, what="the lab's setup")


def test_a_set_by_names_the_first_the_primary():
    a, b = fakes.FakeLabHost(None), fakes.FakeLabHost(None)
    hosts = HostSet([("node1", a), ("node2", b)])
    assert hosts.names == ["node1", "node2"] and hosts.host() is a and hosts.host("node2") is b
    assert hosts.members() == [("node1", a), ("node2", b)] and hosts.network is None
    with pytest.raises(LabHostError, match="no lab host named 'node3'.*node1, node2"):
        hosts.host("node3")


@pytest.mark.parametrize("members, why", [
    ([("node1", 1), ("node1", 2)], "same name"),
    ([(f"n{i}", i) for i in range(6)], "more than the 5"),
    ([("Node 1", 1)], "not a host name"),
])
def test_a_set_refuses_what_a_lab_cannot_declare(members, why):
    with pytest.raises(LabHostError, match=why):
        HostSet(members)


def test_a_bench_gives_each_host_by_the_labs_name():
    a, b = fakes.FakeLabHost(None), fakes.FakeLabHost(None)
    two = Bench(lab("two", ["web", "db"]), a, {"web": a, "db": b})
    assert two.host() is a and two.host("db") is b
    with pytest.raises(LabHostError, match="no lab host named 'node2'.*web, db"):
        two.host("node2")
    one = Bench(lab("one"), a)
    assert one.host() is a and one.host(names_of(lab("one"))[0]) is a


def test_a_lab_of_one_host_is_as_before_no_network(learners):
    learner = ready_learner(learners)
    host = learner.host
    b = bench(learners, learner, lab("one", setup="true"))
    assert b.host() is host and len(learner.hosts) == 1 and learner.hosts.network is None
    assert not fakes.FakeNet.made


def test_a_lab_of_more_hosts_grows_the_set_wires_and_names_it(learners, pool):
    learner = ready_learner(learners)
    primary = learner.host
    b = bench(learners, learner, lab("two", ["node1", "node2"], setup="touch set-up"))
    assert learner.host is primary and learner.hosts.names == ["node1", "node2"]
    assert b.host("node1") is primary and b.host("node2") is learner.hosts.host("node2")
    [net] = fakes.FakeNet.made
    assert learner.hosts.network is net and net.wired == [h.id for h in learner.hosts.hosts()]
    assert net.names == {primary.id: "node1", b.host("node2").id: "node2"}
    assert {h.id for h in pool.claimed()} == {h.id for h in learner.hosts.hosts()}
    for host in learner.hosts.hosts():   # the lab's setup ran on every host
        assert (pathlib.Path(host.home) / "set-up").exists()
    assert learner.status()["hosts"] == {"node1": primary.id, "node2": b.host("node2").id}
    # a lab of three grows it by one, on the same network; its names are the set's now
    bench(learners, learner, lab("three", ["web", "db", "cache"]))
    assert learner.hosts.names == ["web", "db", "cache"] and len(pool.claimed()) == 3
    assert fakes.FakeNet.made == [net] and len(net.wired) == 3 and net.names[primary.id] == "web"
    # a lab of fewer keeps the set, named by it where it names
    bench(learners, learner, lab("two-again", ["a", "b"]))
    assert learner.hosts.names == ["a", "b", "cache"] and len(pool.claimed()) == 3


def test_a_reset_gives_back_every_member_and_removes_the_network(learners, pool):
    learner = ready_learner(learners)
    bench(learners, learner, lab("two", ["node1", "node2"]))
    old, [net] = learner.hosts.hosts(), fakes.FakeNet.made
    learners.reset(LEARNER)
    wait_for(lambda: learner.state == READY and all(h.destroyed for h in old), 10, what="the reset")
    assert net.destroyed and len(learner.hosts) == 1 and learner.hosts.network is None
    assert [h.id for h in pool.claimed()] == [learner.host.id]


def test_an_end_gives_back_the_whole_set(learners, pool):
    learner = ready_learner(learners)
    bench(learners, learner, lab("two", ["node1", "node2"]))
    old, [net] = learner.hosts.hosts(), fakes.FakeNet.made
    learners.end(LEARNER)
    wait_for(lambda: all(h.destroyed for h in old) and net.destroyed, 10, what="the end")
    assert not pool.claimed()


def test_an_idle_set_is_reclaimed_as_one(pool):
    learners = Learners(pool, idle=60)
    try:
        learner = ready_learner(learners)
        bench(learners, learner, lab("two", ["node1", "node2"]))
        old, [net] = learner.hosts.hosts(), fakes.FakeNet.made
        learner.active -= 120
        learners._reclaim(learner)
        wait_for(lambda: all(h.destroyed for h in old) and net.destroyed, 10, what="the reclaim")
        assert not learner.hosts and not pool.claimed()
    finally:
        learners.close()


def test_the_per_address_limit_counts_a_set_as_its_hosts(pool):
    settings = dataclasses.replace(pool.settings, lab_hosts_per_address=2)
    learners = Learners(pool, per_address=LabHostsPerAddress(settings, Refusals()))
    try:
        learner = ready_learner(learners)
        with pytest.raises(NotReady):
            learners.bench(learner, lab("three", ["a", "b", "c"]))   # starts the setup, which is refused
        why = wait_for(lambda: learner.setups["three"][0], 10, what="the refusal")
        assert "hold 2 lab hosts" in why and "LABNB_LAB_HOSTS_PER_ADDRESS=2" in why and len(pool.claimed()) == 1
        bench(learners, learner, lab("two", ["a", "b"]))   # two are within it
        assert len(learner.hosts) == 2 and learner.holding == 2
    finally:
        learners.close()


def test_a_set_whose_network_fails_gives_back_the_hosts_it_claimed(learners, pool, monkeypatch):
    def broken(self, members):
        raise LabHostError("the kernel refused a link")
    monkeypatch.setattr(fakes.FakeNet, "wire", broken)
    learner = ready_learner(learners)
    with pytest.raises(NotReady):
        learners.bench(learner, lab("two", ["node1", "node2"]))
    why = wait_for(lambda: learner.setups["two"][0], 10, what="the failure")
    assert "the kernel refused a link" in why and "Retry" in why
    assert [h.id for h in pool.claimed()] == [learner.host.id] and len(learner.hosts) == 1
    assert all(net.destroyed for net in fakes.FakeNet.made)
