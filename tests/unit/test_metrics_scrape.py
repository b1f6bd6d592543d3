"""The operator's Prometheus metrics (webapp/web/metrics.py), in process on fake lab hosts: only the operator's
token reads them; they parse with prometheus_client's own parser; a learner's lab host, run and refusals show;
a workshop's room; the nodes' health from the callable a cluster gives, and without one. The slow tier's
tests/test_metrics.py says the same against the real server."""
from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from apps import LAB, OPERATOR, TOKEN, Tab, browser, ready, serving, services, upgrade
from webapp.guard.limits import Refusals
from webapp.web.metrics import Metrics
from web_support import wait_for

BEARER = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("metrics"), pool_size=1) as app:
        yield app


def samples(app) -> dict[tuple[str, tuple], float]:
    """The operator's scrape, parsed: each sample's value by its name and labels."""
    r = app.test_client().get("/metrics", headers=BEARER)
    assert r.status_code == 200 and r.content_type.startswith("text/plain; version="), r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(app, name: str, **labels) -> float | None:
    return samples(app).get((name, tuple(sorted(labels.items()))))


def test_only_the_operators_token_reads_them(app):
    anyone = app.test_client()
    r = anyone.get("/metrics")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="labnb"'
    assert "labnb_" not in r.text and "Authorization: Bearer" in r.text
    for given in ("wrong", TOKEN, OPERATOR + "x", ""):
        r = anyone.get("/metrics", headers={"Authorization": f"Bearer {given}"})
        assert r.status_code in (401, 403) and "labnb_" not in r.text, given
    r = anyone.get("/metrics", headers={"Authorization": f"Basic {OPERATOR}"})
    assert r.status_code == 403 and "labnb_" not in r.text
    learner = browser(app)
    r = learner.get("/metrics")
    assert r.status_code == 403 and "labnb_" not in r.text and "for the operator" in r.text
    assert learner.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    assert browser(app, OPERATOR).get("/metrics").status_code == 200   # the operator's browser
    r = anyone.get("/metrics", headers=BEARER)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store" and "# HELP labnb_learners" in r.text


def test_the_host_is_still_checked(app):
    r = app.test_client().get("/metrics", headers={**BEARER, "Host": "evil.example"})
    assert r.status_code == 403 and "labnb_" not in r.text


def test_every_family_has_help_and_the_one_machine_is_up(app):
    r = app.test_client().get("/metrics", headers=BEARER)
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("labnb_learners", "labnb_lab_hosts", "labnb_lab_hosts_max", "labnb_pool_target", "labnb_refusals",
                 "labnb_run_starts", "labnb_run_first_output_seconds", "labnb_lab_host_ready_seconds",
                 "labnb_node_state", "labnb_node_heartbeat_age_seconds"):
        assert families[name].documentation, name
    assert not [n for n in families if n.startswith("labnb_room")]   # no workshop here
    assert b"labnb_" not in generate_latest(REGISTRY)   # each app's registry is its own, never the library's
    s = samples(app)
    assert s[("labnb_node_state", (("node", "local"), ("state", "up")))] == 1
    assert s[("labnb_node_state", (("node", "local"), ("state", "down")))] == 0
    assert s[("labnb_pool_target", ())] == 1
    assert ("labnb_run_starts_total", (("lab", LAB),)) in s   # every lab's series, from the start


def test_a_learners_run_shows(app):
    before = samples(app)
    http = browser(app)
    ready(http)
    tab = Tab(app, http)
    try:
        tab.wait_end(tab.run("echo"))
    finally:
        tab.close()
    after = samples(app)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0)
    assert grew("labnb_run_starts_total", lab=LAB) == 1
    assert grew("labnb_run_first_output_seconds_count") == 1
    assert grew("labnb_lab_host_ready_seconds_count") == 1
    assert grew("labnb_learners", state="ready") == 1
    # theirs is ready, or still in use for a moment after the run's end was sent
    assert after[("labnb_lab_hosts", (("state", "ready"),))] + after[("labnb_lab_hosts", (("state", "in_use"),))] >= 1
    wait_for(lambda: value(app, "labnb_lab_hosts", state="pool") == 1, 60, what="the warm pool refilled")


def test_a_step_that_runs_is_a_lab_host_in_use(app):
    http = browser(app)
    ready(http)
    tab = Tab(app, http)
    try:
        in_use = value(app, "labnb_lab_hosts", state="in_use")
        run = tab.run("endless")
        wait_for(lambda: value(app, "labnb_lab_hosts", state="in_use") == in_use + 1, 60, what="in use")
        tab.call("stop", {"run": run})
        tab.wait_end(run)
        wait_for(lambda: value(app, "labnb_lab_hosts", state="in_use") == in_use, 60, what="no longer in use")
    finally:
        tab.close()


def test_refusals_by_what_and_why(app):
    before = value(app, "labnb_refusals_total", what="WebSocket", reason="access") or 0
    assert upgrade(app.test_client()).status_code == 403   # no session
    assert value(app, "labnb_refusals_total", what="WebSocket", reason="access") == before + 1


def test_refusals_name_the_setting_that_refused():
    refusals = Refusals()
    refusals.log("a run", "127.0.0.1", "9 runs were started in the last minute, the most (LABNB_RUNS_PER_MINUTE)")
    refusals.log("a run", "127.0.0.1", "9 runs were started in the last minute, the most (LABNB_RUNS_PER_MINUTE)")
    refusals.log("a WebSocket", "127.0.0.1", "no valid token")
    assert refusals.counts() == {("run", "LABNB_RUNS_PER_MINUTE"): 2, ("WebSocket", "access"): 1}


def test_an_exhausted_pool_is_a_refusal(tmp_path):
    with serving(tmp_path, pool_size=0, max_lab_hosts=1, ready_timeout=0.2, lab_hosts_per_address=5) as app:
        first, second = browser(app), browser(app)
        ready(first)
        second.get(f"/labs/{LAB}")
        wait_for(lambda: value(app, "labnb_learners", state="failed") == 1, 60, what="the second refused")
        assert value(app, "labnb_refusals_total", what="lab host", reason="pool_exhausted") >= 1
        assert value(app, "labnb_lab_hosts", state="failed") == 1
        assert value(app, "labnb_lab_hosts_max") == 1


def test_a_workshops_room(tmp_path):
    from test_workshop_app import CODE, join, seated
    with serving(tmp_path, workshop=1, capacity=1, access_code=CODE, workshop_labs=LAB, memory_mb=64) as app:
        assert value(app, "labnb_room_capacity") == 1
        assert value(app, "labnb_refusals_total", what="place", reason="room_full") == 0
        seated(app, "Ada")
        waiting, _ = join(app, "Grace")
        assert app.test_client().get("/metrics").status_code == 401   # the gate lets it to its own check
        r = waiting.get("/metrics")
        assert r.status_code == 403 and "labnb_" not in r.text
        assert value(app, "labnb_room_places", state="seated") == 1
        assert value(app, "labnb_room_places", state="waiting") == 1
        assert value(app, "labnb_refusals_total", what="place", reason="room_full") == 1


def test_the_nodes_health_comes_from_the_cluster(app):
    s = services(app)
    nodes = [{"name": "a", "state": "up", "heartbeat": 0.0}, {"name": "b", "state": "draining", "heartbeat": 1e18}]
    metrics = Metrics(s.settings, s.pool, s.learners, s.runs, Refusals(), nodes=lambda: nodes)
    found = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
             for f in text_string_to_metric_families(metrics.text().decode()) for sample in f.samples}
    assert found[("labnb_node_state", (("node", "b"), ("state", "draining")))] == 1
    assert found[("labnb_node_state", (("node", "b"), ("state", "up")))] == 0
    assert found[("labnb_node_heartbeat_age_seconds", (("node", "a"),))] > 1e9   # a node long dead shows so
    assert found[("labnb_node_heartbeat_age_seconds", (("node", "b"),))] == 0


def test_a_failing_node_read_leaves_the_rest(app):
    s = services(app)

    def unreachable():
        raise OSError("connection refused")
    text = Metrics(s.settings, s.pool, s.learners, s.runs, Refusals(), nodes=unreachable).text().decode()
    assert "labnb_node_state" not in text and "labnb_learners" in text


def test_a_clusters_node_reports_every_node_from_the_store(app):
    """A cluster's node reports the nodes' health from the store (every node of a cluster shares it): a node
    that stopped beating is reported by the others, which still answer. (A real node needs PostgreSQL:
    tests/test_metrics.py; here the store's nodes are the SQLite store's, through the same face.)"""
    s = services(app)
    s.store.node_beat("a", "127.0.0.1:1", "", "", {})
    s.store.node_beat("b", "127.0.0.1:2", "", "", {})
    s.store.set_node_state("b", "draining")
    text = Metrics(s.settings, s.pool, s.learners, s.runs, Refusals(), nodes=s.store.nodes).text().decode()
    got = {(m.name, tuple(sorted(m.labels.items()))): m.value
           for family in text_string_to_metric_families(text) for m in family.samples}
    assert got[("labnb_node_state", (("node", "a"), ("state", "up")))] == 1
    assert got[("labnb_node_state", (("node", "b"), ("state", "draining")))] == 1
    assert got[("labnb_node_state", (("node", "b"), ("state", "up")))] == 0
    assert ("labnb_node_state", (("node", "local"), ("state", "up"))) not in got
    assert got[("labnb_node_heartbeat_age_seconds", (("node", "b"),))] >= 0
