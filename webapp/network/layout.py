"""Where each box and interface of a network picture goes.

Laid out by the server, so that the page (Cytoscape.js, preset positions)
and the SVG download show the same picture: the lab host's box across the
top, its interfaces in rows, every other namespace's box in rows below it,
in the order of the lab host's interfaces they are plugged into, so that
veth lines run down and seldom cross.
"""
from __future__ import annotations

IFACE_W, IFACE_H = 180, 58     # an interface: name and kind, addresses, state
GAP = 14                       # between interfaces
PAD = 14                       # inside a box
HEAD = 26                      # a box's label
BOX_GAP = 48                   # between boxes
ROW_GAP = 90                   # between rows of boxes: room for the veth lines
PER_ROW = 6                    # boxes in a row below the lab host
HOST_COLUMNS = 8               # interfaces in a row of the lab host's box
MARGIN = 20


def place(picture: dict) -> None:
    """Add ``x``, ``y`` (centres) to every interface and ``x``, ``y``, ``width``, ``height`` (top left and
    size) to every namespace, and the picture's ``width`` and ``height``."""
    spaces = picture["namespaces"]
    if not spaces:
        picture["width"], picture["height"] = 2 * MARGIN, 2 * MARGIN
        return
    top, rest = spaces[0], spaces[1:]
    host_rows = _host_rows(top)
    rest.sort(key=_order_under([i for row in host_rows for i in row], picture["links"]))
    _rows(top, host_rows)
    for ns in rest:   # the interfaces with a line to another box first, lo last: lines come in from above
        ifaces = sorted(ns["interfaces"], key=lambda i: (not i["peer"], i["kind"] == "loopback", i["index"]))
        per = 1 if len(ifaces) <= 4 else 2
        _rows(ns, [ifaces[i:i + per] for i in range(0, len(ifaces), per)])
    rows = [rest[i:i + PER_ROW] for i in range(0, len(rest), PER_ROW)]
    widths = [sum(ns["width"] for ns in row) + BOX_GAP * (len(row) - 1) for row in rows]
    width = max([top["width"], *widths])
    _put(top, MARGIN + (width - top["width"]) / 2, MARGIN)
    y = MARGIN + top["height"] + ROW_GAP
    for row, row_width in zip(rows, widths):
        x = MARGIN + (width - row_width) / 2
        for ns in row:
            _put(ns, x, y)
            x += ns["width"] + BOX_GAP
        y += max(ns["height"] for ns in row) + ROW_GAP
    picture["namespaces"] = [top, *rest]
    picture["width"] = round(width + 2 * MARGIN)
    picture["height"] = round(y - ROW_GAP + MARGIN)


def _order_under(host_ifaces: list[dict], links: list[dict]):
    """Sort key: a box goes under the first of the lab host's interfaces (in drawing order) it is linked to."""
    position = {iface["id"]: i for i, iface in enumerate(host_ifaces)}
    first: dict[str, int] = {}
    for link in links:
        for a, b in ((link["source"], link["target"]), (link["target"], link["source"])):
            if a in position and b not in position:
                ns_id = b.rsplit("-", 1)[0]
                first[ns_id] = min(first.get(ns_id, len(position)), position[a])
    return lambda ns: (first.get(ns["id"], len(position)), ns["kind"] != "container", ns["label"])


def _host_rows(top: dict) -> list[list[dict]]:
    """The lab host's own interfaces (lo, ens33, bridges) first, then, from a new row, the veths, bridge
    ports under their bridge's order."""
    ifaces = top["interfaces"]
    own = [i for i in ifaces if i["kind"] != "veth" and not i["master"]]
    order = {i["id"]: n for n, i in enumerate(own)}
    plugged = sorted((i for i in ifaces if i["kind"] == "veth" or i["master"]),
                     key=lambda i: (order.get(i["master"], len(order)), i["index"]))
    return [part[n:n + HOST_COLUMNS] for part in (own, plugged) for n in range(0, len(part), HOST_COLUMNS)]


def _rows(ns: dict, rows: list[list[dict]]) -> None:
    ns["rows"] = rows
    columns = max((len(row) for row in rows), default=1)
    ns["width"] = columns * IFACE_W + (columns - 1) * GAP + 2 * PAD
    ns["height"] = HEAD + max(len(rows), 1) * (IFACE_H + GAP) - GAP + 2 * PAD


def _put(ns: dict, x: float, y: float) -> None:
    ns["x"], ns["y"] = round(x), round(y)
    for r, row in enumerate(ns.pop("rows")):
        for c, iface in enumerate(row):
            iface["x"] = round(x + PAD + c * (IFACE_W + GAP) + IFACE_W / 2)
            iface["y"] = round(y + HEAD + PAD + r * (IFACE_H + GAP) + IFACE_H / 2)
