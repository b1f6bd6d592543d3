"""The warm pool, and the docker SDK client of a lab host (its network view: test_network_picture.py)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import sh
from web_support import wait_for
from webapp.lab import requires
from webapp.labhost.offers import PROBES
from webapp.labhost.pool import Pool


def test_docker_client(lab_host):
    sh(lab_host, "docker run -d --name seen busybox sleep 300")
    client = lab_host.docker()
    try:
        names = [n for c in client.containers.list(sparse=True) for n in c.attrs["Names"]]
        assert "/seen" in names
    finally:
        client.close()
    again = lab_host.docker()   # a second client: each is its own connection
    try:
        assert again.ping()
    finally:
        again.close()


@pytest.mark.slow
def test_pool_fills_hands_out_ready_lab_hosts_and_refills(settings):
    pool = Pool(settings, size=2).start()
    try:
        assert pool.wait_full(120)
        # waiting lab hosts are frozen: not one tick of CPU while they wait
        waiting = list(pool._ready)
        before = [h.subtree.cpu_seconds() for h in waiting]
        time.sleep(3)
        assert [h.subtree.cpu_seconds() for h in waiting] == before
        first = pool.claim()
        assert first.health().ok and pool.waiting() == 1
        # probed while it waited: its first lab's requirements are known without a command (a room joins
        # at once), a second lab's are probed again
        assert first.offers == set(PROBES)
        assert requires.lacking(first, ["docker", "netns"]) == [] and first.offers is None
        assert sh(first, "docker run --rm busybox true")[0].ok   # thawed, dockerd and containerd go on as before
        assert sh(first, "docker image rm busybox")[0].ok
        assert requires.lacking(first, ["docker", "busybox-image"]) == ["busybox-image"]
        assert pool.wait_full(120)
        # a waiting lab host that died is replaced, not handed out (thawed here to die: on v1 a frozen
        # process dies only once thawed)
        dead = pool._ready[0]
        dead.pause(False)
        os.kill(dead.pid, signal.SIGKILL)
        wait_for(lambda: not dead.alive(), 30, 0.01, "the killed lab host to be seen dead")   # the signal is async
        second = pool.claim()
        third = pool.claim()
        for host in (second, third):
            assert host.health().ok and host is not dead
        assert {h.id for h in pool.claimed()} == {first.id, second.id, third.id}
        pool.release(first)
        assert not first.alive()
        assert pool.wait_full(120)   # so that close destroys frozen waiting lab hosts too
        frozen = list(pool._ready)
    finally:
        pool.close()
    assert not [h for h in frozen if h.alive()] and not [h for h in frozen if os.path.isdir(h.subtree.paths()[0])]
    for host in (second, third):
        assert not host.alive()
