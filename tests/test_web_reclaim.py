"""Lab hosts are given back on the open server (issue 27, item 11), against the
real server: one client address cannot hold every lab host (browsers from
127.0.0.1, a learner from 127.0.0.2: every address in 127/8 is this
machine's); a learner who finds every lab host taken hears when an idle one
is given back; a lab host with no activity of its learner is given back (a
tab left open on an endless ping is no activity), their recorded runs kept
and a new one made at their next run; one whose command runs is kept.
Whether a lab host is gone is read from the operator's /lab-hosts page: the
learner's own requests would be activity."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path

import pytest
import requests

from web_support import Server, Tab, _state_dir, serving, wait_for

LABS = str(Path(__file__).resolve().parent / "fixtures" / "reclaim-labs")
LAB = "reclaim"
MOST = 4            # lab hosts of the crowded server; one address may hold a quarter of them by default: 1
IDLE_S = 30         # a lab host with no activity for this long is given back (longer than a busy machine's stall)

pytestmark = pytest.mark.slow


# uid slots 0 to 7 are a workshop test's, whose servers run in other modules: here 0 to 3 for one test's
# server, then for the next's, and 4 to 7 for the idle tests' server
@pytest.fixture
def crowded():
    yield from serving(Server(_state_dir("reclaim-crowded"), uid_slot=0, pool_size=1, env={
        "LABNB_LABS_DIR": LABS, "LABNB_MAX_LAB_HOSTS": str(MOST), "LABNB_LAB_HOSTS_PER_ADDRESS": "0",
        "LABNB_IDLE_MINUTES": "0"}))


@pytest.fixture
def full():
    """Two lab hosts, none kept ready, and a claim that waits 30 s for one to free."""
    yield from serving(Server(_state_dir("reclaim-full"), uid_slot=0, pool_size=0, env={
        "LABNB_LABS_DIR": LABS, "LABNB_MAX_LAB_HOSTS": "2", "LABNB_READY_TIMEOUT": "30",
        "LABNB_IDLE_MINUTES": "60"}))


@pytest.fixture(scope="module")
def idle():
    yield from serving(Server(_state_dir("reclaim-idle"), uid_slot=4, pool_size=1, env={
        "LABNB_LABS_DIR": LABS, "LABNB_MAX_LAB_HOSTS": "4", "LABNB_IDLE_MINUTES": str(IDLE_S / 60)}))


class FromAddress(requests.adapters.HTTPAdapter):
    """Connections from ``address``: a browser at another client address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def learner_at(server: Server, address: str) -> requests.Session:
    """A new learner whose browser is at ``address``."""
    http = requests.Session()
    http.mount("http://", FromAddress(address))
    assert http.get(f"{server.url}/?token={server.token}", timeout=10).status_code == 200
    return http


def settled(server: Server, http: requests.Session) -> str:
    """The lab's page opened, its lab host part once the lab host is ready or could not be had."""
    assert http.get(f"{server.url}/labs/{LAB}", timeout=30).status_code == 200
    return wait_for(lambda: (lambda html: 'data-state="starting"' not in html and html)(
        http.get(f"{server.url}/labs/{LAB}/host", timeout=10).text), 180, 0.2, "the lab host to settle")


def host_id(server: Server, http: requests.Session) -> str:
    """The id of the learner's lab host, which is ready."""
    html = http.get(f"{server.url}/labs/{LAB}/host", timeout=10).text
    assert 'data-state="ready"' in html, html
    return re.search(r"<code>([^<]+)</code>", html).group(1)


def lab_hosts(server: Server, operator: requests.Session) -> str:
    return operator.get(f"{server.url}/lab-hosts", timeout=10).text


def run_when_ready(tab: Tab, step: str) -> str:
    """Run ``step`` as a learner does while their lab host is being made: again after "try again in a moment"."""
    def started():
        reply = tab.client.call("run", {"lab": LAB, "step": step}, timeout=30)
        assert "run" in reply or "try again in a moment" in reply["error"], reply
        return reply.get("run")
    return wait_for(started, 180, 0.5, f"a run of step {step} to start")


def test_one_address_cannot_hold_every_lab_host(crowded):
    """As many browsers as there are lab hosts, from one address, open the lab at once: one gets a lab host,
    the others are told why not and what to do; a learner at another address still gets one."""
    browsers = [learner_at(crowded, "127.0.0.1") for _ in range(MOST)]
    with ThreadPoolExecutor(MOST) as pool:
        pages = list(pool.map(lambda http: settled(crowded, http), browsers))
    got = [page for page in pages if 'data-state="ready"' in page]
    assert len(got) == 1, f"{len(got)} of {MOST} lab hosts went to one address"
    for page in pages:
        if page not in got:
            assert "LABNB_LAB_HOSTS_PER_ADDRESS=1" in page and "127.0.0.1" in page and "NAT" in page, page
    elsewhere = learner_at(crowded, "127.0.0.2")
    assert 'data-state="ready"' in settled(crowded, elsewhere)


def test_a_learner_who_finds_every_lab_host_taken_is_told_when_one_frees(full):
    """Learners at two addresses hold both lab hosts; one at a third waits, then hears that idle lab hosts
    are given back, when the next could be, and to press Retry."""
    for address in ("127.0.0.2", "127.0.0.3"):
        assert 'data-state="ready"' in settled(full, learner_at(full, address))
    page = settled(full, learner_at(full, "127.0.0.4"))
    assert "this server's 2 lab hosts (LABNB_MAX_LAB_HOSTS) are all in use" in unescape(page), page
    assert "A lab host with no activity for 60 min is given back, the next in about" in page and "Retry" in page


def test_an_idle_lab_host_is_given_back_and_the_runs_stay(idle):
    """A learner runs a step, then leaves an endless ping running in a tab that stays open and takes in its
    output: no activity. Their lab host is given back; their next run says why and gets a new one."""
    http = idle.learner()
    idle.open_lab(http, LAB)
    first = host_id(idle, http)
    tab = Tab(idle, http, lab=LAB)
    try:
        recorded = tab.run("echo")
        assert tab.wait_end(recorded)["status"] == "done"
        ping = tab.run("ping")
        wait_for(lambda: "icmp_seq" in tab.text(ping), 30, what="the ping's output")
        operator = idle.operator()
        wait_for(lambda: first not in lab_hosts(idle, operator), 180, 0.5, "the idle lab host to be given back")
        tab.wait_end(ping)   # it ended with its lab host, and is recorded so

        refused = tab.client.call("run", {"lab": LAB, "step": "echo"}, timeout=30)
        why = refused.get("error", "")
        assert f"lab host, {first}, was given back after {IDLE_S} s with no activity" in why, refused
        assert "recorded runs are kept" in why and "try again in a moment" in why
        again = run_when_ready(tab, "echo")
        assert tab.wait_end(again)["status"] == "done" and "recorded-output" in tab.text(again)
        page = http.get(f"{idle.url}/labs/{LAB}/host", timeout=10).text
        assert f"was given back after {IDLE_S} s with no activity" in page, page
        assert "recorded-output" in http.get(f"{idle.url}/runs/{recorded}/log", timeout=10).text
        assert http.get(f"{idle.url}/runs/{ping}/log", timeout=10).status_code == 200
        assert first not in lab_hosts(idle, operator)
    finally:
        tab.close()


def test_a_lab_host_whose_command_runs_is_kept(idle):
    """A silent command runs on one learner's lab host; another learner, idle since after it started, loses
    theirs: the first is kept, its command still running."""
    busy_http = idle.learner()
    idle.open_lab(busy_http, LAB)
    busy = host_id(idle, busy_http)
    tab = Tab(idle, busy_http, lab=LAB, ack=False)
    try:
        run = tab.run("sleep")
        away_http = idle.learner()   # active after the command started: given back first, if the busy one were
        idle.open_lab(away_http, LAB)
        away = host_id(idle, away_http)
        operator = idle.operator()
        wait_for(lambda: away not in lab_hosts(idle, operator), 180, 0.5, "the idle lab host to be given back")
        assert busy in lab_hosts(idle, operator)
        assert run not in tab.ends
        assert tab.client.call("stop", {"run": run}, timeout=30) == {"ok": True}
        assert tab.wait_end(run)["status"] == "interrupted"
    finally:
        tab.close()
