"""A learner's set of real lab hosts on its lab network (webapp/labhost/labnet.py): each host's ens33 with the
seed's MAC and address by its place, its name as hostname and in every host's /etc/hosts, reached by name;
no route anywhere else; nothing left behind by a teardown, a reset or a killed server (after `gc`). Prints
how long wiring a set of two takes and a set claimed from a warm pool end to end (docs/lab-hosts.md)."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import sh, unreached_port
from hostset_support import host_set
from test_labhost_leaks import snapshot
from web_support import wait_for
from webapp.lab import Lab
from webapp.labhost import reaper, records
from webapp.labhost.labnet import LabNet
from webapp.labhost.pool import Pool, create
from webapp.learners.registry import READY, Learners, NotReady


@dataclasses.dataclass
class HostsLab(Lab):
    hosts: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture(scope="module")
def pair(settings):
    with host_set(settings, ["node1", "node2"]) as hosts:
        yield hosts


def namespaces_held() -> set[int]:
    """The network namespaces any process of the machine is in or holds a descriptor of, by inode."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        paths = [f"/proc/{pid}/ns/net"]
        try:
            paths += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for path in paths:
            try:
                if os.readlink(path).startswith("net:["):
                    found.add(os.stat(path).st_ino)
            except OSError:
                pass
    return found


def test_each_host_has_the_seeds_ens33_by_its_place_and_its_name(pair):
    for index, (name, host) in enumerate(pair.members()):
        _, out = sh(host, "hostname; cat /etc/hostname; ip -br addr show ens33; cat /sys/class/net/ens33/address; "
                          "cat /etc/hosts")
        lines = out.splitlines()
        assert lines[0] == lines[1] == name
        assert f"192.168.118.{137 + index}/24" in lines[2].split()
        assert lines[3] == f"00:0c:29:b5:9a:{0x13 + index:02x}"
        assert "192.168.118.137\tnode1" in out and "192.168.118.138\tnode2" in out


def test_node1_reaches_node2_by_name_over_ens33(pair):
    sh(pair.host("node2"), "docker run -d --name web -p 8080:80 busybox sh -c "
                           "'echo from-node2 > /tmp/index.html; httpd -f -h /tmp'")
    _, out = sh(pair.host("node1"), "ping -c 1 -W 2 -I ens33 node2; ip neigh show dev ens33; "
                                    "for i in $(seq 50); do wget -T 2 -q -O - node2:8080 && break; sleep 0.1; done")
    assert "1 received" in out and "00:0c:29:b5:9a:14" in out and "from-node2" in out


def test_the_lab_network_has_no_route_anywhere(pair):
    """Not to the machine's addresses, nor its loopback, nor a server's port on them: with a default route
    of the learner's through the lab network, a gateway of their choosing, nothing answers."""
    node1 = pair.host("node1")
    with unreached_port() as (port, machine):
        sh(node1, "ip route replace default via 192.168.118.1 dev ens33 onlink")
        try:
            for addr in ["127.0.0.1", "192.168.118.1", *machine[:3]]:
                _, out = sh(node1, f"timeout 3 bash -c 'echo > /dev/tcp/{addr}/{port}' && echo REACHED; "
                                   f"ping -c 1 -W 1 {addr} >/dev/null && echo PINGED", timeout=30)
                assert "REACHED" not in out, f"{addr}:{port} reached from a set's host"
                if addr != "127.0.0.1":   # its own loopback answers pings
                    assert "PINGED" not in out, f"{addr} answered a set's host"
        finally:
            sh(node1, "ip route del default")


def test_wiring_a_set_of_two_joins_them_and_prints_how_long_it_took(settings, capsys):
    a, b = create(settings), create(settings)
    net = LabNet(settings)
    try:
        started = time.monotonic()
        net.wire([("node1", a), ("node2", b)])
        took = time.monotonic() - started
        with capsys.disabled():
            print(f"\nwiring a set of 2, both claimed: {took * 1000:.0f} ms")
        _, out = sh(a, "ping -c 1 -W 2 node2")
        assert "1 received" in out
    finally:
        net.destroy()
        a.destroy()
        b.destroy()


def test_a_teardown_leaves_no_namespace_veth_process_or_record(settings):
    before, held = snapshot(settings), namespaces_held()
    sets = lambda: {m["id"] for m in records.read_sets(settings.state_dir)}   # noqa: E731
    recorded, net_ns = sets(), []
    for _ in range(3):
        with host_set(settings, ["node1", "node2"]) as hosts:
            net_ns.append(os.fstat(hosts.network._fd).st_ino)
            assert sets() == recorded | {hosts.network.id}
    assert snapshot(settings) == before
    assert sets() == recorded
    assert not set(net_ns) & namespaces_held() - held


@pytest.mark.slow
def test_a_learners_set_from_a_warm_pool_grows_resets_and_ends_as_one(settings, capsys):
    before = snapshot(settings)
    pool = Pool(dataclasses.replace(settings, pool_size=2)).start()
    learners = Learners(pool)
    two = HostsLab(path=pathlib.Path("two.md"), title="two", hosts=["node1", "node2"], setup="touch /root/set-up")
    try:
        assert pool.wait_full(120)
        started = time.monotonic()
        learner = learners.get("a" * 32)

        def bench():
            try:
                return learners.bench(learner, two)
            except NotReady as e:
                assert "still" in str(e), str(e)
        got = wait_for(bench, 120, what="the set", every=0.005)
        took = time.monotonic() - started
        with capsys.disabled():
            print(f"\na set of 2 claimed from a warm pool, wired, named, set up: {took * 1000:.0f} ms")
        _, out = sh(got.host("node2"), "hostname; ls /root/set-up; ping -c 1 -W 2 node1")
        assert out.startswith("node2") and "1 received" in out and "No such file" not in out
        old, net = learner.hosts.hosts(), learner.hosts.network
        learners.reset(learner.id)
        wait_for(lambda: learner.state == READY and not any(h.alive() for h in old), 120, what="the reset")
        assert net._fd < 0 and len(learner.hosts) == 1
        assert net.id not in {m["id"] for m in records.read_sets(settings.state_dir)}
        learners.end(learner.id)
        wait_for(lambda: not pool.claimed(), 60, what="the end")
    finally:
        learners.close()
        pool.close()
    wait_for(lambda: snapshot(settings) == before, 30, what="nothing left")


@pytest.mark.slow
def test_gc_removes_the_set_of_a_killed_server(settings):
    before = snapshot(settings)
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from webapp.config import Settings
        from webapp.labhost.labnet import LabNet
        from webapp.labhost.pool import create
        s = Settings(state_dir={settings.state_dir!r}, uid_base={settings.uid_base},
                     max_lab_hosts={settings.max_lab_hosts})
        hosts = [create(s), create(s)]
        net = LabNet(s)
        net.wire([("node1", hosts[0]), ("node2", hosts[1])])
        print(net.id, *(h.id for h in hosts), flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    set_id, *host_ids = server.stdout.readline().split()
    assert host_ids
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert set_id in {m["id"] for m in records.read_sets(settings.state_dir)}
    assert sorted(reaper.gc(settings)) == sorted([*host_ids, set_id])
    assert set_id not in {m["id"] for m in records.read_sets(settings.state_dir)}
    wait_for(lambda: snapshot(settings) == before, 30, what="nothing left")
