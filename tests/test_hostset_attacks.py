"""Two learners' sets of lab hosts cannot reach each other, whatever their roots do on their lab networks, and
no learner reaches the namespace of their set's bridge or makes the server wire anything into another set.

Both sets have the same addresses and MACs (each host's ens33 is the seed's, by its place in its set): only
the bridge each set has alone tells them apart. Sniffers on the other set's hosts count every frame that
carries the attacker's mark or names 192.168.118.201 (an address the other set alone has); a sniffer on the
attacker's own second host shows the attacks were sent at all.
"""
from __future__ import annotations

import os

import pytest

from conftest import sh
from hostset_support import SHOUT, SNIFF, host_set
from webapp import executor
from webapp.labhost.pool import create

SNIFF_FOR = 25   # seconds the sniffers listen: longer than every attack together


@pytest.fixture(scope="module")
def set_a(settings):
    with host_set(settings, ["node1", "node2"]) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def set_b(settings):
    with host_set(settings, ["node1", "node2"]) as hosts:
        yield hosts


def put(host, path: str, text: str) -> None:
    outcome, out = sh(host, f"cat > {path} <<'LABNB_EOF'\n{text}\nLABNB_EOF")
    assert outcome.exit_code == 0, out


def sniffers(hosts) -> list:
    procs = []
    for host in hosts:
        put(host, "/tmp/sniff.py", SNIFF)
        procs.append(executor.start(host, f"python3 /tmp/sniff.py {SNIFF_FOR} /tmp/seen", window=None))
    return procs


def seen(host, proc) -> int:
    assert proc.wait(SNIFF_FOR + 30) is not None
    outcome, out = sh(host, "cat /tmp/seen")
    return int(out.strip())


def test_same_addresses_in_both_sets(set_a, set_b):
    for a, b in zip(set_a.hosts(), set_b.hosts()):
        _, out_a = sh(a, "ip -br addr show ens33; cat /sys/class/net/ens33/address")
        _, out_b = sh(b, "ip -br addr show ens33; cat /sys/class/net/ens33/address")
        assert out_a.split()[2:] == out_b.split()[2:]


def test_nothing_a_learner_sends_on_their_lab_network_reaches_the_other_set(set_a, set_b):
    a1, a2 = set_a.hosts()
    b1, b2 = set_b.hosts()
    sh(b2, "ip addr add 192.168.118.201/24 dev ens33")
    watchers = sniffers([a2, b1, b2])
    put(a1, "/tmp/shout.py", SHOUT)
    attacks = [
        "ping -c 2 -W 1 192.168.118.201",                              # ARP for the other set's address
        "ping -b -c 2 -W 1 -p 4c41424e424d41524b 192.168.118.255",     # broadcast ping carrying the mark
        "python3 /tmp/shout.py",                                       # UDP broadcasts
        "timeout 3 bash -c 'echo LABNBMARK > /dev/tcp/192.168.118.201/8080'",   # TCP
        # a VXLAN whose remote is in the other set's range
        "ip link add vx0 type vxlan id 42 remote 192.168.118.201 dstport 4789 dev ens33 && "
        "ip addr add 10.9.9.1/24 dev vx0 && ip link set vx0 up && ping -c 2 -W 1 10.9.9.2; "
        "python3 /tmp/shout.py",
        # MAC spoofing: the other set's node2 MAC (also the own set's), and a made-up one
        "ip link set ens33 address 00:0c:29:b5:9a:14 && python3 /tmp/shout.py && ping -c 1 -W 1 192.168.118.201",
        "ip link set ens33 address 02:00:00:00:00:99 && python3 /tmp/shout.py",
        # ens33 moved into a namespace of the learner's, used from there
        "ip netns add elsewhere && ip link set ens33 netns elsewhere && "
        "ip -n elsewhere link set ens33 up && ip -n elsewhere addr add 192.168.118.150/24 dev ens33 && "
        "ip netns exec elsewhere python3 /tmp/shout.py; ip netns exec elsewhere ping -c 1 -W 1 192.168.118.201",
        # ens33 deleted, a new link of that name made in its place
        "ip -n elsewhere link del ens33; ip link add ens33 type dummy && ip link set ens33 up && "
        "ip addr add 192.168.118.137/24 dev ens33 && python3 /tmp/shout.py; ping -c 1 -W 1 192.168.118.201",
    ]
    for attack in attacks[:-2]:   # while ens33 is still on the bridge: the own set sees each
        sh(a1, attack, timeout=30)
    for attack in attacks[-2:]:
        sh(a1, attack, timeout=30)
    own, *others = (seen(h, p) for h, p in zip([a2, b1, b2], watchers))
    assert own > 0, "the attacks were not sent: the own set's node2 saw none of them"
    assert others == [0, 0], f"frames of set A reached set B: {others}"


def test_the_other_set_answers_nothing_over_tcp(set_a, set_b):
    b1 = set_b.host("node1")
    proc = executor.start(b1, "python3 -c \"import socket; s = socket.create_server(('0.0.0.0', 8088)); "
                              "c, _ = s.accept(); c.sendall(b'FROM-B')\"", window=None, timeout=60)
    try:
        _, out = sh(set_a.host("node2"), "for i in 1 2 3; do timeout 2 bash -c "
                                         "'exec 3<>/dev/tcp/192.168.118.137/8088; cat <&3'; sleep 0.2; done")
        assert "FROM-B" not in out
    finally:
        proc.end()


def test_a_learner_cannot_reach_their_sets_bridge_namespace(set_a):
    a2 = set_a.host("node2")   # its ens33 untouched by the attacks above
    ports = set_a.network.ports()
    bridge_ns = os.fstat(set_a.network._fd).st_ino
    _, out = sh(a2, "ip netns list; ls /run/netns; stat -L -c %i /proc/[0-9]*/ns/net 2>/dev/null | sort -u")
    assert str(bridge_ns) not in out.split()
    # The kernel's id of the bridge's namespace, as seen from the lab host's (what ens33's peer names), used
    # in netlink requests: listing its links, a macvlan on its bridge, deleting its bridge.
    attack = r"""
import socket, struct, subprocess, json
links = json.loads(subprocess.run(["ip", "-j", "-d", "link", "show", "ens33"], capture_output=True, text=True).stdout)
ids = [links[0]["link_netnsid"]]
print("ids", ids)
def attr(kind, data):
    return struct.pack("HH", 4 + len(data), kind) + data + b"\0" * (-len(data) % 4)
def ask(kind, flags, body):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.settimeout(2)
    s.send(struct.pack("IHHII", 16 + len(body), kind, 1 | 4 | flags, 1, 0) + body)
    data = s.recv(65535)
    length, typ = struct.unpack_from("IH", data)
    if typ == 2:
        return struct.unpack_from("i", data, 16)[0]
    return "ANSWERED %d" % typ
for nsid in ids:
    info = struct.pack("BxHiII", 0, 0, 2, 0, 0)
    target = attr(46, struct.pack("i", nsid))                 # IFLA_TARGET_NETNSID
    print("getlink", nsid, ask(18, 0, info + target))          # RTM_GETLINK of the bridge (index 2)
    print("dellink", nsid, ask(17, 0, info + target))          # RTM_DELLINK of the bridge
    macvlan = attr(3, b"spy0\0") + attr(5, struct.pack("I", 2)) + attr(37, struct.pack("i", nsid)) + \
        attr(18, attr(1, b"macvlan\0"))                        # IFLA_LINK 2 in IFLA_LINK_NETNSID's namespace
    print("macvlan", nsid, ask(16, 0x400 | 0x200, struct.pack("BxHiII", 0, 0, 0, 0, 0) + macvlan))
"""
    put(a2, "/tmp/attack.py", attack)
    _, out = sh(a2, "python3 /tmp/attack.py; ip link show spy0")
    assert "ids [" in out, out
    tried = [line for line in out.splitlines() if line.startswith(("getlink", "dellink", "macvlan"))]
    assert len(tried) == 3, out
    for line in tried:
        assert "ANSWERED" not in line and not line.endswith(" 0"), line
    assert 'does not exist' in out   # no spy0
    assert set_a.network.ports() == ports and "br-" + set_a.network.id in ports


def test_a_learner_cannot_make_the_server_wire_into_another_set(settings, set_a, set_b):
    """A learner who broke their ens33 and planted links, hostnames and /etc/hosts of their choosing, then
    grows their set: the server wires the new host into their own bridge alone; the other set's is as it was."""
    a1 = set_a.host("node1")
    sh(a1, "ip link del ens33; ip link add ens33 type dummy; ip link add lnb00000000 type dummy; "
           "hostname node2; echo '192.168.118.138 node1' > /etc/hosts", timeout=30)
    b_ports, a_ports = set_b.network.ports(), set_a.network.ports()
    extra = create(settings)
    try:
        set_a.network.wire([*set_a.members(), ("node3", extra)])
        assert set_b.network.ports() == b_ports
        assert set_a.network.ports() == sorted([*a_ports, set_a.network.id + "-2"])
        _, out = sh(extra, "hostname; ping -c 1 -W 2 node2")
        assert out.startswith("node3") and "1 received" in out
        _, out = sh(set_b.host("node2"), "ping -c 1 -W 1 192.168.118.139")
        assert "1 received" not in out
    finally:
        extra.destroy()


def test_a_set_has_at_most_five_hosts(settings, set_a):
    from webapp.labhost.base import LabHostError
    with pytest.raises(LabHostError, match="at most 5"):
        set_a.network.wire([(f"n{i}", set_a.host()) for i in range(6)])


def test_a_set_refuses_a_name_that_is_not_a_host_name(set_a):
    """The names go to the job as arguments, never as shell text; still, a set refuses a name that is not one."""
    from webapp.labhost.base import LabHostError
    from webapp.labhost.hostset import HostSet
    with pytest.raises(LabHostError, match="not a host name"):
        HostSet([("$(reboot)", set_a.host())])
