"""The operator's Prometheus metrics against the real server (``labnb serve``, sandbox lab hosts): a scrape
needs the operator's token (``Authorization: Bearer``, as docs/metrics.md's scrape config sends it); a
learner's token or cookie, a wrong token and none get a refusal with no metric in it; the text parses with
prometheus_client's own parser; a learner's run shows in the run starts and the first-output histogram, and
their lab host in the ready-time histogram and the states; a cluster's node, on a real PostgreSQL, reports
every node's health from it. tests/unit/test_metrics_scrape.py says the rest in process."""
from __future__ import annotations

import contextlib

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pg_support import pg_database_url, postgres_server  # noqa: F401 (fixtures)
from redis_support import redis_url  # noqa: F401 (a fixture)
from web_support import TEST_LAB, Server, _state_dir, own_server, serving, wait_for
from webapp.config import Settings
from webapp.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def web_server():
    """This module's own: its counts are this module's runs' alone."""
    yield from own_server("metrics")


def scrape(server, **headers) -> requests.Response:
    return requests.get(f"{server.url}/metrics", headers=headers, timeout=10)


def samples(server) -> dict[tuple[str, tuple], float]:
    r = scrape(server, Authorization=f"Bearer {server.operator_token}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version="), r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_a_scrape_needs_the_operators_token(web_server):
    r = scrape(web_server)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer") and "labnb_" not in r.text
    for token in (web_server.token, "0" * 32, web_server.operator_token[:-1]):
        r = scrape(web_server, Authorization=f"Bearer {token}")
        assert r.status_code == 403 and "labnb_" not in r.text, token
    learner = web_server.learner()
    r = learner.get(f"{web_server.url}/metrics", timeout=10)
    assert r.status_code == 403 and "labnb_" not in r.text
    r = web_server.operator().get(f"{web_server.url}/metrics", timeout=10)   # the operator's browser
    assert r.status_code == 200 and "# HELP labnb_learners " in r.text


def test_a_learners_run_shows(web_server):
    before = samples(web_server)
    web_server.learner_who_ran(TEST_LAB, "echo")
    after = samples(web_server)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0)
    assert grew("labnb_run_starts_total", lab=TEST_LAB) == 1
    assert grew("labnb_run_first_output_seconds_count") == 1
    assert after[("labnb_run_first_output_seconds_bucket", (("le", "+Inf"),))] == after[
        ("labnb_run_first_output_seconds_count", ())]
    assert grew("labnb_lab_host_ready_seconds_count") == 1
    assert grew("labnb_learners", state="ready") == 1
    # theirs is ready, or still in use for a moment after the run's end was sent
    assert after[("labnb_lab_hosts", (("state", "ready"),))] + after[("labnb_lab_hosts", (("state", "in_use"),))] >= 1
    assert after[("labnb_node_state", (("node", "local"), ("state", "up")))] == 1
    assert after[("labnb_pool_target", ())] == 2
    wait_for(lambda: samples(web_server)[("labnb_lab_hosts", (("state", "pool"),))] == 2, 120, 0.5,
             "the warm pool to refill")


def test_a_clusters_node_reports_a_dead_node(pg_database_url, redis_url):
    """A node of a cluster (LABNB_NODE, the store on PostgreSQL) reports every node's state and heartbeat age
    from the store: node b, which stopped beating and was marked down, is seen through node a."""
    store = open_store(Settings(database_url=pg_database_url))
    try:
        store.node_beat("b", "127.0.0.1:1", "", "", {})
        node = Server(_state_dir("metrics-node"), uid_slot=32,
                      env={"LABNB_DATABASE_URL": pg_database_url, "LABNB_REDIS_URL": redis_url, "LABNB_NODE": "a"})
        with contextlib.contextmanager(serving)(node) as server:
            wait_for(lambda: samples(server).get(("labnb_node_heartbeat_age_seconds", (("node", "b"),)), 0) >= 1,
                     60, 0.2, "node b's heartbeat to age")
            store.set_node_state("b", "down")
            s = samples(server)
            assert s[("labnb_node_state", (("node", "b"), ("state", "down")))] == 1
            assert s[("labnb_node_state", (("node", "b"), ("state", "up")))] == 0
            assert ("labnb_node_state", (("node", "local"), ("state", "up"))) not in s
    finally:
        store.close()
