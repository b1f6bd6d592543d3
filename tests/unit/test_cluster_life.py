"""A node's life, its rules without a cluster (webapp/cluster/): a node without the shared store or Redis
is refused, naming the setting; the cluster's shared values win over none and refuse a different one;
a node is dead after DEAD_AFTER without a heartbeat; a node whose image differs from the up nodes' is
refused; a learner first seen on this node whose lab host was on a node that died is told so, and where
their new lab host is is recorded. On the SQLite store, which has the cluster's tables as PostgreSQL
has them; tests/test_cluster_nodes.py runs real nodes on PostgreSQL."""
from __future__ import annotations

import dataclasses

import pytest

import fakes
from web_support import wait_for
from webapp.app import resolve
from webapp.cluster import join, node as cluster_node
from webapp.cluster.moves import Moves
from webapp.cluster.node import DEAD_AFTER, dead
from webapp.config import Settings
from webapp.errors import ConfigError, LabnbError
from webapp.labhost import image
from webapp.labhost.pool import Pool
from webapp.labhost.statedir import image_archive
from webapp.learners.registry import READY, Learners

LEARNER = "c" * 32


def node_settings(tmp_path, **kw) -> Settings:
    return Settings(state_dir=str(tmp_path), backend="plain", node="a", database_url="postgresql://db/labnb",
                    redis_url="redis://redis:6379/0", **kw)


@pytest.mark.parametrize("missing", ["database_url", "redis_url"])
def test_a_node_without_the_shared_store_or_redis_is_refused_naming_the_setting(tmp_path, missing):
    settings = dataclasses.replace(node_settings(tmp_path), **{missing: ""})
    with pytest.raises(ConfigError) as refused:
        resolve(settings)
    assert refused.value.setting == f"LABNB_{missing.upper()}" and "LABNB_NODE" in str(refused.value)


class ClusterStore:
    """The test's store as ``open_store`` gives it, for ``join`` (which closes what it opens)."""

    def __init__(self, store):
        self.store = store

    def __call__(self, settings):
        return self

    def __getattr__(self, name):
        return getattr(self.store, name)

    def close(self):
        pass


@pytest.fixture
def shared(store, monkeypatch):
    monkeypatch.setattr(join, "open_store", ClusterStore(store))
    return store


def test_the_first_node_makes_the_clusters_values_and_the_next_takes_them(tmp_path, shared):
    first = join.settle(node_settings(tmp_path / "a", token="the-token", workshop=1), lambda: "code-1")
    second = join.settle(node_settings(tmp_path / "b", workshop=1), lambda: "code-2")
    assert (second.token, second.operator_token, second.access_code) == \
        ("the-token", first.operator_token, "code-1")
    assert first.operator_token and first.operator_token != first.token
    assert (tmp_path / "a" / "secret_key").read_bytes() == (tmp_path / "b" / "secret_key").read_bytes()


@pytest.mark.parametrize("setting", ["token", "operator_token", "access_code"])
def test_a_node_whose_own_value_differs_from_the_clusters_is_refused(tmp_path, shared, setting):
    join.settle(node_settings(tmp_path / "a", workshop=1), lambda: "code-1")
    with pytest.raises(ConfigError) as refused:
        join.settle(node_settings(tmp_path / "b", workshop=1, **{setting: "mine"}), lambda: "code-2")
    assert refused.value.setting == f"LABNB_{setting.upper()}" and "Unset" in refused.value.todo


def test_a_node_is_dead_after_five_beats_missed_and_buried_once():
    rows = [{"name": n, "state": s, "heartbeat": h} for n, s, h in
            [("a", "up", 100.0), ("b", "up", 100.0 - DEAD_AFTER), ("c", "draining", 90.0), ("d", "down", 0.0)]]
    assert dead(rows, "a", 100.0) == ["c"]
    assert dead(rows, "a", 100.5) == ["b", "c"]
    assert dead(rows, "b", 200.0) == ["a", "c"]   # never itself; never one already down


def test_a_node_whose_beats_do_not_reach_the_store_reports_trouble_for_its_agent(store, clock):
    """Its runs would not be recorded: the agent-check says down (HAProxy sends it no new learner), its own
    learners stay; once a beat gets through again, no trouble."""
    clock.into(cluster_node)
    node = cluster_node.Node(store, "a", "127.0.0.1:1", 0, "", dict)
    node._beat()
    assert node.trouble() is None
    clock.now += DEAD_AFTER + 0.5
    assert "node a's heartbeat has not reached the cluster's store" in node.trouble()
    node._beat()
    assert node.trouble() is None


def test_a_node_whose_busybox_image_differs_from_the_up_nodes_is_refused(tmp_path, shared, clock):
    clock.into(cluster_node)
    settings = node_settings(tmp_path)
    image.build(image_archive(settings))
    mine = cluster_node.image_id(settings)
    shared.node_beat("b", "10.0.0.2:8888", "", "f" * 64, {})
    shared.node_beat("c", "10.0.0.3:8888", "", mine, {})
    clock.now = shared.nodes()[0]["heartbeat"]
    with pytest.raises(LabnbError) as refused:
        join.check_image(settings)
    assert mine[:12] in str(refused.value) and "f" * 12 in str(refused.value) and "node(s) b " in str(refused.value)
    assert "labnb image build --force" in refused.value.todo
    shared.set_node_state("b", "down")
    join.check_image(settings)   # a node that is down serves nothing


@pytest.fixture
def learners(tmp_path, store):
    fakes.register()
    pool = Pool(fakes.settings(str(tmp_path), "fake"))
    learners = Learners(pool, moves=Moves(store, "a"))
    yield learners
    learners.close()
    pool.close()
    fakes.unregister()


def ready_host(learners, learner_id: str):
    learner = learners.get(learner_id)
    wait_for(lambda: learner.state == READY, 60, what="the lab host")
    return learner


def test_a_learner_whose_node_died_is_told_and_placed_here(learners, store):
    store.node_beat("b", "10.0.0.2:8888", "", "", {})
    store.place_learner(LEARNER, "b", "lh-b-0a0b0c", "ready")
    store.lose_node("b", "node b stopped answering (no heartbeat for 6 s)")
    learner = ready_host(learners, LEARNER)
    assert learner.status()["note"].startswith("Your lab host on node b was lost (node b stopped answering (no "
                                               "heartbeat for 6 s)); a new one is being made for you here.")
    assert "Your notebook is whole" in learner.note
    placed = wait_for(lambda: (p := store.placement(LEARNER))["state"] == READY and p, 10, what="the placement")
    assert (placed["node"], placed["lab_host"]) == ("a", learner.host.id)


def test_a_learner_whose_lab_host_is_on_a_live_node_is_told_nothing(learners, store):
    store.node_beat("b", "10.0.0.2:8888", "", "", {})
    store.place_learner(LEARNER, "b", "lh-b-0a0b0c", "ready")
    assert ready_host(learners, LEARNER).note == ""
