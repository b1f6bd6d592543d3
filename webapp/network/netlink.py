"""Reading network namespaces over rtnetlink from the server, without entering them.

A netlink socket belongs to the namespace it was made in. The server makes
one per namespace in a throwaway thread that joins each namespace in turn
(``setns`` moves only the calling thread, and that thread ends with the
job): no thread that serves anything ever leaves the server's namespace, and
nothing is forked. pyroute2's ``IPRoute(netns=...)`` forks a child and starts
an event loop per socket, about 5 ms each; its message classes decode here.

Each socket is connected to the kernel: the lab host's root may send netlink
messages to any socket in its namespaces, and a connected netlink socket
refuses every sender but the kernel. What the kernel sends is bounded.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETNSID, RTM_NEWNSID
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

from ..labhost.nsfs import CLONE_NEWNET

TIMEOUT = 2.0             # a dump of a few hundred links takes a millisecond
MAX_MESSAGES = 2048       # per dump: far more links or addresses than a picture can show
MAX_BYTES = 8 << 20       # per dump
RECV = 1 << 17

_libc = ctypes.CDLL(None, use_errno=True)


class NetlinkError(OSError):
    """A namespace that could not be read; the message says which and why."""


def sockets_in(nsfds: list[int]) -> list[socket.socket | OSError]:
    """A connected rtnetlink socket in each network namespace of ``nsfds`` (or why there is none), in order."""
    made: list[socket.socket | OSError] = []

    def join_each() -> None:
        for fd in nsfds:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                made.append(OSError(err, f"cannot join the namespace: {os.strerror(err)}"))
                continue
            try:
                made.append(_connected())
            except OSError as e:
                made.append(e)

    thread = threading.Thread(target=join_each, name="netns-sockets", daemon=True)
    thread.start()
    thread.join()
    return made


def _connected() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        sock.settimeout(TIMEOUT)
        sock.bind((0, 0))
        sock.connect((0, 0))   # the kernel only: a learner's process cannot inject messages
        return sock
    except BaseException:
        sock.close()
        raise


class Rtnl:
    """Requests on one namespace's socket, answered with pyroute2's decoded messages."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0
        self.marshal = MarshalRtnl()

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
