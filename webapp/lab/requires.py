"""What a lab may require of its lab host (front matter ``requires``), and whether a lab host has it.

Each item is a probe run in the lab host itself: a sandbox lab host has them
all; a plain one (this machine) may lack its dockerd, the image or root.
"""
from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ..labhost.base import BASH

if TYPE_CHECKING:
    from ..labhost.base import LabHost

PROBES = {
    "docker": "docker info",
    "busybox-image": "docker image inspect busybox",
    "netns": "ip netns list",
    "iptables": "iptables -n -L",
    "bridge-utils": "command -v brctl",
}


def lacking(host: LabHost, needs: list[str]) -> list[str]:
    """The items of ``needs`` the lab host does not offer, in order. A lab host from the warm pool was
    probed for all while it waited (``host.offers``): its first lab uses that, untouched as it is; later
    ones probe again, since the learner may have changed what it offers."""
    if not needs:
        return []
    offers, host.offers = host.offers, None
    if offers is None:
        offers = probe(host, needs)
    return [n for n in needs if n not in offers]


def probe(host: LabHost, needs=PROBES) -> set[str]:
    """Which of ``needs`` (by default all) the lab host offers: one command in it (a few docker calls,
    about a quarter of a second of CPU). It looks for them on the learner's PATH, as the lab's commands
    will; what it answers is read within a bound (``LabHost.capture``)."""
    script = "; ".join(f"{PROBES[n]} >/dev/null 2>&1 || echo {shlex.quote(n)}" for n in needs)
    _code, out, _err = host.capture([BASH, "--norc", "--noprofile", "-c", script], timeout=60)
    missing = set(out.decode(errors="replace").split())
    return {n for n in needs if n not in missing}


def refusal(lab_id: str, missing: list[str], host: LabHost) -> str:
    return (f"lab {lab_id} needs {', '.join(missing)}, which {host.kind} lab host {host.id} lacks; "
            f"on a plain lab host install or start them, or use the sandbox backend")
