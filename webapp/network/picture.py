"""The picture of a lab host's network: its namespaces as boxes, their
interfaces, veth pairs and bridges, read from the lab host itself.

It is computed when someone asks (it costs the lab host nothing while
nobody looks): which container lives in which namespace from the lab host's
dockerd, everything else from the kernel over netlink (``netlink.py``),
never from a command's output. Every namespace but the lab host's own was
named by the lab host (a container's sandbox key, a file in ``/run/netns``),
so each is opened inside the lab host and checked to be one of its own
before it is read (``LabHost.owns_namespace``). Names are the learner's
text: cleaned here, escaped by whoever draws them.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import time

from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP

from ..labhost import nsfs
from ..labhost.base import LabHost, LabHostError
from . import layout, netlink

log = logging.getLogger(__name__)

MAX_NAMESPACES = 64    # a picture stays readable to about 30
MAX_INTERFACES = 64    # per namespace
MAX_ADDRESSES = 8      # per interface
MAX_NAME = 48          # characters of a name shown
DOCKER_TIMEOUT = 5
ARPHRD_LOOPBACK = 772
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY   # a FIFO planted in /run/netns must not block


def clean(text: str, limit: int = MAX_NAME) -> str:
    """A learner's name as text anyone may show: no control characters, no undecodable bytes, bounded."""
    text = os.fsencode(text).decode("utf-8", "replace") if isinstance(text, str) else str(text)
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


@dataclasses.dataclass
class Member:
    """Who lives in a namespace: the lab host itself, a container (with its network mode) or an ``ip netns`` name."""
    kind: str
    name: str
    network: str = ""


@dataclasses.dataclass
class Namespace:
    fd: int
    members: list[Member]
    kind: str
    id: str = ""
    interfaces: list[dict] = dataclasses.field(default_factory=list)


class _Finder:
    """The lab host's namespaces, one ``Namespace`` per kernel namespace, each opened once."""

    def __init__(self, host: LabHost, notes: list[str]):
        self.host, self.notes = host, notes
        self.found: dict[tuple[int, int], Namespace] = {}
        self.skipped = 0

    def add(self, fd: int, member: Member, kind: str, trusted: bool = False) -> Namespace | None:
        """File the namespace ``fd`` (taken over) under ``member``; None if it is refused or one too many."""
        try:
            if not trusted and (nsfs.kind(fd) != nsfs.CLONE_NEWNET or not self.host.owns_namespace(fd)):
                self.notes.append(f"{member.kind} {member.name}: not a network namespace of this lab host, "
                                  "not shown")
                return None
            key = nsfs.identity(fd)
            if key in self.found:
                self.found[key].members.append(member)
                return self.found[key]
            if len(self.found) >= MAX_NAMESPACES:
                self.skipped += 1
                return None
            ns = self.found[key] = Namespace(fd, [member], kind)
            fd = -1
            return ns
        finally:
            if fd >= 0:
                os.close(fd)

    def open(self, path: str) -> int | None:
        try:
            return self.host.open_inside(path, OPEN_FLAGS)
        except OSError as e:
            self.notes.append(f"{clean(path, 80)}: cannot open it ({e.strerror or e})")
            return None

    def close(self) -> None:
        for ns in self.found.values():
            os.close(ns.fd)


def read(host: LabHost, sandbox_keys: dict[str, str] | None = None) -> dict:
    """The picture as a dict (what ``/network.json`` serves, docs/network.md), laid out for drawing.
    ``sandbox_keys`` (container id: its sandbox key) is kept by the caller from one read to the next."""
    started = time.monotonic()
    notes: list[str] = []
    finder = _Finder(host, notes)
    try:
        own = finder.add(host.namespace_fd("net"), Member("lab host", "lab host"), "lab host", trusted=True)
        _containers(host, finder, own, {} if sandbox_keys is None else sandbox_keys)
        _named(finder)
        spaces = list(finder.found.values())
        for i, ns in enumerate(spaces):
            ns.id = f"n{i}"
        links = _read_interfaces(spaces, notes)
    finally:
        finder.close()
    if finder.skipped:
        notes.append(f"{finder.skipped} more namespaces not shown (at most {MAX_NAMESPACES})")
    picture = {
        "lab_host": host.id,
        "namespaces": [{"id": ns.id, "kind": ns.kind, "label": _label(ns),
                        "members": [dataclasses.asdict(m) for m in ns.members],
                        "interfaces": ns.interfaces} for ns in spaces],
        "links": links,
        "notes": notes,
    }
    layout.place(picture)
    picture["took_ms"] = round((time.monotonic() - started) * 1000, 1)
    return picture


def _containers(host: LabHost, finder: _Finder, own: Namespace, keys: dict[str, str]) -> None:
    """Each running container into its namespace: its sandbox key's, the lab host's (host mode) or the one of
    the container it shares (``--network container:``)."""
    try:
        client = host.docker(timeout=DOCKER_TIMEOUT)
    except LabHostError as e:
        finder.notes.append(f"containers not shown: {e.what}")
        return
    try:
        listed = sorted(client.api.containers(), key=lambda c: _name(c))
        by_id, sharing = {}, []
        for c in listed:
            mode = (c.get("HostConfig") or {}).get("NetworkMode", "")
            member = Member("container", clean(_name(c)), clean(mode))
            if mode == "host":
                own.members.append(member)
            elif mode.startswith("container:"):
                sharing.append((mode.split(":", 1)[1], member))
            else:
                fd = _open_sandbox(client, c["Id"], finder, keys)
                by_id[c["Id"]] = finder.add(fd, member, "container") if fd is not None else None
        for gone in set(keys) - {c["Id"] for c in listed}:
            del keys[gone]
        names = {_name(c): c["Id"] for c in listed}
        for target, member in sharing:   # the target is named by id or by name
            ns = by_id.get(names.get(target, target)) or next(
                (n for i, n in by_id.items() if n and i.startswith(target)), None)
            if ns is not None:
                member.network = f"container:{ns.members[0].name}"
                ns.members.append(member)
    except Exception as e:   # a dockerd that went away midway: the picture still shows what the kernel says
        finder.notes.append(f"containers not shown: dockerd did not answer ({clean(str(e), 120)})")
    finally:
        client.close()


def _name(container: dict) -> str:
    names = container.get("Names") or [container.get("Id", "?")[:12]]
    return names[0].lstrip("/")


def _open_sandbox(client, container_id: str, finder: _Finder, keys: dict[str, str]) -> int | None:
    """The container's namespace by its sandbox key: known from an earlier read (a container keeps its key
    while it runs; one restarted under the same id has a new one, and the old file is gone), or asked of
    dockerd (a few milliseconds each)."""
    if container_id in keys:
        try:
            return finder.host.open_inside(keys[container_id], OPEN_FLAGS)
        except OSError:
            del keys[container_id]
    try:
        key = (client.api.inspect_container(container_id).get("NetworkSettings") or {}).get("SandboxKey") or ""
    except Exception:   # removed between the list and now
        return None
    fd = finder.open(key) if key else None
    if fd is not None:
        keys[container_id] = key
    return fd


def _named(finder: _Finder) -> None:
    """The namespaces ``ip netns`` named, in the lab host's own /run/netns."""
    try:
        fd = finder.host.open_inside("/run/netns", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return   # none made yet
    try:
        names = sorted(os.listdir(fd))
    finally:
        os.close(fd)
    for name in names[:MAX_NAMESPACES]:
        nsfd = finder.open(f"/run/netns/{name}")
        if nsfd is not None:
            finder.add(nsfd, Member("netns", clean(name)), "netns")
    if len(names) > MAX_NAMESPACES:
        finder.skipped += len(names) - MAX_NAMESPACES


def _label(ns: Namespace) -> str:
    if ns.kind == "lab host":
        hosted = [m.name for m in ns.members if m.kind == "container"]
        named = [m.name for m in ns.members if m.kind == "netns"]
        return "lab host" + (f" · host network: {', '.join(hosted)}" if hosted else "") + (
            f" · netns {', '.join(named)}" if named else "")
    containers = [m.name for m in ns.members if m.kind == "container"]
    named = [m.name for m in ns.members if m.kind == "netns"]
    parts = ([("container " if len(containers) == 1 else "containers ") + " + ".join(containers)] if containers
             else []) + ([f"netns {', '.join(named)}"] if named else [])
    return " · ".join(parts)


def _read_interfaces(spaces: list[Namespace], notes: list[str]) -> list[dict]:
    """Fill each namespace's interfaces from the kernel; the links between them (veth pairs, bridge ports)."""
    sockets = netlink.sockets_in([ns.fd for ns in spaces])
    try:
        raw: dict[str, list] = {}
        rtnl: dict[str, netlink.Rtnl] = {}
        for ns, sock in zip(spaces, sockets):
            if isinstance(sock, OSError):
                notes.append(f"{_label(ns)}: cannot read it ({sock.strerror or sock})")
                continue
            rtnl[ns.id] = netlink.Rtnl(sock)
            try:
                raw[ns.id] = _interfaces(ns, rtnl[ns.id], notes)
            except (OSError, netlink.NetlinkError) as e:
                notes.append(f"{_label(ns)}: cannot read it ({e})")
        return _links(spaces, raw, rtnl)
    finally:
        for sock in sockets:
            if isinstance(sock, socket.socket):
                sock.close()


def _interfaces(ns: Namespace, rtnl: netlink.Rtnl, notes: list[str]) -> list:
    links = sorted(rtnl.links(), key=lambda m: m["index"])
    if len(links) > MAX_INTERFACES:
        notes.append(f"{_label(ns)}: {len(links) - MAX_INTERFACES} more interfaces not shown")
        links = links[:MAX_INTERFACES]
    addresses: dict[int, list[str]] = {}
    for a in rtnl.addresses():
        if a["family"] == socket.AF_INET6 and a["scope"] == 253:
            continue   # fe80:: link-local addresses: every interface has one, and they say nothing here
        address = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
        if address:
            addresses.setdefault(a["index"], []).append(f"{address}/{a['prefixlen']}")
    for m in links:
        flags = m["flags"]
        info = m.get_attr("IFLA_LINKINFO")
        kind = (info.get_attr("IFLA_INFO_KIND") if info else None) or (
            "loopback" if m["ifi_type"] == ARPHRD_LOOPBACK else "device")
        ns.interfaces.append({
            "id": f"{ns.id}-{m['index']}", "index": m["index"], "name": clean(m.get_attr("IFLA_IFNAME") or "?"),
            "kind": clean(kind), "state": ("UP" if flags & IFF_LOWER_UP else "NO-CARRIER") if flags & IFF_UP
            else "DOWN", "mac": m.get_attr("IFLA_ADDRESS") or "", "mtu": m.get_attr("IFLA_MTU"),
            "addresses": sorted(addresses.get(m["index"], []), key=_address_order)[:MAX_ADDRESSES],
            "master": None, "peer": None,
        })
    return links


def _address_order(text: str):
    address = ipaddress.ip_interface(text)
    return address.version, address


def _links(spaces: list[Namespace], raw: dict[str, list], rtnl: dict[str, netlink.Rtnl]) -> list[dict]:
    """Veth pairs (a link's peer by its index, in the namespace its netnsid names) and bridge ports."""
    ifaces = {ns.id: {i["index"]: i for i in ns.interfaces} for ns in spaces}
    nsids: dict[str, dict[int, str]] = {}   # per namespace: netnsid -> namespace, found as needed

    def by_nsid(ns: Namespace, nsid: int) -> str | None:
        known = nsids.setdefault(ns.id, {})
        for other in spaces:
            if nsid in known:
                break
            if other is not ns and other.id not in known.values() and other.id in rtnl:
                found = rtnl[ns.id].nsid(other.fd)
                if found is not None:
                    known[found] = other.id
        return known.get(nsid)

    links, seen = [], set()
    for ns in spaces:
        for m in raw.get(ns.id, []):
            iface = ifaces[ns.id][m["index"]]
            master = m.get_attr("IFLA_MASTER")
            if master in ifaces[ns.id]:
                iface["master"] = ifaces[ns.id][master]["id"]
                links.append({"kind": "port", "source": iface["id"], "target": iface["master"]})
            if iface["kind"] != "veth" or not m.get_attr("IFLA_LINK"):
                continue
            nsid = m.get_attr("IFLA_LINK_NETNSID")
            where = ns.id if nsid is None else by_nsid(ns, nsid)
            peer = ifaces.get(where, {}).get(m.get_attr("IFLA_LINK"))
            if peer is None:
                iface["peer_note"] = f"peer if{m.get_attr('IFLA_LINK')} in a namespace not shown"
                continue
            iface["peer"] = peer["id"]
            pair = tuple(sorted((iface["id"], peer["id"])))
            if pair not in seen:
                seen.add(pair)
                links.append({"kind": "veth", "source": pair[0], "target": pair[1]})
    return links
