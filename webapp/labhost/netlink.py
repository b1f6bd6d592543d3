"""Reading network namespaces over netlink (rtnetlink, sock_diag) from the server, without entering them.

A netlink socket belongs to the namespace it was made in: the server makes
one per namespace with ``nsfs.made_in`` (a throwaway thread joins them),
never entering one itself and forking nothing. pyroute2's
``IPRoute(netns=...)`` forks a child and starts an event loop per socket,
about 5 ms each; its message classes decode here.

Each socket is connected to the kernel: the lab host's root may send netlink
messages to any socket in its namespaces, and a connected netlink socket
refuses every sender but the kernel. What the kernel sends is bounded.
"""
from __future__ import annotations

import errno
import secrets
import socket

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SOCK_DIAG_BY_FAMILY, MarshalDiag, inet_diag_req
from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETNSID, RTM_NEWNSID
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

from . import nsfs

TIMEOUT = 2.0             # a dump of a few hundred links takes a millisecond
MAX_MESSAGES = 512        # per dump: more links or addresses than a picture shows (pyroute2 decodes 3000 a second)
MAX_BYTES = 8 << 20       # per dump
RECV = 1 << 17
TCP_LISTEN = 10
NETLINK_SOCK_DIAG = 4


class NetlinkError(OSError):
    """A namespace that could not be read; the message says which and why."""


def sockets_in(nsfds: list[int], protocol: int = socket.NETLINK_ROUTE) -> list[socket.socket | OSError]:
    """A connected netlink socket of ``protocol`` in each network namespace of ``nsfds`` (or why there is
    none), in order."""
    return nsfs.made_in(nsfds, lambda: connected(protocol))


def connected(protocol: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
    try:
        sock.settimeout(TIMEOUT)
        for attempt in range(8):   # a port id of chance: an automatic one is the server's pid, seen inside
            try:
                sock.bind((secrets.randbelow(1 << 30) + (1 << 20), 0))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or attempt == 7:
                    raise
        sock.connect((0, 0))   # the kernel only: a learner's process cannot inject messages
        return sock
    except BaseException:
        sock.close()
        raise


class Netlink:
    """Requests on one namespace's netlink socket, answered with pyroute2's decoded messages."""

    marshal_class = MarshalRtnl

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0
        self.marshal = self.marshal_class()

    def _ask(self, msg, kind: int, dump: bool) -> list:
        self.seq += 1
        msg["header"]["type"] = kind
        msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        replies, size = [], 0
        while True:
            data = self.sock.recv(RECV)
            size += len(data)
            if not data or size > MAX_BYTES:
                raise NetlinkError(f"netlink answer cut short after {size} bytes")
            for reply in self.marshal.parse(data):
                header = reply["header"]
                if header["sequence_number"] != self.seq:
                    continue
                if header["type"] == NLMSG_ERROR or header.get("error"):
                    if header.get("error"):
                        raise NetlinkError(f"netlink: {header['error']}")
                    return replies   # an acknowledgement
                if header["type"] == NLMSG_DONE:
                    return replies
                replies.append(reply)
                if len(replies) > MAX_MESSAGES:
                    raise NetlinkError(f"more than {MAX_MESSAGES} netlink answers")
                if not dump:
                    return replies


class Rtnl(Netlink):
    """rtnetlink: links, addresses, namespace ids."""

    def links(self) -> list:
        return self._ask(ifinfmsg(), RTM_GETLINK, dump=True)

    def addresses(self) -> list:
        return self._ask(ifaddrmsg(), RTM_GETADDR, dump=True)

    def nsid(self, nsfd: int) -> int | None:
        """The id this namespace gives the namespace ``nsfd`` (what its links' ``IFLA_LINK_NETNSID`` name),
        None if it gives it none."""
        msg = nsidmsg()
        msg["attrs"] = [("NETNSA_FD", nsfd)]
        for reply in self._ask(msg, RTM_GETNSID, dump=False):
            if reply["header"]["type"] == RTM_NEWNSID:
                nsid = reply.get_attr("NETNSA_NSID")
                return None if nsid in (None, 0xFFFFFFFF) else nsid
        return None


class Diag(Netlink):
    """sock_diag: the TCP sockets that listen in the namespace (what ``ss -ltn`` shows)."""

    marshal_class = MarshalDiag

    def listening_tcp(self) -> list:
        found = []
        for family in (socket.AF_INET, socket.AF_INET6):
            req = inet_diag_req()
            req["sdiag_family"], req["sdiag_protocol"] = family, socket.IPPROTO_TCP
            req["idiag_states"] = 1 << TCP_LISTEN
            found += self._ask(req, SOCK_DIAG_BY_FAMILY, dump=True)
        return found
