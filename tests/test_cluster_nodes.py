"""A node's life in a real cluster on this machine (tests/cluster_support.py: PostgreSQL, Redis and labnb
nodes with real sandbox lab hosts, HAProxy in front): a drained node takes no new learner and keeps its
own; a node killed with SIGKILL mid-run is buried by a live one, its learners get a new lab host on the
node their next request reaches and are told why, and no recorded run is lost; it comes back up, and
stopped on purpose hands its learners over at once; a workshop's place is not counted twice; a node whose
busybox image differs refuses to start.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess

import pytest

from cluster_support import Cluster, behind_haproxy, running_cluster, through
from web_support import LABNB, TEST_LAB, Tab, wait_for
from webapp.cluster.haproxy import COOKIE   # HAProxy's, naming the node a learner is pinned to
from workshop_support import CODE, api, join, seated

pytestmark = pytest.mark.slow


def pinned(http) -> str:
    """The node HAProxy's cookie names (``<node>|<the date it renews by>``)."""
    return (http.cookies.get(COOKIE) or "").partition("|")[0]


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster("nodes")


def down(cluster: Cluster, name: str) -> bool:
    with cluster.store() as store:
        return any(n["name"] == name and n["state"] == "down" for n in store.nodes())


def placed(cluster: Cluster, learner: str) -> dict:
    with cluster.store() as store:
        return store.placement(learner)


@pytest.fixture(scope="module")
def haproxy(cluster):
    yield from behind_haproxy(cluster)


def test_a_drained_node_takes_no_new_learner_and_keeps_its_own(cluster, haproxy):
    front = through(haproxy, cluster.nodes["a"])
    learners = []
    while not any(pinned(http) == "b" for http in learners):
        assert len(learners) < 6, "HAProxy placed no learner on node b"
        learners.append(front.learner())
    on_b = next(http for http in learners if pinned(http) == "b")
    front.open_lab(on_b)

    drained = cluster.labnb("cluster", "drain", "b")
    assert drained.returncode == 0, drained.stderr
    try:
        haproxy.wait_server("b", "drained", lambda stats: stats.get("status", "").startswith("DRAIN"))
        status = cluster.labnb("cluster", "status").stdout
        assert re.search(r"^b\s+draining\s", status, re.M), status
        for _ in range(4):   # as many as would have gone to b half the time
            http = front.learner()
            front.open_lab(http)
            assert pinned(http) == "a"
        tab = Tab(front, on_b)   # b's learner carries on, on b
        try:
            assert tab.wait_end(tab.run("echo"))["status"] == "done"
        finally:
            tab.close()
        assert pinned(on_b) == "b"
    finally:
        assert cluster.labnb("cluster", "undrain", "b").returncode == 0
    haproxy.wait_server("b", "up again", lambda stats: stats.get("status", "").startswith("UP"))


def test_a_killed_nodes_learner_moves_with_every_recorded_run(cluster):
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    http = b.learner()
    b.open_lab(http)
    tab = Tab(b, http)
    run = tab.run("ping")   # endless: running when its node dies
    wait_for(lambda: len(tab.chunks.get(run, {})) >= 3, 60, what="the run's first chunks")
    seen = dict(tab.chunks[run])

    b.stop(signal.SIGKILL)
    wait_for(lambda: down(cluster, "b"), 60, 0.5, "node a to find node b dead")

    with cluster.store() as store:
        recorded = store.get_run(run)
        stored = {seq: data for seq, _pos, data in store.chunks_since(run)}
    assert recorded["status"] == "cut_off", recorded
    assert placed(cluster, recorded["learner"])["state"] == "lost"
    assert all(stored.get(seq) == m["data"] for seq, m in seen.items()), "a chunk the tab saw is not stored"

    # the learner's next request reaches node a (HAProxy would send it there): a new lab host, and why
    page = http.get(f"{a.url}/labs/{TEST_LAB}/host", timeout=10).text
    assert "Your lab host on node b was lost" in page and "Your notebook is whole" in page, page
    a.open_lab(http)
    assert "Your lab host on node b was lost" in http.get(f"{a.url}/labs/{TEST_LAB}/host", timeout=10).text
    moved = placed(cluster, recorded["learner"])
    assert (moved["node"], moved["state"]) == ("a", "ready") and moved["lab_host"].startswith("lh-a-"), moved
    log = http.get(f"{a.url}/runs/{run}/log", timeout=10)
    assert log.status_code == 200 and b"".join(m["data"] for m in seen.values()) in log.content

    again = Tab(a, http)
    try:
        # the learner's tab, now served by node a, attaches to the run node b recorded: it replays whole
        again.client.call("attach", {"run": run, "after": -1, "end": 0}, timeout=10)
        assert again.wait_end(run, 30)["status"] == "cut_off"
        assert all(again.chunks[run].get(seq, {}).get("data") == m["data"] for seq, m in seen.items()), \
            "a chunk the tab saw on node b is not replayed on node a"
        assert again.wait_end(again.run("echo"))["status"] == "done"
    finally:
        again.close()
    status = cluster.labnb("cluster", "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^b\s+down\b", status.stdout, re.M) and re.search(r"^a\s+up\b", status.stdout, re.M), \
        status.stdout


def test_a_dead_node_comes_back_up_and_a_stopped_one_hands_its_learners_over(cluster):
    """Node b, killed above, starts again: it is up. Stopped on purpose (SIGTERM), it says so at once: its
    learner's next request, on node a, is told that node b was stopped."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    if b.proc.poll() is None:   # run alone: kill it first
        b.stop(signal.SIGKILL)
        wait_for(lambda: down(cluster, "b"), 60, 0.5, "node a to find node b dead")
    b.start()
    assert not down(cluster, "b")
    http = b.learner()
    b.open_lab(http)
    b.stop(signal.SIGTERM)
    page = http.get(f"{a.url}/labs/{TEST_LAB}/host", timeout=10).text
    assert "Your lab host on node b was lost (node b was stopped)" in page, page
    a.open_lab(http)


def test_a_node_whose_image_differs_refuses_to_start(cluster, tmp_path):
    """Its labs would not be the others': it says both image ids and what to do, and never serves."""
    from webapp.labhost import image
    from webapp.labhost.statedir import image_archive
    from webapp.config import Settings

    other = cluster.node("c")
    try:
        other.prepare()
        busybox = tmp_path / "busybox"   # another build of busybox: one byte more
        shutil.copy(image.BUSYBOX, busybox)
        with open(busybox, "ab") as f:
            f.write(b"\0")
        archive = image_archive(Settings(state_dir=other.state_dir))
        theirs, mine = image.image_id(archive), image.build(archive, str(busybox))
        assert mine != theirs
        done = subprocess.run([LABNB, "serve", "--port", str(other.port)], env=other.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode != 0
        assert mine[:12] in done.stderr and theirs[:12] in done.stderr and "labnb image build --force" in \
            done.stderr, done.stderr
        with cluster.store() as store:
            assert "c" not in [n["name"] for n in store.nodes()]
    finally:
        other.cleanup()


@pytest.fixture(scope="module")
def workshop():
    yield from running_cluster("room", env={
        "LABNB_WORKSHOP": "1", "LABNB_CAPACITY": "2", "LABNB_ACCESS_CODE": CODE, "LABNB_WORKSHOP_LABS": TEST_LAB,
        "LABNB_MAX_LAB_HOSTS": "4"})


def test_a_killed_nodes_place_is_kept_and_not_counted_twice(workshop):
    """A room of 2 over nodes a and b, a third learner waiting: b dies; its learner keeps their place (the
    one waiting does not get it), gets a new lab host on a, and the dashboard shows it."""
    a, b = workshop.nodes["a"], workshop.nodes["b"]
    ada = seated(a, "Ada")
    bob = seated(b, "Bob")
    _cleo, r = join(a, "Cleo")
    assert "number 1</strong> in the queue" in r.page
    b.open_lab(bob)
    b.stop(signal.SIGKILL)
    wait_for(lambda: down(workshop, "b"), 60, 0.5, "node a to find node b dead")

    a.open_lab(bob)
    assert "Your lab host on node b was lost" in bob.get(f"{a.url}/labs/{TEST_LAB}/host", timeout=10).text
    instructor = a.operator()
    room = api(a, instructor)
    assert (room["workshop"]["seated"], room["workshop"]["waiting"]) == (2, 1), room["workshop"]
    places = {lr["name"]: lr for lr in room["learners"]}
    assert places["Bob"]["place"] == "seated" and places["Cleo"]["place"] == "waiting"
    assert "was lost" in places["Bob"]["host"]["note"], places["Bob"]
    assert ada.get(f"{a.url}/labs/{TEST_LAB}", timeout=10).status_code == 200
