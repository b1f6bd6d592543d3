"""The TCP ports that listen in a lab host's own network namespace, and where to connect to each.

Read from the kernel with sock_diag (what ``ss -ltn`` shows) in the lab host's namespace, its own
and its host-mode containers' listeners; the lab host's dockerd (``engine.get``) names the containers
that published a port (``-p 8080:80``: docker-proxy listens on 8080 in the lab host). Connections are made from a
socket in that namespace too: a lab host has no route anywhere, so nothing it can name leads outside.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket

from ..labhost import engine, nsfs
from ..labhost.base import LabHost, LabHostError
from ..network import netlink, picture
from ..network.picture import clean

MAX_PORTS = 64


@dataclasses.dataclass
class Port:
    port: int
    address: str          # where to connect: the listener's address, loopback for a wildcard one
    listens_on: str       # as the kernel says ("0.0.0.0", "::", "192.168.118.137")
    published_by: str = ""   # "web:80" when a container published it


def listening(host: LabHost, with_containers: bool = True) -> list[Port]:
    """The lab host's listening TCP ports, lowest first (at most MAX_PORTS)."""
    fd = host.namespace_fd("net")
    try:
        [sock] = netlink.sockets_in([fd], netlink.NETLINK_SOCK_DIAG)
    finally:
        os.close(fd)
    if isinstance(sock, OSError):
        raise LabHostError(f"cannot read the ports of lab host {host.id}: {sock}")
    try:
        found = netlink.Diag(sock).listening_tcp()
    finally:
        sock.close()
    where: dict[int, list[str]] = {}
    for m in found:
        where.setdefault(m["idiag_sport"], []).append(m["idiag_src"])
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
    for c in listed[:picture.MAX_CONTAINERS] if isinstance(listed, list) else []:
        if not isinstance(c, dict):
            continue
        name = clean(str((c.get("Names") or ["?"])[0]).lstrip("/"))
        for p in (c.get("Ports") or [])[:MAX_PORTS] if isinstance(c.get("Ports"), list) else []:
            if isinstance(p, dict) and p.get("Type") == "tcp" and isinstance(p.get("PublicPort"), int):
                named.setdefault(p["PublicPort"], f"{name}:{clean(str(p.get('PrivatePort')), 8)}")
    return named


def connect(host: LabHost, address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``address``:``port`` made from the lab host's own network namespace."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    fd = host.namespace_fd("net")
    try:
        [sock] = nsfs.made_in([fd], lambda: socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC))
    finally:
        os.close(fd)
    if isinstance(sock, OSError):
        raise sock
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
        return sock
    except BaseException:
        sock.close()
        raise
