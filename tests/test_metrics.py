"""The operator's Prometheus metrics against the real server (``labnb serve``, sandbox lab hosts): a scrape
needs the operator's token (``Authorization: Bearer``, as docs/metrics.md's scrape config sends it); a
learner's token or cookie, a wrong token and none get a refusal with no metric in it; the text parses with
prometheus_client's own parser; a learner's run shows in the run starts and the first-output histogram, and
their lab host in the ready-time histogram and the states. tests/unit/test_metrics.py says the rest in
process."""
from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from web_support import TEST_LAB, own_server, wait_for

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
    assert after[("labnb_lab_hosts", (("state", "ready"),))] >= 1
    assert after[("labnb_node_state", (("node", "local"), ("state", "up")))] == 1
    assert after[("labnb_pool_target", ())] == 2
    wait_for(lambda: samples(web_server)[("labnb_lab_hosts", (("state", "pool"),))] == 2, 120, 0.5,
             "the warm pool to refill")
