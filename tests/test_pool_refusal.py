"""A server allowed more lab hosts (LABNB_MAX_LAB_HOSTS) than the machine has uid ranges from its
LABNB_UID_BASE (issue 30, "A node as big as its machine"), on real lab hosts and the machine's own
/etc/subuid, left as it is: the server's LABNB_UID_BASE is two ranges before the end of root's entry. Until
issue 30 its lab hosts past the entry took ids that useradd may give another user's containers; now the
learner past the ranges is told at once, with what the operator must do: a workshop's join, and the open
server's claim. The warm pool says so once in the log, and after a lab host is given back the next learner
gets one."""
from __future__ import annotations

import html

import pytest

from web_support import TEST_LAB, Server, _state_dir, serving, wait_for
from webapp.labhost import records, subids
from workshop_support import act, api, join, seated, workshop_server

pytestmark = pytest.mark.slow

BASE = 200000
WAIT_TIMEOUT = "3600"   # LABNB_READY_TIMEOUT: a claim that waited for it would fail the test's waits first


def _slot() -> int:
    """The uid slot from BASE whose server has two ranges left in root's entry."""
    try:
        entry = subids.holder(subids.read(records.SUBUID)[1], BASE)
    except OSError:
        entry = None
    if entry is None:
        pytest.skip(f"no entry of root's in {records.SUBUID} holds {BASE}: run scripts/setup.sh")
    return records.machine_ranges(BASE)[0] - 2


def _refusal(server: Server, most: int) -> str:
    """What the server's learner past the ranges is told, as the server words it."""
    uid_base = BASE + _slot() * subids.RANGE
    entry = subids.holder(subids.read(records.SUBUID)[1], uid_base)
    return (f"cannot make another lab host: all 2 uid ranges of this machine ({records.SUBUID} {entry}, from "
            f"LABNB_UID_BASE={uid_base}) are claimed by labnb lab hosts: 2 of {server.state_dir}. This server may "
            f"have {most} lab hosts (LABNB_MAX_LAB_HOSTS), more than the 2 uid ranges of the machine: run `labnb "
            f"lab-hosts ranges --write` (scripts/setup.sh runs it), which gives root as many ranges as this "
            f"machine's memory holds in /etc/subuid and /etc/subgid, or set LABNB_MAX_LAB_HOSTS to at most 2")


@pytest.fixture
def room():
    """A workshop for 3 learners, 5 lab hosts, 3 kept ready, and 2 uid ranges."""
    yield from serving(workshop_server("pool-refusal-room", uid_slot=_slot(), capacity=3,
                                       ready_timeout=WAIT_TIMEOUT))


@pytest.fixture
def open_server():
    """The open server: 3 lab hosts, none kept ready, 2 uid ranges; an idle one given back after 30 s."""
    yield from serving(Server(_state_dir("pool-refusal-open"), uid_slot=_slot(), pool_size=0, env={
        "LABNB_MAX_LAB_HOSTS": "3", "LABNB_READY_TIMEOUT": WAIT_TIMEOUT, "LABNB_IDLE_MINUTES": "0.5"}))


def _pool_refusals(server: Server) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if "warm pool: cannot make another" in line]


def test_a_join_past_the_machine_s_ranges_is_refused_at_once_and_the_next_after_a_place_ends_gets_in(room):
    wait_for(lambda: _pool_refusals(room), 120, 0.2, "the warm pool to find the machine's ranges all taken")
    room.open_lab(seated(room, "Ada"))
    room.open_lab(seated(room, "Grace"))
    told = _refusal(room, 5)
    r = join(room, "Barbara")[1]
    assert r.status_code == 503 and f"this workshop cannot give anyone a lab host now: {told}" in r.page, r.page
    assert [line.partition("warm pool: ")[2] for line in _pool_refusals(room)] == [
        f"{told}. It makes the next when a uid range is freed"]   # once, though it checked again since
    instructor = room.operator()
    ada = next(learner for learner in api(room, instructor)["learners"] if learner["name"] == "Ada")
    act(room, instructor, ada["id"], "end").raise_for_status()
    wait_for(lambda: "it makes lab hosts again" in room.log.read_text(), 120, 0.2, "a range to be freed")
    room.open_lab(seated(room, "Barbara"))


def test_the_open_server_tells_the_learner_past_the_ranges_at_once_and_gives_one_after_one_is_given_back(
        open_server):
    for _ in range(2):
        open_server.open_lab(open_server.learner())
    late = open_server.learner()
    assert late.get(f"{open_server.url}/labs/{TEST_LAB}", timeout=10).status_code == 200

    def told():
        page = html.unescape(late.get(f"{open_server.url}/labs/{TEST_LAB}/host", timeout=10).text)
        return 'data-state="starting"' not in page and page
    page = wait_for(told, 120, 0.2, "the claim to end")
    assert 'data-state="failed"' in page and _refusal(open_server, 3) in page, page
    # the first two learners' lab hosts are given back once idle; the third learner's retry gets one
    wait_for(lambda: not records.refusal(open_server.state_dir, 3, int(open_server.env["LABNB_UID_BASE"])),
             180, 0.5, "an idle lab host to be given back")
    r = late.post(f"{open_server.url}/labs/{TEST_LAB}/host/retry",
                  headers={"X-CSRF-Token": open_server.csrf(late)}, timeout=10)
    assert r.status_code == 200, r.text
    open_server.open_lab(late)
