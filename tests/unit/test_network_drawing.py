"""The network picture's layout and its SVG (webapp/network/layout.py, svg.py), from pictures made here."""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from webapp.network import layout, svg
from webapp.network.layout import IFACE_H, IFACE_W, MARGIN, PER_ROW, place

SVG = "{http://www.w3.org/2000/svg}"


def iface(ns: str, index: int, name: str, kind: str = "veth", state: str = "UP", addresses=(), master=None,
          peer=None) -> dict:
    return {"id": f"{ns}-{index}", "index": index, "name": name, "kind": kind, "state": state,
            "mac": "02:42:ac:11:00:02", "mtu": 1500, "addresses": list(addresses), "master": master, "peer": peer}


def namespace(ns_id: str, kind: str, label: str, interfaces: list[dict]) -> dict:
    return {"id": ns_id, "kind": kind, "label": label, "members": [], "interfaces": interfaces}


def picture() -> dict:
    """A lab host with docker0 and two containers on it, and a netns on a veth of its own."""
    host = namespace("n0", "lab host", "lab host lh-1", [
        iface("n0", 1, "lo", "loopback", addresses=["127.0.0.1/8"]),
        iface("n0", 2, "ens33", "device", addresses=["192.168.118.137/24"]),
        iface("n0", 3, "docker0", "bridge", addresses=["172.17.0.1/16"]),
        iface("n0", 5, "vethb", master="n0-3", peer="n2-2"),
        iface("n0", 4, "vetha", master="n0-3", peer="n1-2"),
        iface("n0", 6, "veth0", peer="n3-2"),
    ])
    a = namespace("n1", "container", "container a", [iface("n1", 1, "lo", "loopback"), iface("n1", 2, "eth0", peer="n0-4")])
    b = namespace("n2", "container", "container b", [iface("n2", 1, "lo", "loopback"), iface("n2", 2, "eth0", peer="n0-5")])
    ns = namespace("n3", "netns", "netns ns0", [iface("n3", 2, "veth1", peer="n0-6", state="DOWN")])
    links = [{"kind": "port", "source": "n0-4", "target": "n0-3"}, {"kind": "port", "source": "n0-5", "target": "n0-3"},
             {"kind": "veth", "source": "n0-4", "target": "n1-2"}, {"kind": "veth", "source": "n0-5", "target": "n2-2"},
             {"kind": "veth", "source": "n0-6", "target": "n3-2"}]
    # the netns first and b before a: the layout orders them
    return {"lab_host": "lh-1", "namespaces": [host, ns, b, a], "links": links, "notes": []}


@pytest.fixture
def drawn() -> dict:
    p = picture()
    place(p)
    return p


def boxes(p: dict) -> dict:
    return {ns["id"]: ns for ns in p["namespaces"]}


def test_an_empty_picture_is_its_margins():
    p = {"lab_host": "lh-1", "namespaces": [], "links": []}
    place(p)
    assert (p["width"], p["height"]) == (2 * MARGIN, 2 * MARGIN)


def test_the_lab_host_is_the_top_box(drawn):
    top = drawn["namespaces"][0]
    assert top["id"] == "n0" and top["y"] == MARGIN
    assert all(ns["y"] > top["y"] + top["height"] for ns in drawn["namespaces"][1:])


def test_the_lab_hosts_own_interfaces_come_first_then_the_plugged_ones_in_a_row_below(drawn):
    by_name = {i["name"]: i for i in drawn["namespaces"][0]["interfaces"]}
    own, plugged = ["lo", "ens33", "docker0"], ["vetha", "vethb", "veth0"]
    assert len({by_name[n]["y"] for n in own}) == 1 and len({by_name[n]["y"] for n in plugged}) == 1
    assert by_name["vetha"]["y"] > by_name["lo"]["y"]
    assert [by_name[n]["x"] for n in own] == sorted(by_name[n]["x"] for n in own)
    # bridge ports under their bridge's order, by index; the loose veth after them
    assert by_name["vetha"]["x"] < by_name["vethb"]["x"] < by_name["veth0"]["x"]


def test_boxes_below_go_in_the_order_of_the_interfaces_they_hang_from(drawn):
    assert [ns["id"] for ns in drawn["namespaces"]] == ["n0", "n1", "n2", "n3"]
    b = boxes(drawn)
    assert b["n1"]["x"] < b["n2"]["x"] < b["n3"]["x"] and b["n1"]["y"] == b["n2"]["y"] == b["n3"]["y"]


def test_a_box_puts_its_linked_interface_first_and_lo_last(drawn):
    a = boxes(drawn)["n1"]
    eth0, lo = (next(i for i in a["interfaces"] if i["name"] == n) for n in ("eth0", "lo"))
    assert eth0["y"] < lo["y"] and eth0["x"] == lo["x"]


def test_every_interface_lies_inside_its_box_and_every_box_inside_the_picture(drawn):
    for ns in drawn["namespaces"]:
        assert 0 <= ns["x"] and ns["x"] + ns["width"] <= drawn["width"]
        assert 0 <= ns["y"] and ns["y"] + ns["height"] <= drawn["height"]
        for i in ns["interfaces"]:
            assert ns["x"] <= i["x"] - IFACE_W / 2 and i["x"] + IFACE_W / 2 <= ns["x"] + ns["width"]
            assert ns["y"] <= i["y"] - IFACE_H / 2 and i["y"] + IFACE_H / 2 <= ns["y"] + ns["height"]


def test_no_working_keys_are_left_in_the_picture(drawn):
    assert all("rows" not in ns for ns in drawn["namespaces"])


def test_boxes_linked_to_nothing_go_last_containers_first_then_by_label():
    p = picture()
    p["namespaces"] += [namespace("n7", "netns", "ns1", []), namespace("n8", "netns", "ns0", []),
                        namespace("n9", "container", "web", [])]
    place(p)
    assert [ns["id"] for ns in p["namespaces"]] == ["n0", "n1", "n2", "n3", "n9", "n8", "n7"]


def test_many_boxes_wrap_into_rows(drawn):
    p = picture()
    host = p["namespaces"][0]
    extra = [namespace(f"n{k}", "netns", f"netns x{k}", [iface(f"n{k}", 1, "lo", "loopback")]) for k in range(4, 12)]
    p["namespaces"] = [host, *extra]
    p["links"] = []
    place(p)
    rows = sorted({ns["y"] for ns in p["namespaces"][1:]})
    assert len(rows) == 2 and sum(ns["y"] == rows[0] for ns in p["namespaces"]) == PER_ROW


def test_a_lab_host_with_many_interfaces_wraps_them(drawn):
    p = picture()
    p["namespaces"] = [namespace("n0", "lab host", "lab host lh-1",
                                 [iface("n0", k, f"d{k}", "device") for k in range(1, layout.HOST_COLUMNS + 3)])]
    p["links"] = []
    place(p)
    ys = sorted({i["y"] for i in p["namespaces"][0]["interfaces"]})
    assert len(ys) == 2


def test_the_same_picture_is_laid_out_the_same(drawn):
    again = picture()
    place(again)
    assert again == drawn


# -- the SVG ------------------------------------------------------------------------------------------------

def test_the_svg_is_well_formed_and_sized_with_room_for_the_legend(drawn):
    root = ET.fromstring(svg.render(drawn))
    assert root.tag == f"{SVG}svg"
    assert int(root.get("width")) == drawn["width"] and int(root.get("height")) == drawn["height"] + svg.LEGEND_H
    assert root.find(f"{SVG}title").text == "Network of lab host lh-1"


def test_the_svg_draws_each_box_interface_and_link(drawn):
    root = ET.fromstring(svg.render(drawn))
    assert len(root.findall(f"{SVG}rect[@class='box']")) == 4
    assert len(root.findall(f".//{SVG}rect[@class='iface']")) == 11
    assert len(root.findall(f"{SVG}line[@class='veth']")) == 3 and len(root.findall(f"{SVG}path[@class='port']")) == 2


def test_an_interfaces_colour_is_its_state(drawn):
    root = ET.fromstring(svg.render(drawn))
    strokes = [r.get("stroke") for r in root.iterfind(f".//{SVG}rect[@class='iface']")]
    assert strokes.count(svg.STATE_COLOURS["DOWN"]) == 1 and svg.STATE_COLOURS["UP"] in strokes


def test_addresses_past_two_are_counted_and_none_is_said(drawn):
    p = copy.deepcopy(drawn)
    p["namespaces"][0]["interfaces"][0]["addresses"] = ["10.0.0.1/8", "10.0.0.2/8", "10.0.0.3/8", "10.0.0.4/8"]
    texts = [t.text for t in ET.fromstring(svg.render(p)).iter(f"{SVG}text")]
    assert "10.0.0.1/8, 10.0.0.2/8 +2" in texts and "no address" in texts


def test_the_learners_names_are_escaped_and_no_script_can_get_in(drawn):
    p = copy.deepcopy(drawn)
    p["lab_host"] = "<script>alert(1)</script>"
    p["namespaces"][1]["label"] = 'netns "a"&<b>'
    p["namespaces"][1]["interfaces"][0]["name"] = "<img src=x onerror=alert(1)>"
    out = svg.render(p)
    root = ET.fromstring(out)
    assert "<script" not in out and "<img" not in out
    assert root.find(f"{SVG}title").text == "Network of lab host <script>alert(1)</script>"
    assert 'netns "a"&<b>' in [t.text for t in root.iter(f"{SVG}text")]
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", f"{SVG}foreignObject")]


def test_an_interfaces_tooltip_has_its_details(drawn):
    titles = [t.text for t in ET.fromstring(svg.render(drawn)).iter(f"{SVG}title")]
    assert "ens33 (device) UP\nmac 02:42:ac:11:00:02 mtu 1500\n192.168.118.137/24" in titles
