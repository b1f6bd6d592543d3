"""The TCP ports that listen in a lab host's own network, and where to connect to each.

The lab host lists its own and its host-mode containers' listeners (``LabHost.listening_ports``;
on this machine's kernel sock_diag, what ``ss -ltn`` shows); its dockerd (``engine.get``) names the
containers that published a port (``-p 8080:80``: docker-proxy listens on 8080 in the lab host).
Connections are made from inside its network too (``LabHost.connect``): a lab host has no route
anywhere, so nothing it can name leads outside.
"""
from __future__ import annotations

import dataclasses
import ipaddress

from ..labhost import engine
from ..labhost.base import LabHost, LabHostError
from ..labhost.engine import MAX_CONTAINERS, clean

MAX_PORTS = 64


@dataclasses.dataclass
class Port:
    port: int
    address: str          # where to connect: the listener's address, loopback for a wildcard one
    listens_on: str       # as the kernel says ("0.0.0.0", "::", "192.168.118.137")
    published_by: str = ""   # "web:80" when a container published it


def listening(host: LabHost, with_containers: bool = True) -> list[Port]:
    """The lab host's listening TCP ports, lowest first (at most MAX_PORTS)."""
    where: dict[int, list[str]] = {}
    for port, address in host.listening_ports():
        where.setdefault(port, []).append(address)
    published = _published(host) if with_containers else {}
    return [Port(port, _connect_to(addresses), ", ".join(sorted(set(addresses))), published.get(port, ""))
            for port, addresses in sorted(where.items())[:MAX_PORTS]]


def _connect_to(addresses: list[str]) -> str:
    """Loopback for a listener on every address (IPv4 first), else the address it listens on."""
    if "0.0.0.0" in addresses:
        return "127.0.0.1"
    if "::" in addresses:
        return "::1"
    return sorted(addresses, key=lambda a: ipaddress.ip_address(a).version)[0]


def _published(host: LabHost) -> dict[int, str]:
    """Which container published which port, as the lab host's dockerd says (asked as of a hostile peer:
    ``engine.get``); every name cleaned."""
    try:
        listed = engine.get(host, "/containers/json")
    except LabHostError:
        return {}   # a dockerd that does not answer: the ports still show, unnamed
    named: dict[int, str] = {}
    for c in listed[:MAX_CONTAINERS] if isinstance(listed, list) else []:
        if not isinstance(c, dict):
            continue
        name = clean(str((c.get("Names") or ["?"])[0]).lstrip("/"))
        for p in (c.get("Ports") or [])[:MAX_PORTS] if isinstance(c.get("Ports"), list) else []:
            if isinstance(p, dict) and p.get("Type") == "tcp" and isinstance(p.get("PublicPort"), int):
                named.setdefault(p["PublicPort"], f"{name}:{clean(str(p.get('PrivatePort')), 8)}")
    return named
