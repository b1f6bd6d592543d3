"""The network picture of a real lab host: namespaces, interfaces, veth pairs, bridges, and what a hostile
lab host can and cannot make the server read."""
from __future__ import annotations

import errno
import os

import pytest

from conftest import sh
from webapp.labhost import netlink
from webapp.network import picture

SETUP = """
docker run -d --name b1 busybox sleep 3600
docker run -d --name b2 --network container:b1 busybox sleep 3600
docker run -d --name lone --network none busybox sleep 3600
docker run -d --name h1 --network host busybox sleep 3600
ip netns add ns0 && ip netns add ns1
ip link add veth0 type veth peer name veth1
ip link set veth0 netns ns0 && ip link set veth1 netns ns1
ip netns exec ns0 ip addr add 10.0.0.1/24 dev veth0 && ip netns exec ns0 ip link set veth0 up
ip netns exec ns1 ip addr add 10.0.0.2/24 dev veth1 && ip netns exec ns1 ip link set veth1 up
ip link add down0 type bridge
"""


@pytest.fixture(scope="module")
def drawn(lab_host):
    outcome, out = sh(lab_host, SETUP, timeout=120)
    assert outcome.ok, out
    return picture.read(lab_host)


def _box(pic, member):
    [ns] = [ns for ns in pic["namespaces"] if member in [m["name"] for m in ns["members"]]]
    return ns


def _iface(ns, name):
    [iface] = [i for i in ns["interfaces"] if i["name"] == name]
    return iface


def _all_ifaces(pic):
    return {i["id"]: i for ns in pic["namespaces"] for i in ns["interfaces"]}


def test_containers_sharing_a_namespace_are_one_box(drawn):
    box = _box(drawn, "b1")
    assert box is _box(drawn, "b2") and box["kind"] == "container"
    assert {m["name"]: m["network"] for m in box["members"]} == {"b1": "bridge", "b2": "container:b1"}   # "default" before Docker 25
    assert _iface(box, "eth0")["addresses"] == ["172.17.0.2/16"]
    assert "b1 + b2" in box["label"]


def test_a_bridge_containers_veth_is_plugged_into_docker0(drawn):
    host = drawn["namespaces"][0]
    assert host["kind"] == "lab host"
    eth0 = _iface(_box(drawn, "b1"), "eth0")
    assert eth0["kind"] == "veth"
    peer = _all_ifaces(drawn)[eth0["peer"]]
    assert peer in host["interfaces"] and peer["peer"] == eth0["id"]
    docker0 = _iface(host, "docker0")
    assert docker0["kind"] == "bridge" and "172.17.0.1/16" in docker0["addresses"]
    assert peer["master"] == docker0["id"]
    assert {"kind": "port", "source": peer["id"], "target": docker0["id"]} in drawn["links"]
    assert {"kind": "veth", "source": min(eth0["id"], peer["id"]), "target": max(eth0["id"], peer["id"])} \
        in drawn["links"]


def test_host_mode_lives_in_the_lab_hosts_box_and_none_mode_has_only_lo(drawn):
    host = drawn["namespaces"][0]
    assert "h1" in [m["name"] for m in host["members"]] and "host network: h1" in host["label"]
    assert {"lo", "ens33", "docker0"} <= {i["name"] for i in host["interfaces"]}
    assert _iface(host, "ens33")["addresses"] == ["192.168.118.137/24"]
    lone = _box(drawn, "lone")
    assert [i["name"] for i in lone["interfaces"]] == ["lo"]
    assert _iface(lone, "lo")["state"] == "UP"


def test_named_namespaces_joined_by_a_veth_pair(drawn):
    ns0, ns1 = _box(drawn, "ns0"), _box(drawn, "ns1")
    assert ns0["kind"] == ns1["kind"] == "netns" and ns0["label"] == "netns ns0"
    veth0, veth1 = _iface(ns0, "veth0"), _iface(ns1, "veth1")
    assert veth0["addresses"] == ["10.0.0.1/24"] and veth1["addresses"] == ["10.0.0.2/24"]
    assert veth0["peer"] == veth1["id"] and veth1["peer"] == veth0["id"]
    assert veth0["state"] == "UP"   # both ends up: the carrier is there
    assert _iface(ns0, "lo")["state"] == "DOWN"


def test_states_and_layout(drawn):
    host = drawn["namespaces"][0]
    assert _iface(host, "down0")["state"] == "DOWN"
    for ns in drawn["namespaces"]:
        for iface in ns["interfaces"]:   # every interface drawn inside its box
            assert ns["x"] < iface["x"] < ns["x"] + ns["width"] and ns["y"] < iface["y"] < ns["y"] + ns["height"]
    assert drawn["width"] > 0 and drawn["height"] > host["height"]
    assert drawn["notes"] == [] and drawn["took_ms"] > 0


def test_a_veth_whose_peer_went_down_shows_no_carrier(lab_host, drawn):
    sh(lab_host, "ip netns exec ns1 ip link set veth1 down")
    try:
        pic = picture.read(lab_host)
        assert _iface(_box(pic, "ns0"), "veth0")["state"] == "NO-CARRIER"
    finally:
        sh(lab_host, "ip netns exec ns1 ip link set veth1 up")


def test_what_a_hostile_lab_host_plants_is_refused(lab_host, drawn):
    """A file, a FIFO (opening it must not hang), a symlink through /proc (a magic link), a namespace of
    another kind, a name full of control characters: each is left out with a note, the rest is drawn."""
    outcome, out = sh(lab_host, r"""
        touch /run/netns/file && mkfifo /run/netns/fifo && ln -s /proc/1/ns/net /run/netns/magic
        touch /run/netns/uts && mount --bind /proc/self/ns/uts /run/netns/uts
        ip netns add "$(printf 'x\033[31my\001')"
    """)
    assert outcome.ok, out
    try:
        pic = picture.read(lab_host)
        notes = "\n".join(pic["notes"])
        for name in ("file", "fifo", "uts"):
            assert f"netns {name}: not a network namespace of this lab host" in notes
        assert "/run/netns/magic: cannot open it" in notes
        names = [m["name"] for ns in pic["namespaces"] for m in ns["members"]]
        assert "x\N{REPLACEMENT CHARACTER}[31my\N{REPLACEMENT CHARACTER}" in names
        assert {"b1", "b2", "lone", "h1", "ns0", "ns1"} <= set(names)
    finally:
        sh(lab_host, "umount /run/netns/uts; rm -f /run/netns/file /run/netns/fifo /run/netns/magic "
                     "/run/netns/uts; ip netns delete \"$(printf 'x\\033[31my\\001')\"")


def test_the_machines_namespace_is_not_the_lab_hosts(lab_host):
    """Whatever path led to it, a namespace of the machine is never read as the lab host's."""
    machine = os.open("/proc/self/ns/net", os.O_RDONLY)
    own = lab_host.namespace_fd("net")
    try:
        assert not lab_host.owns_namespace(machine)
        assert lab_host.owns_namespace(own)
    finally:
        os.close(machine)
        os.close(own)


FORGE = r"""
import socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
name = b"forged\0\0"
attr = struct.pack("HH", 4 + len(name), 3) + name                 # IFLA_IFNAME
body = struct.pack("BxHiII", 0, 1, 999, 1, 0) + attr               # ifinfomsg: index 999, IFF_UP
msg = struct.pack("IHHII", 16 + len(body), 16, 2, 1, 0) + body    # RTM_NEWLINK, NLM_F_MULTI, seq 1
try:
    s.sendto(msg, (port, 0))
    print("sent")
except OSError as e:
    print("refused", e.errno)
"""


@pytest.fixture
def server_socket(lab_host):
    """A netlink socket of the server's in the lab host's namespace, as a picture's read makes one."""
    own = lab_host.namespace_fd("net")
    try:
        [sock] = netlink.sockets_in([own])
    finally:
        os.close(own)
    yield sock
    sock.close()


def test_a_learner_cannot_inject_netlink_messages(lab_host, server_socket):
    """The lab host's root may send netlink messages to any socket in its namespace: the server's sockets
    take only the kernel's."""
    port = server_socket.getsockname()[0]
    outcome, out = sh(lab_host, f"cat > /tmp/forge.py <<'EOF'\n{FORGE}\nEOF\npython3 /tmp/forge.py {port}")
    assert f"refused {errno.ECONNREFUSED}" in out, out
    names = [m.get_attr("IFLA_IFNAME") for m in netlink.Rtnl(server_socket).links()]
    assert "forged" not in names and "lo" in names


def test_the_servers_netlink_socket_does_not_tell_the_servers_pid(lab_host, server_socket):
    """An automatically bound netlink socket's port id is its process's pid as the machine sees it, which
    the learner's /proc/net/netlink lists while a picture is read. The server binds one of chance (found by
    attacking the first version)."""
    outcome, out = sh(lab_host, "awk 'NR > 1 && $2 == 0 { print $3 }' /proc/net/netlink")
    assert outcome.ok, out
    assert str(os.getpid()) not in out.split() and str(server_socket.getsockname()[0]) in out.split()
