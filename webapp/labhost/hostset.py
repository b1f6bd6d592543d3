"""A learner's set of lab hosts: the hosts a lab declares (``hosts: [node1, node2]``), by the lab's names.

A lab of one host (every lab before issue 31) has a set of one: the learner's lab host, named as the lab
names it, with today's ens33 and no lab network. A lab of several grows the set (more lab hosts claimed
from the warm pool), and the set's lab network (``labnet.LabNet``) joins them; the first member stays the
primary, the lab host all single-host code knows as ``learner.host``. The set is claimed, reset, reaped and
destroyed as one (webapp/learners/registry.py).
"""
from __future__ import annotations

import re
from typing import Protocol

from .base import LabHost, LabHostError

MOST = 5            # hosts a set may have (the lab format's limit): bounds what the kernel shares per learner
DEFAULT_NAME = "node1"   # the name of a lab's only host when the lab names none
NAME = re.compile(r"[a-z][a-z0-9-]{0,15}")   # a host's name, as the lab format allows it


class Network(Protocol):
    """The lab network of a set (``labnet.LabNet`` on this machine's kernel; a fake in the fast tier),
    made by its backend (``backends.Backend.network``)."""

    id: str

    def wire(self, members: list[tuple[str, LabHost]]) -> None:
        """Join every member not yet on it, then give each its name (hostname, /etc/hosts of them all)."""

    def destroy(self) -> None:
        """Remove the network (its members are the pool's to destroy); safe to call twice."""


def names_of(lab) -> list[str]:
    """The hosts ``lab`` declares, in order (``Lab.hosts``, the format's; one host when it names none)."""
    return list(getattr(lab, "hosts", None) or [DEFAULT_NAME])


class HostSet:
    """Lab hosts by name, the first the primary; ``network`` the lab network joining them (None for one host
    or none)."""

    def __init__(self, members: list[tuple[str, LabHost]] | None = None, network: Network | None = None):
        self._members = list(members or [])
        bad = [name for name, _ in self._members if not NAME.fullmatch(name)]
        if bad:
            raise LabHostError(f"{bad[0]!r} is not a host name: lowercase letters, digits and '-', a letter first, "
                               "at most 16", "Name the lab's hosts so in its front matter (`hosts:`)")
        if len(self._members) > MOST:
            raise LabHostError(f"a set of {len(self._members)} lab hosts is more than the {MOST} a lab may have",
                               f"Declare at most {MOST} hosts in the lab's front matter (`hosts:`)")
        if len({name for name, _ in self._members}) != len(self._members):
            raise LabHostError(f"two lab hosts of one set have the same name: {self.names}",
                               "Name each of the lab's hosts once in its front matter (`hosts:`)")
        self.network = network

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._members]

    def host(self, name: str | None = None) -> LabHost:
        """The lab host named ``name``, the primary for None; LabHostError for a name not in the set."""
        if not self._members:
            raise LabHostError("this learner has no lab host yet", "Wait until it has started, or reset it")
        if name is None:
            return self._members[0][1]
        for member, host in self._members:
            if member == name:
                return host
        raise LabHostError(f"no lab host named {name!r} in this set (its hosts: {', '.join(self.names)})",
                           "Name one of the hosts the lab declares in its front matter (`hosts:`)")

    def members(self) -> list[tuple[str, LabHost]]:
        return list(self._members)

    def hosts(self) -> list[LabHost]:
        return [host for _, host in self._members]

    def __len__(self) -> int:
        return len(self._members)

    def __bool__(self) -> bool:
        return bool(self._members)

    def ids(self) -> dict[str, str]:
        """Each member's lab host id by name (for the learner's status, the UI)."""
        return {name: host.id for name, host in self._members}
