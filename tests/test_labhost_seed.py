"""The seed's commands, run inside a real lab host, give the seed's facts."""
from __future__ import annotations

import re

import pytest

from conftest import Output, sh
from webapp import executor


@pytest.fixture(autouse=True)
def no_containers_left(lab_host):
    yield
    sh(lab_host, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; ip -all netns delete; true")


def test_first_container_gets_172_17_0_2(lab_host):
    outcome, out = sh(lab_host, "docker run --rm busybox ifconfig eth0")
    assert outcome.ok, out
    assert "inet addr:172.17.0.2" in out and "Mask:255.255.0.0" in out


def test_docker0_and_the_networks_on_the_lab_host(lab_host):
    _, out = sh(lab_host, "docker network ls; ip -4 addr show docker0; ip -4 addr show ens33")
    for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
        assert re.search(rf"\b{name}\s+{driver}\s+local", out), out
    assert "inet 172.17.0.1/16" in out and "inet 192.168.118.137/24" in out


def test_veth_of_a_container_is_on_docker0(lab_host):
    outcome, out = sh(lab_host, "docker run -d --name t1 busybox sleep 300 >/dev/null && brctl show docker0")
    assert outcome.ok, out
    assert re.search(r"docker0\s+\S+\s+no\s+veth\w+", out), out


def test_container_mode_shares_the_address_not_the_files(lab_host):
    outcome, out = sh(lab_host, """
        docker run -d --name b1 busybox sleep 300 >/dev/null
        docker exec b1 mkdir /tmp/data
        echo "b1: $(docker exec b1 ls /tmp)"
        docker run --rm --network container:b1 busybox sh -c 'ifconfig eth0; echo "b2: $(ls /tmp)"'
        docker run --rm busybox ifconfig eth0 | grep 'inet addr'
    """)
    assert outcome.ok, out
    assert "b1: data" in out
    assert re.search(r"inet addr:172\.17\.0\.2 .*\n(.*\n)*b2: \n", out), out
    # a third container not sharing b1's namespace gets the next address
    assert "inet addr:172.17.0.3" in out


def test_httpd_in_b2_is_reached_from_b1(lab_host):
    outcome, out = sh(lab_host, """
        docker run -d --name b1 busybox sleep 300 >/dev/null
        docker run -d --name b2 --network container:b1 busybox \
            sh -c "echo 'hello world' > /tmp/index.html; httpd -f -h /tmp" >/dev/null
        for i in $(seq 50); do docker exec b1 wget -O - -q 172.17.0.2:80 && break; sleep 0.1; done
    """)
    assert outcome.ok, out
    assert "hello world" in out


def test_host_mode_sees_the_lab_host_interfaces(lab_host):
    outcome, out = sh(lab_host, """
        docker run -d --name h1 --network host busybox sh -c "echo 'hello host' > /tmp/index.html; httpd -f -p 80 -h /tmp" >/dev/null
        docker run --rm --network host busybox ifconfig
        for i in $(seq 50); do wget -O - -q 192.168.118.137:80 2>/dev/null && break; sleep 0.1; done
    """)
    assert outcome.ok, out
    assert "docker0" in out and "ens33" in out and "inet addr:192.168.118.137" in out
    assert "hello host" in out


def test_none_mode_has_only_lo(lab_host):
    outcome, out = sh(lab_host, "docker run --rm --network none busybox ifconfig -a")
    assert outcome.ok, out
    assert re.findall(r"^(\S+)\s+Link encap", out, re.M) == ["lo"]


def test_port_mapping_adds_a_dnat_rule(lab_host):
    outcome, out = sh(lab_host, "docker run -d -p 8080:80 --name web busybox httpd -f -h /tmp >/dev/null; "
                                "iptables -t nat -vnL DOCKER")
    assert outcome.ok, out
    assert re.search(r"DNAT\s+(tcp|6)\s.*tcp dpt:8080 to:172\.17\.0\.\d+:80", out), out


def test_netns_add_twice_says_file_exists(lab_host):
    outcome, out = sh(lab_host, "ip netns add ns0; ip netns list; ls /var/run/netns/; ip netns add ns0")
    assert outcome.exit_code != 0
    # iproute2 6.1 names /run/netns (the seed's older one /var/run/netns, a link to it)
    assert re.search(r'Cannot create namespace file "(/var)?/run/netns/ns0": File exists', out), out
    assert out.count("ns0") >= 3


def test_ping_with_lo_down_is_unreachable_then_works(lab_host):
    outcome, out = sh(lab_host, "ip netns add ns0; ip netns exec ns0 ip addr; ip netns exec ns0 ping -c1 127.0.0.1")
    assert outcome.exit_code != 0
    assert "state DOWN" in out and "Network is unreachable" in out
    outcome, out = sh(lab_host, "ip netns exec ns0 ip link set lo up; ip netns exec ns0 ping -c2 -i0.2 127.0.0.1")
    assert outcome.ok, out
    assert "2 received" in out


def test_veth_pair_across_ns0_and_ns1_pings_and_renames(lab_host):
    outcome, out = sh(lab_host, """
        set -e
        ip netns add ns0; ip netns add ns1
        ip link add type veth
        ip link set veth0 netns ns0; ip link set veth1 netns ns1
        ip netns exec ns0 ip link set veth0 up
        ip netns exec ns0 ip addr add 10.0.0.1/24 dev veth0
        ip netns exec ns1 ip link set lo up
        ip netns exec ns1 ip link set veth1 up
        ip netns exec ns1 ip addr add 10.0.0.2/24 dev veth1
        ip netns exec ns1 ping -c2 -i0.2 10.0.0.1
        ip netns exec ns0 ip link set veth0 down
        ip netns exec ns0 ip link set dev veth0 name eth0
        ip netns exec ns0 ip link set eth0 up
        ip netns exec ns0 ip addr
        ip link
    """)
    assert outcome.ok, out
    assert "2 received" in out
    assert re.search(r"eth0@if\d+:.*\n.*link-netns ns1\n\s+inet 10\.0\.0\.1/24", out), out
    # the pair left the lab host's own namespace
    assert "veth0" not in out.split("ip link")[-1]


def test_hostname_dns_and_add_host(lab_host):
    outcome, out = sh(lab_host, "docker run --rm --hostname daxinyu --dns 114.114.114.114 "
                                "--add-host www.a.com:1.1.1.1 busybox sh -c 'hostname; cat /etc/hosts /etc/resolv.conf'")
    assert outcome.ok, out
    assert out.startswith("daxinyu\n")
    assert re.search(r"^1\.1\.1\.1\s+www\.a\.com$", out, re.M)
    assert re.search(r"^172\.17\.0\.2\s+daxinyu$", out, re.M)
    assert re.search(r"^nameserver 114\.114\.114\.114$", out, re.M)


def test_daemon_json_dns_after_restart_docker(lab_host):
    outcome, out = sh(lab_host, """
        set -e
        echo '{"dns": ["114.114.114.114", "8.8.8.8"]}' > /etc/docker/daemon.json
        restart-docker
        docker run --rm busybox cat /etc/resolv.conf
    """, timeout=90)
    sh(lab_host, "echo '{}' > /etc/docker/daemon.json; restart-docker")
    assert outcome.ok, out
    assert "nameserver 114.114.114.114" in out and "nameserver 8.8.8.8" in out


def test_terminal_types_into_a_running_container(lab_host):
    """The seed's flow: start b1 with docker run -it, then run ifconfig inside it."""
    term = executor.open_terminal(lab_host, "b1")
    try:
        out = Output()
        run = term.type("docker run -it --name b1 --rm busybox", on_output=out, timeout=60)
        assert run.wait(70).status == executor.DONE, out.text
        out.clear()
        run = term.type("ifconfig eth0; hostname", on_output=out, timeout=30)
        assert run.wait(40).ok
        text = out.text
        assert "inet addr:172.17.0.2" in text and "printf" not in text and "7770" not in text
        out.clear()
        run = term.type("exit 3", on_output=out, timeout=30)
        outcome = run.wait(40)
        assert outcome.status == executor.FAILED and outcome.exit_code == 3
        _, ps = sh(lab_host, "docker ps -a --format '{{.Names}}'")
        assert "b1" not in ps
    finally:
        term.close()
