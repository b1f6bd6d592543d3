"""One workshop room over two nodes: two real labnb servers (``--node a`` and ``b``, real lab hosts) on one
PostgreSQL (tests/pg_support.py) and one Redis (tests/redis_support.py), given the same access code,
learners' and operator's tokens and secret key (until the nodes share them through the store). Learners
join node A or node B directly (no HAProxy here: tests/test_cluster_haproxy.py places them): the room of
two seats two and queues the rest, whichever node they joined; the dashboard on A shows B's learner live;
the instructor on A resets, catches up, extends and ends B's learner, and it happens on B; watching
B's learner's runs from A streams them live and whole; watching B's learner's
terminal from A streams it, and B's rules hold for the watcher."""
from __future__ import annotations

import os
import secrets

import pytest

from pg_support import postgres_server  # noqa: F401 (a fixture)
from redis_support import redis_url  # noqa: F401 (a fixture)
from web_support import TEST_LAB, ShellTab, Tab, serving, wait_for
from workshop_support import act, api, csrf, join, me, running_lab_hosts, seated, workshop_server

pytestmark = pytest.mark.slow
CAPACITY = 2


@pytest.fixture(scope="module")
def cluster_db(postgres_server):  # noqa: F811
    """A database of this module's own on the session's PostgreSQL."""
    with postgres_server.database() as url:
        yield url


@pytest.fixture(scope="module")
def nodes(cluster_db, redis_url):  # noqa: F811
    token, operator, key = secrets.token_hex(16), secrets.token_hex(16), secrets.token_bytes(32)
    servers = []
    for name, slot in (("a", 0), ("b", 4)):
        server = workshop_server(f"cluster-{name}", uid_slot=slot, capacity=CAPACITY, node=name,
                                 database_url=cluster_db, redis_url=redis_url, token=token, operator_token=operator)
        server.token, server.operator_token = token, operator
        os.makedirs(server.state_dir, exist_ok=True)
        with open(os.path.join(server.state_dir, "secret_key"), "wb") as f:   # shared_value's, later
            f.write(key)
        servers.append(server)
    a, b = servers
    with_a, with_b = serving(a), serving(b)
    try:
        yield next(with_a), next(with_b)
    finally:
        with_b.close()
        with_a.close()


@pytest.fixture(scope="module")
def instructor(nodes):
    a, _ = nodes
    return a.operator()


@pytest.fixture(scope="module")
def dashboard(nodes, instructor):
    """The instructor's dashboard on node A, a real Socket.IO client: the pushes it gets."""
    a, _ = nodes
    pushes: list[dict] = []
    client = a.socket(instructor)
    client.on("workshop", pushes.append)
    yield pushes
    client.disconnect()


@pytest.fixture(scope="module")
def people(nodes, instructor, dashboard):
    """Ana joins A and Bo joins B, both seated; then Cy on A and Di on B wait, in that order."""
    a, b = nodes
    ana, bo = seated(a, "Ana"), seated(b, "Bo")
    for node, name in ((a, "Cy"), (b, "Di")):
        _, r = join(node, name)
        assert r.status_code == 200 and "queue" in r.page, r.page[-500:]
    return {"Ana": ana, "Bo": bo}


def learner_in(push: dict, name: str) -> dict | None:
    return next((learner for learner in push["learners"] if learner["name"] == name), None)


def latest(dashboard: list[dict], name: str, check) -> bool:
    """Whether the dashboard's latest push shows ``name`` as ``check`` says."""
    learner = dashboard and learner_in(dashboard[-1], name)
    return bool(learner) and check(learner)


def test_the_room_seats_two_and_queues_the_rest_whichever_node_they_joined(nodes, instructor, people):
    a, b = nodes
    for node, http in ((a, instructor), (b, b.operator())):
        def room():   # a node's copy may be a moment behind the other's change (shared.py: at most STALE s)
            state = api(node, http)
            return ({k: state["workshop"][k] for k in ("capacity", "seated", "waiting")},
                    {learner["name"]: (learner["place"], learner["position"]) for learner in state["learners"]})
        wait_for(lambda: room()[0] == {"capacity": 2, "seated": 2, "waiting": 2}, 5, 0.1,
                 what=f"the room on {node.url}: {room()}")
        assert room()[1] == {"Ana": ("seated", 0), "Bo": ("seated", 0), "Cy": ("waiting", 1), "Di": ("waiting", 2)}


def test_the_dashboard_on_a_shows_bs_learner_live(nodes, people, dashboard):
    a, b = nodes
    b.open_lab(people["Bo"])   # Bo's lab host is made on B
    wait_for(lambda: latest(dashboard, "Bo", lambda l: (l["host"] or {}).get("state") == "ready"), 60,
             what="A's dashboard to show Bo's lab host on B ready")
    assert dashboard[-1] and learner_in(dashboard[-1], "Bo")["host"]["node"] == "b"
    tab = Tab(b, people["Bo"])
    try:
        tab.wait_end(tab.run("echo"))
    finally:
        tab.close()
    wait_for(lambda: latest(dashboard, "Bo", lambda l: l["steps"][TEST_LAB]["echo"]["state"] == "passed"), 30,
             what="A's dashboard to show Bo's step on B passed")


def test_watching_bs_learners_terminal_from_a_streams_and_bs_rules_hold(nodes, instructor, people):
    a, b = nodes
    b.open_lab(people["Bo"])
    bo = me(a, instructor, "Bo")["id"]
    mine, watcher = ShellTab(b, people["Bo"]), ShellTab(a, instructor, learner=bo)
    try:
        assert mine.open() == {"ok": True}
        mine.type("echo bo-$((6*7))\n")
        mine.wait_text("bo-42")
        assert watcher.open() == {"ok": True}                 # opened on B, for A's tab
        watcher.wait_text("bo-42")                            # the replay, from B through Redis
        mine.type("echo more-$((2*2))\n")
        watcher.wait_text("more-4")                           # live
        for _ in range(3):                                    # the watcher's acknowledgements reach B
            assert watcher.ack_all() >= 0
        refused = watcher.client.call("shell_input", {"data": "echo not-mine\n"}, timeout=10)
        assert "watching is reading" in refused["error"]      # B's rule, said on A
        assert "watching is reading" in watcher.client.call("shell_resize", {"rows": 5, "cols": 5},
                                                            timeout=10)["error"]
        mine.type("echo still-$((3*3))\n")
        watcher.wait_text("still-9")
        assert "not-mine" not in mine.text()
    finally:
        mine.close()
        watcher.close()


def test_watching_bs_learners_run_from_a_streams_it_live_and_whole(nodes, instructor, people):
    a, b = nodes
    b.open_lab(people["Bo"])
    bo = me(a, instructor, "Bo")["id"]
    watcher = a.socket(instructor)
    started, chunks, ends = [], {}, []

    def output(m):
        chunks[m["seq"]] = m["data"]
        watcher.emit("ack", {"run": m["run"], "end": m["end"], "learner": bo})   # to B, through the bus
    watcher.on("run_started", started.append)
    watcher.on("output", output)
    watcher.on("end", ends.append)
    tab = Tab(b, people["Bo"])
    try:
        assert watcher.call("open", {"lab": TEST_LAB, "learner": bo}, timeout=10) == {"running": []}
        run = tab.run("count")                                # thirty lines, one every 0.2 s, on B
        wait_for(lambda: started, 10, what="A's watcher to hear of Bo's run on B")
        assert watcher.call("open", {"lab": TEST_LAB, "learner": bo}, timeout=10) == \
            {"running": [{"run": run, "step": "count"}]}      # what runs on B
        assert watcher.call("attach", {"run": run, "after": -1, "end": 0, "learner": bo}, timeout=10) == \
            {"status": "running"}
        wait_for(lambda: ends, 30, what="the run's end on A")
        assert sorted(chunks) == list(range(len(chunks)))     # every chunk, once
        text = b"".join(chunks[seq] for seq in sorted(chunks)).decode()
        assert "line 1\r\n" in text and "line 30\r\n" in text
        assert "error" in watcher.call("stop", {"run": run}, timeout=10)   # watching is reading
    finally:
        tab.close()
        watcher.disconnect()


def test_the_instructor_on_a_resets_catches_up_extends_and_ends_bs_learner_on_b(nodes, instructor, people, dashboard):
    a, b = nodes
    on_b = b.operator()
    bo = me(a, instructor, "Bo")["id"]
    before = me(a, instructor, "Bo")["host"]["host"]
    assert before in running_lab_hosts(b, on_b)
    headers = csrf(a, instructor)

    assert act(a, instructor, bo, "reset", headers).json() == {"ok": True}
    wait_for(lambda: before not in running_lab_hosts(b, on_b), 60, 0.2, what="B to destroy Bo's old lab host")
    after = wait_for(lambda: (me(a, instructor, "Bo")["host"] or {}).get("state") == "ready"
                     and me(a, instructor, "Bo")["host"]["host"] != before and me(a, instructor, "Bo")["host"]["host"],
                     60, 0.2, what="A to see Bo's new lab host on B")
    assert after in running_lab_hosts(b, on_b)
    wait_for(lambda: "instructor reset your lab host" in people["Bo"].get(f"{b.url}/labs/{TEST_LAB}", timeout=10).text,
             10, 0.2, what="Bo's page on B to say the instructor reset it")

    r = instructor.post(f"{a.url}/workshop/learners/{bo}/catch-up", data={"lab": TEST_LAB, "step": "colours"},
                        headers=headers, timeout=30)
    assert r.json() == {"ok": True}, r.text                  # B runs Bo's steps before "colours" on B
    wait_for(lambda: me(a, instructor, "Bo")["steps"][TEST_LAB]["count"]["state"] == "passed", 120, 0.2,
             what="Bo's first step, caught up on B")
    r = instructor.post(f"{a.url}/workshop/learners/{bo}/catch-up", data={"lab": TEST_LAB, "step": "nope"},
                        headers=headers, timeout=30)
    assert r.status_code == 400 and "no lab" in r.json()["error"]   # B's refusal, said on A

    r = instructor.post(f"{a.url}/workshop/learners/{bo}/extend", data={"minutes": "15"}, headers=headers,
                        timeout=10)
    assert r.json() == {"ok": True}
    wait_for(lambda: me(b, on_b, "Bo")["extended_s"] == 900, 10, what="B to see Bo's extension")

    assert act(a, instructor, bo, "end", headers).json() == {"ok": True}
    wait_for(lambda: after not in running_lab_hosts(b, on_b), 60, 0.2, what="B to destroy Bo's lab host")
    wait_for(lambda: me(b, on_b, "Cy")["place"] == "seated", 10, what="Cy, first in the queue, to be seated")
    assert me(a, instructor, "Di")["position"] == 1
    page = people["Bo"].get(f"{b.url}/labs/{TEST_LAB}", timeout=10, allow_redirects=False)
    assert page.status_code in (302, 303) and "/join" in page.headers["Location"]
    wait_for(lambda: latest(dashboard, "Bo", lambda l: l["place"] == "ended"), 10,
             what="A's dashboard to show Bo's place ended")
