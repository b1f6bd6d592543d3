"""The network picture of a set of two lab hosts (``webapp/network/hosts.py``): each host a group of its own
with its boxes, what listens on it, and the lab network above them joined to each host's ``ens33``; as
JSON, laid out, and as SVG. On fake lab hosts, whose pictures are scripted; the browser's side is
tests/test_ui_hosts.py."""
from __future__ import annotations

import copy

import fakes

from webapp.guard import sharing
from webapp.network import hosts, picture, svg
from webapp.network.views import Pictures


def _iface(ns: str, index: int, name: str, kind: str, addresses=(), peer=None, master=None) -> dict:
    return {"id": f"{ns}-{index}", "index": index, "name": name, "kind": kind, "state": "UP", "mac": "",
            "mtu": 1500, "addresses": list(addresses), "master": master, "peer": peer}


def _scripted(address: str, container: bool) -> dict:
    """A lab host's own picture as netpicture.py reads it: lo, ens33 (its peer in the server's namespace,
    not shown) and, with ``container``, docker0 and a container's veth pair."""
    own = [_iface("n0", 1, "lo", "loopback", ["127.0.0.1/8"]), _iface("n0", 2, "ens33", "veth", [address])]
    spaces = [{"id": "n0", "kind": "lab host", "label": "lab host", "interfaces": own,
               "members": [{"kind": "lab host", "name": "lab host", "network": ""}]}]
    links = []
    if container:
        own += [_iface("n0", 3, "docker0", "bridge", ["172.17.0.1/16"]),
                _iface("n0", 5, "vethab", "veth", peer="n1-4", master="n0-3")]
        spaces.append({"id": "n1", "kind": "container", "label": "container web",
                       "members": [{"kind": "container", "name": "web", "network": "bridge"}],
                       "interfaces": [_iface("n1", 4, "eth0", "veth", ["172.17.0.2/16"], peer="n0-5")]})
        links = [{"kind": "port", "source": "n0-5", "target": "n0-3"},
                 {"kind": "veth", "source": "n0-5", "target": "n1-4"}]
    return {"lab_host": "", "namespaces": spaces, "links": links, "notes": []}


class Scripted(fakes.FakeLabHost):
    """A fake lab host whose network is ``scripted``."""

    def __init__(self, address: str, container: bool, ports: list[tuple[int, str]]):
        super().__init__(fakes.settings("/nonexistent"))
        self.scripted = _scripted(address, container)
        self.ports = ports

    def network_picture(self, sandbox_keys, budget):
        return dict(copy.deepcopy(self.scripted), lab_host=self.id)


def _set() -> list[tuple[str, Scripted]]:
    return [("node1", Scripted("192.168.118.137/24", True, [(80, "0.0.0.0"), (80, "::"), (22, "0.0.0.0")])),
            ("node2", Scripted("192.168.118.138/24", False, []))]


def _overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_two_hosts_are_two_groups_joined_by_the_lab_network():
    pic, fresh = Pictures().of_set(_set())
    assert fresh
    assert [(h["name"], h["id"]) for h in pic["hosts"]] == [("node1", "h0"), ("node2", "h1")]
    assert pic["hosts"][0]["label"] == "node1 · listening on tcp 22, 80"
    assert pic["hosts"][0]["ports"] == [{"port": 22, "listens_on": ["0.0.0.0"]},
                                        {"port": 80, "listens_on": ["0.0.0.0", "::"]}]
    assert pic["hosts"][1]["label"] == "node2 · nothing listens"
    net, *spaces = pic["namespaces"]
    assert net["kind"] == "lab network" and "192.168.118.0/24" in net["label"]
    assert [(ns["host"], ns["id"], ns["label"]) for ns in spaces] == [
        ("node1", "h0-n0", "lab host"), ("node1", "h0-n1", "container web"), ("node2", "h1-n0", "lab host")]
    ids = [i["id"] for ns in pic["namespaces"] for i in ns["interfaces"]]
    assert len(ids) == len(set(ids))   # the two hosts' n0-2 stay apart
    assert {"kind": "lab", "source": "h0-n0-2", "target": "lab-0"} in pic["links"]
    assert {"kind": "lab", "source": "h1-n0-2", "target": "lab-1"} in pic["links"]
    assert {"kind": "veth", "source": "h0-n0-5", "target": "h0-n1-4"} in pic["links"]   # a host's own links too
    every = set(ids)
    assert all(link["source"] in every and link["target"] in every for link in pic["links"])
    assert pic["notes"] == []


def test_the_layout_keeps_hosts_apart_and_the_lab_network_above_each_ens33():
    pic, _ = Pictures().of_set(_set())
    one, two = pic["hosts"]
    assert not _overlap(one, two) and one["x"] + one["width"] < two["x"]
    net = pic["namespaces"][0]
    for group in pic["hosts"]:
        assert net["y"] + net["height"] < group["y"]   # room for the lines down to the hosts
        inside = [ns for ns in pic["namespaces"] if ns.get("host") == group["name"]]
        for ns in inside:   # each box within its host's group
            assert group["x"] < ns["x"] and ns["x"] + ns["width"] < group["x"] + group["width"]
            assert group["y"] < ns["y"] and ns["y"] + ns["height"] < group["y"] + group["height"]
    ens33 = {i["id"]: i for ns in pic["namespaces"] for i in ns["interfaces"]}
    for port in net["interfaces"]:
        assert port["x"] == ens33[port["peer"]]["x"]   # a straight line up from each host's ens33
        assert net["x"] < port["x"] < net["x"] + net["width"]
    assert pic["width"] >= two["x"] + two["width"] and pic["height"] >= max(g["y"] + g["height"] for g in (one, two))


def test_the_hosts_pictures_are_shared_not_changed(clock):
    clock.into(sharing)   # no time passes between the reads: the second is the first, shared
    members = _set()
    pictures = Pictures()
    own, _ = pictures.get(members[0][1], ports=True)
    before = copy.deepcopy(own)
    pictures.of_set(members)
    shared, fresh = pictures.get(members[0][1], ports=True)
    assert not fresh and shared == before   # the set's picture copied it, ids and places as they were


def test_a_host_without_ens33_is_noted_and_ports_that_cannot_be_read_are_said():
    members = _set()
    members[1][1].scripted["namespaces"][0]["interfaces"].pop()   # the learner deleted ens33 on node2

    def broken():
        raise fakes.LabHostError("sock_diag refused")
    members[1][1].listening_ports = broken
    pic, _ = Pictures().of_set(members)
    assert "node2: no ens33 in its lab host's own namespace, not joined to the lab network in the picture" in pic["notes"]
    assert "node2: listening ports not shown: sock_diag refused" in pic["notes"]
    assert pic["hosts"][1]["label"] == "node2 · listening ports not read"
    assert [link for link in pic["links"] if link["kind"] == "lab"] == [
        {"kind": "lab", "source": "h0-n0-2", "target": "lab-0"}]


def test_one_host_s_picture_has_no_hosts_and_no_ports():
    host = _set()[0][1]
    assert set(picture.read(host)) == {"lab_host", "namespaces", "links", "notes", "width", "height", "took_ms"}


def test_the_svg_of_a_set_names_both_hosts_and_draws_the_lab_network():
    members = _set()
    members[0][1].scripted["namespaces"][1]["label"] = "container <script>alert(1)</script>"
    pic, _ = Pictures().of_set(members)
    drawn = svg.render(pic)
    ids = ", ".join(f"{n} ({h.id})" for n, h in members)
    assert f"<title>Network of lab hosts {ids}</title>" in drawn
    assert drawn.count('class="host"') == 2 and drawn.count('class="lab"') == 2
    assert "node1 · listening on tcp 22, 80" in drawn and "lab network 192.168.118.0/24" in drawn
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn


def test_many_listening_ports_are_counted_past_the_first():
    members = _set()
    members[1][1].ports = [(p, "0.0.0.0") for p in range(1000, 1000 + hosts.MAX_PORTS + 5)]
    pic, _ = Pictures().of_set(members)
    assert pic["hosts"][1]["label"].endswith(f", {1000 + hosts.MAX_PORTS - 1} and 5 more")
