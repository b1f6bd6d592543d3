"""Sets of real lab hosts joined by their lab network (webapp/labhost/labnet.py), for the hostset tests."""
from __future__ import annotations

import contextlib

from webapp.labhost.hostset import HostSet
from webapp.labhost.labnet import LabNet
from webapp.labhost.pool import create

# A frame sniffer run inside a lab host (the machine's python3, stdlib only): counts, over DURATION seconds,
# the frames on any of its links that carry MARK or the address 192.168.118.201 (an ARP for it, a packet to
# it), and writes the count to OUT.
SNIFF = r"""
import socket, sys, time
duration, out = float(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.settimeout(0.2)
seen, end = 0, time.time() + duration
while time.time() < end:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    if b"LABNBMARK" in frame or bytes([192, 168, 118, 201]) in frame:
        seen += 1
open(out, "w").write(str(seen))
"""

# Sends MARK in UDP broadcasts (the subnet's and the limited one) from every address the host has.
SHOUT = r"""
import socket
for target in ("192.168.118.255", "255.255.255.255", "10.9.9.255"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        for _ in range(3):
            s.sendto(b"LABNBMARK", (target, 9999))
    except OSError:
        pass
"""


@contextlib.contextmanager
def host_set(settings, names: list[str]):
    """A set of fresh lab hosts named ``names``, wired; removed at the end."""
    hosts = []
    net = LabNet(settings)
    try:
        for _ in names:
            hosts.append(create(settings))
        members = list(zip(names, hosts))
        net.wire(members)
        yield HostSet(members, net)
    finally:
        net.destroy()
        for host in hosts:
            host.destroy()
