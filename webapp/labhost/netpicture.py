"""The picture of a lab host's network, read from this machine's kernel: its
namespaces, their interfaces, veth pairs and bridges (``LocalLabHost.network_picture``;
``network/picture.py`` lays it out).

It is computed when someone asks (it costs the lab host nothing while
nobody looks): which container lives in which namespace from the lab host's
dockerd (``engine.get``: a deadline, a bound on the answer), everything else
from the kernel over netlink (``netlink.py``), never from a command's output.
Every namespace but the lab host's own was named by the lab host (a
container's sandbox key, a file in ``/run/netns``), so each is opened inside
the lab host, only if it is a namespace file, and checked to be one of its
own before it is read (``LocalLabHost.owns_namespace``). Everything is bounded:
counts, names, and the time of a read (what is left is noted). Names are the
learner's text: cleaned here, escaped by whoever draws them.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import socket
import time
from typing import Protocol

from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP

from . import engine, inside, netlink, nsfs
from .engine import MAX_CONTAINERS, clean
from .errors import LabHostError


class NamespaceReader(Protocol):
    """What a picture is read through: a lab host's namespaces on this machine (``LocalLabHost``, which
    calls ``read``)."""

    id: str

    def namespace_fd(self, kind: str) -> int: ...

    def open_inside(self, path: str, flags: int) -> int: ...

    def owns_namespace(self, fd: int) -> bool: ...


log = logging.getLogger(__name__)

MAX_NAMESPACES = 64    # a picture stays readable to about 30
MAX_INTERFACES = 64    # per namespace
MAX_ADDRESSES = 8      # per interface
MAX_MEMBERS = 16       # named in a box; the rest are counted
MAX_NETNS_FILES = 256  # entries of /run/netns looked at
MAX_NOTES = 16
ARPHRD_LOOPBACK = 772
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")


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
    more_members: int = 0


class _Notes(list):
    """At most MAX_NOTES notes, then a count of the rest."""

    def append(self, note: str) -> None:
        if len(self) < MAX_NOTES:
            super().append(note)
        elif len(self) == MAX_NOTES:
            super().append("and more that could not be shown")


class _Finder:
    """The lab host's namespaces, one ``Namespace`` per kernel namespace, each opened once."""

    def __init__(self, host: NamespaceReader, notes: list[str], own: int):
        self.host, self.notes = host, notes
        self.found: dict[tuple[int, int], Namespace] = {}
        self.skipped = 0
        self.nsfs_dev = nsfs.identity(own)[0]   # every namespace file lives on this one device
        self.add(own, Member("lab host", "lab host"), "lab host", trusted=True)

    @property
    def full(self) -> bool:
        return len(self.found) >= MAX_NAMESPACES

    def add(self, fd: int, member: Member, kind: str, trusted: bool = False) -> Namespace | None:
        """File the namespace ``fd`` (taken over) under ``member``; None if it is refused or one too many."""
        try:
            if not trusted and (nsfs.kind(fd) != nsfs.CLONE_NEWNET or not self.host.owns_namespace(fd)):
                self.notes.append(f"{member.kind} {member.name}: not a network namespace of this lab host, "
                                  "not shown")
                return None
            key = nsfs.identity(fd)
            if key in self.found:
                ns = self.found[key]
                if len(ns.members) < MAX_MEMBERS:
                    ns.members.append(member)
                else:
                    ns.more_members += 1
                return ns
            if self.full:
                self.skipped += 1
                return None
            ns = self.found[key] = Namespace(fd, [member], kind)
            fd = -1
            return ns
        finally:
            if fd >= 0:
                os.close(fd)

    def open(self, path: str, member: Member) -> int | None:
        """The namespace file at ``path`` in the lab host, opened for reading only if it is one (never a
        device, FIFO or other file the lab host planted there), or None with a note."""
        try:
            where = self.host.open_inside(path, inside.O_PATH)
        except (OSError, ValueError) as e:
            self.notes.append(f"{clean(path, 80)}: cannot open it ({getattr(e, 'strerror', None) or e})")
            return None
        try:
            if os.fstat(where).st_dev != self.nsfs_dev:
                self.notes.append(f"{member.kind} {member.name}: not a network namespace of this lab host, "
                                  "not shown")
                return None
            return os.open(f"/proc/self/fd/{where}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(where)

    def close(self) -> None:
        for ns in self.found.values():
            os.close(ns.fd)


def read(host: NamespaceReader, sandbox_keys: dict[str, str] | None, budget: float) -> dict:
    """The picture as a dict (what ``/network.json`` serves, docs/network.md), not yet laid out.
    ``sandbox_keys`` (container id: its sandbox key) is kept by the caller from one read to the next;
    past ``budget`` seconds the namespaces left are shown without their interfaces."""
    started = time.monotonic()
    notes = _Notes()
    finder = _Finder(host, notes, host.namespace_fd("net"))
    try:
        own = next(iter(finder.found.values()))
        _containers(host, finder, own, {} if sandbox_keys is None else sandbox_keys)
        _named(finder)
        spaces = list(finder.found.values())
        for i, ns in enumerate(spaces):
            ns.id = f"n{i}"
        links = _read_interfaces(spaces, notes, started, budget)
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
        "notes": list(notes),
    }
    return picture


def _containers(host: NamespaceReader, finder: _Finder, own: Namespace, keys: dict[str, str]) -> None:
    """Each running container into its namespace: its sandbox key's, the lab host's (host mode) or the one of
    the container it shares (``--network container:``)."""
    try:
        listed = engine.get(host, "/containers/json")
        if not isinstance(listed, list):
            raise engine.EngineError("dockerd's list of containers is not a list")
        listed = [c for c in listed if isinstance(c, dict) and CONTAINER_ID.fullmatch(str(c.get("Id", "")))]
        if len(listed) > MAX_CONTAINERS:
            finder.notes.append(f"{len(listed) - MAX_CONTAINERS} more containers not shown "
                                f"(at most {MAX_CONTAINERS})")
        listed = sorted(listed, key=_name)[:MAX_CONTAINERS]
    except LabHostError as e:
        finder.notes.append(f"containers not shown: {clean(e.what, 200)}")
        return
    by_id, sharing = {}, []
    for c in listed:
        mode = str((c.get("HostConfig") or {}).get("NetworkMode", ""))
        mode = "bridge" if mode == "default" else mode   # what dockerd before 25 called the default bridge
        member = Member("container", clean(_name(c)), clean(mode))
        if mode == "host":
            finder.add(os.dup(own.fd), member, "lab host", trusted=True)
        elif mode.startswith("container:"):
            sharing.append((mode.split(":", 1)[1], member))
        elif not finder.full:
            fd = _open_sandbox(host, c["Id"], finder, keys, member)
            by_id[c["Id"]] = finder.add(fd, member, "container") if fd is not None else None
        else:
            finder.skipped += 1
    for gone in set(keys) - {c["Id"] for c in listed}:
        del keys[gone]
    names = {_name(c): c["Id"] for c in listed}
    for target, member in sharing:   # the target is named by id, a prefix of it, or by name
        target_id = names.get(target, target)
        ns = by_id.get(target_id) or next((n for i, n in by_id.items() if n and i.startswith(target_id)), None)
        if ns is not None:
            member.network = f"container:{ns.members[0].name}"
            finder.add(os.dup(ns.fd), member, "container", trusted=True)


def _name(container: dict) -> str:
    names = container.get("Names") or [str(container.get("Id", "?"))[:12]]
    return str(names[0]).lstrip("/")


def _open_sandbox(host: NamespaceReader, container_id: str, finder: _Finder, keys: dict[str, str],
                  member: Member) -> int | None:
    """The container's namespace by its sandbox key: known from an earlier read (a container keeps its key
    while it runs; one restarted under the same id has a new one, and the old file is gone), or asked of
    dockerd (a few milliseconds each)."""
    if container_id in keys:
        fd = finder.open(keys[container_id], member)
        if fd is not None:
            return fd
        del keys[container_id]
    try:
        inspected = engine.get(host, f"/containers/{container_id}/json")
        key = (inspected.get("NetworkSettings") or {}).get("SandboxKey") or ""
    except (LabHostError, AttributeError):   # removed between the list and now, or nonsense
        return None
    if not isinstance(key, str) or not key:
        return None
    fd = finder.open(key, member)
    if fd is not None:
        keys[container_id] = key
    return fd


def _named(finder: _Finder) -> None:
    """The namespaces ``ip netns`` named, in the lab host's own /run/netns."""
    try:
        fd = finder.host.open_inside("/run/netns", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return   # none made yet
    names = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) >= MAX_NETNS_FILES:
                    finder.notes.append(f"/run/netns: only its first {MAX_NETNS_FILES} entries looked at")
                    break
    finally:
        os.close(fd)
    for name in sorted(names):
        member = Member("netns", clean(name))
        if finder.full:
            finder.skipped += 1
            continue
        nsfd = finder.open(f"/run/netns/{name}", member)
        if nsfd is not None:
            finder.add(nsfd, member, "netns")


def _label(ns: Namespace) -> str:
    containers = [m.name for m in ns.members if m.kind == "container"]
    named = [m.name for m in ns.members if m.kind == "netns"]
    more = f" and {ns.more_members} more" if ns.more_members else ""
    if ns.kind == "lab host":
        return ("lab host" + (f" · host network: {', '.join(containers)}" if containers else "")
                + (f" · netns {', '.join(named)}" if named else "") + more)
    parts = ([("container " if len(containers) == 1 else "containers ") + " + ".join(containers)] if containers
             else []) + ([f"netns {', '.join(named)}"] if named else [])
    return " · ".join(parts) + more


def _read_interfaces(spaces: list[Namespace], notes: list[str], started: float, budget: float) -> list[dict]:
    """Fill each namespace's interfaces from the kernel; the links between them (veth pairs, bridge ports)."""
    sockets = netlink.sockets_in([ns.fd for ns in spaces])
    try:
        raw: dict[str, list] = {}
        rtnl: dict[str, netlink.Rtnl] = {}
        for n, (ns, sock) in enumerate(zip(spaces, sockets)):
            if time.monotonic() > started + budget:
                notes.insert(0, f"the picture was cut short: {len(spaces) - n} namespaces are shown without "
                                f"their interfaces (reading took more than {budget:g} s)")
                break
            if isinstance(sock, OSError):
                notes.append(f"{_label(ns)}: cannot read it ({sock.strerror or sock})")
                continue
            rtnl[ns.id] = netlink.Rtnl(sock)
            try:
                raw[ns.id] = _interfaces(ns, rtnl[ns.id], notes)
            except OSError as e:
                notes.append(f"{_label(ns)}: cannot read it ({e})")
        try:
            return _links(spaces, raw, rtnl)
        except OSError as e:
            notes.append(f"veth pairs not shown: {e}")
            return []
    finally:
        for sock in sockets:
            if isinstance(sock, socket.socket):
                sock.close()


def _interfaces(ns: Namespace, rtnl: netlink.Rtnl, notes: list[str]) -> list:
    links = sorted(rtnl.links(), key=lambda m: m["index"])
    if len(links) > MAX_INTERFACES:
        notes.append(f"{_label(ns)}: {len(links) - MAX_INTERFACES} more interfaces not shown")
        links = links[:MAX_INTERFACES]
    shown = {m["index"] for m in links}
    addresses: dict[int, list[str]] = {}
    for a in rtnl.addresses():
        if a["index"] not in shown or (a["family"] == socket.AF_INET6 and a["scope"] == 253):
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
    asked: dict[str, set[str]] = {}         # per namespace: the others it was asked about (once each)

    def by_nsid(ns: Namespace, nsid: int) -> str | None:
        known, done = nsids.setdefault(ns.id, {}), asked.setdefault(ns.id, set())
        for other in spaces:
            if nsid in known:
                break
            if other is not ns and other.id not in done and other.id in rtnl:
                done.add(other.id)
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
