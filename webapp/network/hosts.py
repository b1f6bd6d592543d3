"""The picture of a learner's set of lab hosts (a lab with ``hosts: [node1, node2]``): each host's own
picture (``picture.read``, laid out as one host's is) as a group of its own, side by side, what listens
on each in the group's label, and the lab network (the learner's private bridge between the hosts'
``ens33``) across the top, a port of it above each host's ``ens33``.

Made from the hosts' pictures, which are shared between askers (``views.Pictures``): they are copied,
never changed. Every id is prefixed with its host's (``h1-n0-3``), so that the hosts' namespaces and
interfaces stay apart; a one-host lab's picture is not made here and stays as it was (docs/network.md).
"""
from __future__ import annotations

import copy

from ..labhost import labnet
from .layout import BOX_GAP, HEAD, IFACE_H, MARGIN, PAD, ROW_GAP

LAB_NETWORK = "lab network"      # the kind of its box
LAB_NIC = "ens33"                # each host's interface on the lab network
LAB_SUBNET = f"{labnet.NETWORK.format(0)}/{labnet.PREFIX}"   # the addresses labnet.py gives the hosts
MAX_PORTS = 16                   # listening ports named in a host's label; the rest are counted
HOST_GAP = 2 * BOX_GAP           # between two hosts' groups


def compose(members: list[tuple[str, dict]], subnet: str) -> dict:
    """The set's picture from ``members`` (each host's name and laid-out picture, with ``ports``: its
    listening TCP ports as (port, address) or None if they could not be read), the hosts in the lab's
    order, the lab network (``subnet``) above them."""
    picture: dict = {"lab_host": members[0][1]["lab_host"] if members else "", "hosts": [], "namespaces": [],
                     "links": [], "notes": []}
    net = {"id": "lab", "kind": LAB_NETWORK, "host": "", "members": [], "interfaces": [],
           "label": f"lab network {subnet}: this learner's own bridge, no route anywhere else"}
    top = MARGIN + HEAD + 2 * PAD + IFACE_H + ROW_GAP   # the hosts' groups start below the lab network
    x = MARGIN
    for n, (name, drawn) in enumerate(members):
        group = _group(f"h{n}", name, copy.deepcopy(drawn), x, top, picture)
        nic = next((i for i in group.pop("own_interfaces") if i["name"] == LAB_NIC), None)
        port_x = nic["x"] if nic else group["x"] + group["width"] / 2
        net["interfaces"].append({"id": f"lab-{n}", "index": n, "name": name, "kind": "port", "state": "UP",
                                  "mac": "", "mtu": None, "addresses": [], "master": None,
                                  "peer": nic["id"] if nic else None, "x": round(port_x),
                                  "y": round(MARGIN + HEAD + PAD + IFACE_H / 2)})
        if nic:
            picture["links"].append({"kind": "lab", "source": nic["id"], "target": f"lab-{n}"})
        else:
            picture["notes"].append(f"{name}: no {LAB_NIC} in its lab host's own namespace, not joined to "
                                    "the lab network in the picture")
        x += group["width"] + HOST_GAP
    width = max(x - HOST_GAP + MARGIN, 2 * MARGIN)
    net.update(x=MARGIN, y=MARGIN, width=width - 2 * MARGIN, height=HEAD + 2 * PAD + IFACE_H)
    picture["namespaces"].insert(0, net)
    picture["width"] = round(width)
    picture["height"] = round(max((g["y"] + g["height"] for g in picture["hosts"]), default=top) + MARGIN)
    return picture


def _group(prefix: str, name: str, drawn: dict, x: float, y: float, into: dict) -> dict:
    """One host's picture moved into its group at ``x``, ``y``, its ids prefixed; appended to ``into``."""
    dx, dy = x + PAD - MARGIN, y + HEAD + PAD - MARGIN   # a host's own picture has MARGIN all round

    def named(ident: str | None) -> str | None:
        return f"{prefix}-{ident}" if ident else ident

    own = []
    for ns in drawn["namespaces"]:
        ns.update(id=named(ns["id"]), host=name, x=ns["x"] + dx, y=ns["y"] + dy)
        for iface in ns["interfaces"]:
            iface.update(id=named(iface["id"]), master=named(iface["master"]), peer=named(iface["peer"]),
                         x=iface["x"] + dx, y=iface["y"] + dy)
        if ns["kind"] == "lab host" and not own:
            own = ns["interfaces"]
        into["namespaces"].append(ns)
    into["links"] += [dict(link, source=named(link["source"]), target=named(link["target"]))
                      for link in drawn["links"]]
    into["notes"] += [f"{name}: {note}" for note in drawn["notes"]]
    group = {"id": prefix, "name": name, "lab_host": drawn["lab_host"], "ports": _ports(drawn.get("ports")),
             "x": round(x), "y": round(y), "width": drawn["width"] - 2 * MARGIN + 2 * PAD,
             "height": drawn["height"] - 2 * MARGIN + HEAD + 2 * PAD}
    group["label"] = f"{name} · {_listening(group['ports'])}"
    into["hosts"].append(group)
    return dict(group, own_interfaces=own)


def _ports(read: list[tuple[int, str]] | None) -> list[dict] | None:
    """Each listening port once, with the addresses it listens on, lowest first."""
    if read is None:
        return None
    where: dict[int, set[str]] = {}
    for port, address in read:
        where.setdefault(port, set()).add(address)
    return [{"port": port, "listens_on": sorted(addresses)} for port, addresses in sorted(where.items())]


def _listening(ports: list[dict] | None) -> str:
    if ports is None:
        return "listening ports not read"
    if not ports:
        return "nothing listens"
    shown = ", ".join(str(p["port"]) for p in ports[:MAX_PORTS])
    return f"listening on tcp {shown}" + (f" and {len(ports) - MAX_PORTS} more" if len(ports) > MAX_PORTS else "")
