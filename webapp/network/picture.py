"""The picture of a lab host's network, laid out for drawing: what the lab host reads of itself
(``LabHost.network_picture``; on this machine's kernel ``labhost/netpicture.py``) placed by ``layout``."""
from __future__ import annotations

import time

from ..labhost.base import LabHost, LabHostError
from . import layout

BUDGET = 2.0   # seconds a read may take; namespaces left then are shown without their interfaces


def read(host: LabHost, sandbox_keys: dict[str, str] | None = None, budget: float = BUDGET,
         ports: bool = False) -> dict:
    """The picture as a dict (what ``/network.json`` serves, docs/network.md), laid out for drawing.
    ``sandbox_keys`` (container id: its sandbox key) is kept by the caller from one read to the next.
    ``ports``: with the lab host's listening TCP ports as ``ports`` (None, with a note, if they cannot be
    read), which the picture of a set of hosts names (``hosts.py``)."""
    started = time.monotonic()
    picture = host.network_picture(sandbox_keys, budget)
    layout.place(picture)
    if ports:
        try:
            picture["ports"] = host.listening_ports()
        except LabHostError as e:
            picture["ports"] = None
            picture["notes"].append(f"listening ports not shown: {e.what}")
    picture["took_ms"] = round((time.monotonic() - started) * 1000, 1)
    return picture
