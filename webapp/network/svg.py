"""The network picture as an SVG file a learner can save: the same boxes, interfaces and links, at the
positions ``layout.py`` gave them, as the page draws them, with a legend.

Every text in it is the learner's (names, addresses): escaped here, and the file has no scripts.
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .layout import IFACE_H, IFACE_W

STATE_COLOURS = {"UP": "#2e7d32", "NO-CARRIER": "#ef6c00", "DOWN": "#9e9e9e"}
BOX_COLOURS = {"lab host": "#e3f2fd", "container": "#f1f8e9", "netns": "#fff8e1"}
NETWORK_COLOUR = "#ede7f6"   # the lab network of a set of hosts (hosts.py)
LEGEND_H = 64
STYLE = """
text { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 11px; fill: #212121; }
.label { font-size: 12px; font-weight: bold; }
.box { stroke: #607d8b; stroke-width: 1.5; }
.iface { fill: #ffffff; stroke-width: 2; }
.veth { stroke: #37474f; stroke-width: 2; fill: none; stroke-opacity: .7; }
.port { stroke: #1565c0; stroke-width: 1.5; stroke-dasharray: 5 4; fill: none; }
.host { fill: none; stroke: #37474f; stroke-width: 2; stroke-dasharray: 10 5; }
.lab { stroke: #5e35b1; stroke-width: 3; fill: none; }
"""


def render(picture: dict) -> str:
    width, height = picture["width"], picture["height"] + LEGEND_H
    ifaces = {i["id"]: i for ns in picture["namespaces"] for i in ns["interfaces"]}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f"<title>{escape(_title(picture))}</title>",
           f"<style>{STYLE}</style>", f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    for host in picture.get("hosts", []):   # a set of hosts: each host's group around its boxes
        out.append(f'<rect class="host" x="{host["x"]}" y="{host["y"]}" width="{host["width"]}" '
                   f'height="{host["height"]}" rx="12"/>')
        out.append(f'<text class="label" x="{host["x"] + 12}" y="{host["y"] + 18}">{escape(host["label"])}</text>')
    for ns in picture["namespaces"]:
        out.append(f'<rect class="box" x="{ns["x"]}" y="{ns["y"]}" width="{ns["width"]}" height="{ns["height"]}" '
                   f'rx="8" fill="{BOX_COLOURS.get(ns["kind"], NETWORK_COLOUR)}"/>')
        out.append(f'<text class="label" x="{ns["x"] + 10}" y="{ns["y"] + 18}">{escape(ns["label"])}</text>')
    for link in picture["links"]:
        a, b = ifaces[link["source"]], ifaces[link["target"]]
        if link["kind"] == "port":   # within a box: bow the line so that it passes beside the boxes between
            bow = (a["y"] + b["y"]) / 2 - IFACE_H
            out.append(f'<path class="port" d="M{a["x"]},{a["y"]} Q{(a["x"] + b["x"]) / 2},{bow} {b["x"]},{b["y"]}"/>')
        else:   # from the upper interface's bottom edge to the lower one's top: the lines keep off the text
            a, b = sorted((a, b), key=lambda i: i["y"])
            drop = IFACE_H / 2 if b["y"] - a["y"] > IFACE_H else 0
            out.append(f'<line class="{"lab" if link["kind"] == "lab" else "veth"}" x1="{a["x"]}" y1="{a["y"] + drop}" '
                       f'x2="{b["x"]}" y2="{b["y"] - drop}"/>')
    for iface in ifaces.values():
        out.append(_iface(iface))
    out.append(_legend(picture["height"]))
    out.append("</svg>")
    return "\n".join(out)


def _title(picture: dict) -> str:
    if "hosts" in picture:
        return "Network of lab hosts " + ", ".join(f'{h["name"]} ({h["lab_host"]})' for h in picture["hosts"])
    return f"Network of lab host {picture['lab_host']}"


def _iface(iface: dict) -> str:
    x, y = iface["x"] - IFACE_W / 2, iface["y"] - IFACE_H / 2
    colour = STATE_COLOURS.get(iface["state"], "#9e9e9e")
    addresses = iface["addresses"]
    shown = ", ".join(addresses[:2]) + (f" +{len(addresses) - 2}" if len(addresses) > 2 else "")
    lines = [f'{iface["name"]} ({iface["kind"]})', shown or "no address", iface["state"]]
    texts = "".join(f'<text x="{x + 8}" y="{y + 16 + 16 * n}">{escape(line)}</text>' for n, line in enumerate(lines))
    return (f'<g><title>{escape(_detail(iface))}</title><rect class="iface" x="{x}" y="{y}" width="{IFACE_W}" '
            f'height="{IFACE_H}" rx="4" stroke={quoteattr(colour)}/>{texts}</g>')


def _detail(iface: dict) -> str:
    return "\n".join([f'{iface["name"]} ({iface["kind"]}) {iface["state"]}', f'mac {iface["mac"]} mtu {iface["mtu"]}',
                      *iface["addresses"]])


def _legend(top: int) -> str:
    parts, x = [], 20
    for state, colour in STATE_COLOURS.items():
        parts.append(f'<rect x="{x}" y="{top + 14}" width="22" height="14" rx="3" fill="#ffffff" '
                     f'stroke="{colour}" stroke-width="2"/><text x="{x + 28}" y="{top + 25}">{state}</text>')
        x += 130
    parts.append(f'<line class="veth" x1="{x}" y1="{top + 21}" x2="{x + 36}" y2="{top + 21}"/>'
                 f'<text x="{x + 42}" y="{top + 25}">veth pair</text>')
    x += 140
    parts.append(f'<line class="port" x1="{x}" y1="{top + 21}" x2="{x + 36}" y2="{top + 21}"/>'
                 f'<text x="{x + 42}" y="{top + 25}">bridge port</text>')
    x = 20
    for kind, colour in BOX_COLOURS.items():
        parts.append(f'<rect x="{x}" y="{top + 38}" width="22" height="14" rx="3" fill="{colour}" '
                     f'stroke="#607d8b"/><text x="{x + 28}" y="{top + 49}">{kind} namespace</text>')
        x += 190
    return "<g>" + "".join(parts) + "</g>"
