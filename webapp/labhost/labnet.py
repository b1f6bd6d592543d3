"""A set's lab network: the bridge of its own that joins a learner's lab hosts (``hostset.HostSet``).

The bridge lives in a network namespace of the server's own making (``nsfs.new_net``): not the machine's
(nothing of the machine routes to it, it has no address and no route, IPv6 is off there so it gets no
link-local address either), not a learner's (its owner is the machine's user namespace: no lab host's root
can enter it, name it in a netlink request, or move a link into or out of it). No process lives in it;
the server's descriptor and netlink socket alone keep it, so it goes with the server, killed or not, and
with it every link on it (a veth's two ends go together: each host's ens33 too).

For each host, the server makes a veth pair over netlink from inside that namespace: one end on the bridge,
the other made directly in the lab host's network namespace (``IFLA_NET_NS_FD``, the namespace of the lab
host's PID 1) with the host's MAC address and a name of chance. What must then happen inside the lab host
(its old ens33 deleted, the new end renamed ens33, given its address, the host's name and /etc/hosts) is a
job of the server's through the lab host's spawner (``LabHost.capture``), bounded in time and output,
never done by entering it. Host i of a set is ens33 with ``00:0c:29:b5:9a:13`` + i and
``192.168.118.(137 + i)/24``: node1 keeps the seed's address.

What the kernel keeps for a set is bounded: at most ``hostset.MOST`` ports, a bridge that learns at most
``FDB_MOST`` MAC addresses (a learner who sends frames from a million made-up addresses fills its own
table, not the machine's memory), no multicast snooping state.

A set is recorded in the state dir (``records.write_set``) with its owner, so that ``labnb lab-hosts gc``
lists and removes what a killed server's set left (its namespace went with the server; its lab hosts are
reaped as any).
"""
from __future__ import annotations

import os
import secrets
import socket
import struct
import threading
import time

from ..config import Settings
from . import netlink, nsfs, records
from .base import BASH, LabHost, LabHostError
from .hostset import MOST

FDB_MOST = 256          # MAC addresses a set's bridge learns at most (kernel 6.7+, IFLA_BR_FDB_MAX_LEARNED)
JOB_TIMEOUT = 10.0      # seconds the job that names a host's ens33 may take (a frozen lab host: an error)
MAC = "00:0c:29:b5:9a:{:02x}"
FIRST_MAC, FIRST_HOST = 0x13, 137
NETWORK = "192.168.118.{}"
PREFIX = 24

# rtnetlink, as include/uapi/linux/{netlink,rtnetlink,if_link,veth}.h number them
RTM_NEWLINK, NLMSG_ERROR = 16, 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BR_MCAST_SNOOPING, IFLA_BR_FDB_MAX_LEARNED = 23, 49
VETH_INFO_PEER = 1
BRIDGE_INDEX = 2        # the bridge's interface index in its own namespace (lo is 1); port i is PORT_INDEX + i
PORT_INDEX = 10

# Runs inside the lab host as its root: its own device, its own files. Arguments: the new link's name of
# chance (empty: it is already ens33), the host's name, its address, its /etc/hosts. The programs by path:
# never ones the learner put first on PATH.
NAME_HOST = r"""
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
link=$1 name=$2 address=$3 hosts=$4
if [ -n "$link" ]; then
    ip link del ens33 2>/dev/null || true
    ip link set "$link" name ens33
    ip addr add "$address" brd + dev ens33
    ip link set ens33 up
fi
hostname "$name"
printf '%s\n' "$name" > /etc/hostname
printf '%s' "$hosts" > /etc/hosts
"""


def address(index: int) -> str:
    """Host ``index``'s address on the lab network, with its prefix."""
    return f"{NETWORK.format(FIRST_HOST + index)}/{PREFIX}"


def mac(index: int) -> str:
    return MAC.format(FIRST_MAC + index)


def hosts_file(names: list[str]) -> str:
    """The /etc/hosts each host of a set gets: every host by its name."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address(i).split('/')[0]}\t{name}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


class LabNet:
    """The lab network of one set (``hostset.Network``): made on the first ``wire``, gone at ``destroy``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.id = records.new_set_id()
        self.bridge = f"br-{self.id}"
        self._fd = -1                          # the bridge's namespace
        self._sock: socket.socket | None = None   # rtnetlink, in that namespace
        self._seq = 0
        self._ports: dict[str, int] = {}       # lab host id -> its position in the set
        self._lock = threading.Lock()
        self._gone = False

    def wire(self, members: list[tuple[str, LabHost]]) -> None:
        if len(members) > MOST:
            raise LabHostError(f"a lab network joins at most {MOST} lab hosts, not {len(members)}")
        with self._lock:
            if self._gone:
                raise LabHostError(f"lab network {self.id} is gone", "Reset the lab hosts")
            if self._fd < 0:
                self._open()
            links: dict[str, str] = {}
            for index, (_, host) in enumerate(members):
                known = self._ports.get(host.id)
                if known is None:
                    links[host.id] = self._plug(index, host)
                    self._ports[host.id] = index
                elif known != index:
                    raise LabHostError(f"lab host {host.id} is host {known + 1} of set {self.id}, not {index + 1}")
            self._record(members)
        text = hosts_file([name for name, _ in members])
        errors: list[str] = []

        def name_one(index: int, name: str, host: LabHost) -> None:
            try:
                rc, _, err = host.capture([BASH, "-c", NAME_HOST, "labnb-name", links.get(host.id, ""), name,
                                           address(index), text], JOB_TIMEOUT)
                if rc != 0:
                    errors.append(f"{name} ({host.id}): {err.decode(errors='replace').strip()[-300:]}")
            except LabHostError as e:
                errors.append(f"{name} ({host.id}): {e}")

        jobs = [threading.Thread(target=name_one, args=(i, name, host), name=f"name-{host.id[-6:]}", daemon=True)
                for i, (name, host) in enumerate(members)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
        if errors:
            raise LabHostError(f"lab network {self.id}: a host could not be given its ens33 and name: "
                               + "; ".join(errors), "Reset the lab hosts")

    def ports(self) -> list[str]:
        """The names of the links in the bridge's namespace (the bridge and its ports), read over netlink."""
        with self._lock:
            if self._sock is None:
                return []
            return sorted(link.get_attr("IFLA_IFNAME") for link in netlink.Rtnl(self._sock).links()
                          if link.get_attr("IFLA_IFNAME") != "lo")

    def destroy(self) -> None:
        """The namespace goes when the last reference to it does: the descriptor and the socket, closed
        here; the kernel then deletes the bridge and every veth pair (each host's ens33 with it)."""
        with self._lock:
            self._gone = True
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        records.remove_set(self.settings.state_dir, self.id)

    # -- internals ------------------------------------------------------------
    def _open(self) -> None:
        """The namespace, its rtnetlink socket, and the bridge in it (up, no address)."""
        self._fd, self._sock = nsfs.new_net(_prepared)
        linkinfo = _nest(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge\0"), _nest(
            IFLA_INFO_DATA, _attr(IFLA_BR_MCAST_SNOOPING, b"\0"),
            _attr(IFLA_BR_FDB_MAX_LEARNED, struct.pack("I", FDB_MOST))))
        self._new_link(_ifinfo(BRIDGE_INDEX, IFF_UP) + _attr(IFLA_IFNAME, _name(self.bridge)) + linkinfo)

    def _plug(self, index: int, host: LabHost) -> str:
        """A veth pair for host ``index``: one end on the bridge, the other made in the lab host's network
        namespace with its MAC address and a name of chance, which this returns (the job renames it)."""
        link = "lnb" + secrets.token_hex(4)
        nsfd = host.namespace_fd("net")
        try:
            peer = (_ifinfo() + _attr(IFLA_IFNAME, _name(link)) + _attr(IFLA_NET_NS_FD, struct.pack("I", nsfd))
                    + _attr(IFLA_ADDRESS, bytes.fromhex(mac(index).replace(":", ""))))
            linkinfo = _nest(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth\0"),
                             _nest(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer)))
            self._new_link(_ifinfo(PORT_INDEX + index, IFF_UP) + _attr(IFLA_IFNAME, _name(f"{self.id}-{index}"))
                           + _attr(IFLA_MASTER, struct.pack("I", BRIDGE_INDEX)) + linkinfo)
        finally:
            os.close(nsfd)
        return link

    def _new_link(self, body: bytes) -> None:
        self._seq += 1
        header = struct.pack("IHHII", 16 + len(body), RTM_NEWLINK,
                             NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, self._seq, 0)
        self._sock.send(header + body)
        deadline = time.monotonic() + netlink.TIMEOUT
        while time.monotonic() < deadline:
            data = self._sock.recv(netlink.RECV)
            offset = 0
            while offset + 20 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("IHHII", data, offset)
                if kind == NLMSG_ERROR and seq == self._seq:
                    (code,) = struct.unpack_from("i", data, offset + 16)
                    if code:
                        raise LabHostError(f"lab network {self.id}: the kernel refused a link: "
                                           f"{os.strerror(-code)}", "Run `labnb doctor`; reset the lab hosts")
                    return
                offset += max(16, (length + 3) & ~3)
        raise LabHostError(f"lab network {self.id}: the kernel did not answer within {netlink.TIMEOUT:g} s")

    def _record(self, members: list[tuple[str, LabHost]]) -> None:
        records.write_set(self.settings.state_dir, {
            "id": self.id, "bridge": self.bridge, "members": [host.id for _, host in members],
            "owner": os.getpid(), "owner_start": records.process_start_time(os.getpid())})


def _prepared() -> socket.socket:
    """In the new namespace: no IPv6 (no link-local address on the bridge or its ports), then its socket."""
    for conf in ("all", "default"):
        try:
            with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
                f.write("1")
        except FileNotFoundError:   # a kernel without IPv6
            pass
    return netlink.connected(socket.NETLINK_ROUTE)


def _ifinfo(index: int = 0, flags: int = 0) -> bytes:
    """struct ifinfomsg: any family, the index wanted (0: the kernel's choice), the flags to set."""
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, flags, flags)


def _attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind, b"".join(attrs))


def _name(name: str) -> bytes:
    if len(name) >= 16:
        raise ValueError(f"interface name {name!r} is too long")
    return name.encode() + b"\0"

