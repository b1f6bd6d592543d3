"""`labnb serve` on a machine as an operator finds it (issue 29, items 1 to 3): a fresh state dir, a
workshop whose default room does not fit the machine's memory, and two servers on one machine.

uid ranges from slot 49 (49, 51, 53 and up: no session fixture's while this module runs alone).
"""
from __future__ import annotations

import os

import pytest

from web_support import TEST_LAB, Server, _state_dir, wait_for
from webapp.guard.limits import mem_total_mb
from webapp.labhost import records

pytestmark = pytest.mark.slow


def slots(server: Server) -> set[int]:
    """The uid ranges (slots) the lab hosts of the server's state dir hold."""
    return set(records.slots_of(server.state_dir).values())


def test_a_server_on_a_fresh_state_dir_makes_its_image_and_gives_a_learner_a_ready_lab_host():
    """No `labnb image build` first: the server makes the image before it takes learners, and the learner
    never reads the operator's "Run `labnb image build`"."""
    server = Server(_state_dir("fresh"), uid_slot=49, pool_size=0, env={"LABNB_MAX_LAB_HOSTS": "2"})
    try:
        assert not os.path.exists(server.state_dir)
        server.start()
        log = server.log.read_text()
        assert "made what lab hosts need:" in log and "busybox.tar: built" in log, log
        http = server.learner()
        server.open_lab(http)   # fails on a lab host that failed
        assert "labnb image build" not in http.get(f"{server.url}/labs/{TEST_LAB}/host", timeout=10).text
    finally:
        server.cleanup()


def test_a_workshop_without_a_capacity_starts_with_the_room_that_fits_the_memory_and_says_so():
    """Lab hosts of a tenth of the memory left beside the server: 10 fit, and the default room of 30 (32 lab
    hosts) does not. Nothing was given but the lab hosts' memory, so the room is sized to it."""
    lab_host_mb = (mem_total_mb() - 1024) // 10
    server = Server(_state_dir("sized"), uid_slot=51, pool_size=1, env={
        "LABNB_WORKSHOP": "1", "LABNB_WORKSHOP_LABS": TEST_LAB, "LABNB_MEMORY_MB": str(lab_host_mb)})
    del server.env["LABNB_MAX_LAB_HOSTS"]   # web_support's, for a server of many lab hosts
    try:
        server.prepare().start()
        log = server.log.read_text()
        assert f"room capacity 8: 10 lab hosts of {lab_host_mb} MiB (LABNB_MEMORY_MB) fit this machine's" in log, log
        assert "set --capacity (LABNB_CAPACITY) to choose" in log
        assert "labnb is running a workshop for up to 8 learners at once" in log, log
    finally:
        server.cleanup()


def test_a_second_server_s_cap_counts_its_own_lab_hosts_not_the_first_server_s():
    """Both servers take uid ranges from the same base: the first holds the first three, and the second,
    with a cap of 2, still gets its 2 lab hosts, in ranges of their own."""
    first = Server(_state_dir("first"), uid_slot=53, pool_size=3, env={"LABNB_MAX_LAB_HOSTS": "3"})
    second = Server(_state_dir("second"), uid_slot=53, pool_size=0, env={"LABNB_MAX_LAB_HOSTS": "2"})
    try:
        first.prepare().start()
        wait_for(lambda: slots(first) == {0, 1, 2}, 180, 0.5, "the first server's pool to hold three lab hosts")
        second.prepare().start()
        for _ in range(2):
            second.open_lab(second.learner())   # fails on a lab host that failed
        assert slots(second) == {3, 4} and slots(first) == {0, 1, 2}
    finally:
        second.cleanup()
        first.cleanup()
