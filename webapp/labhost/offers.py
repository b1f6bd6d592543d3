"""What a lab host offers of what labs may require (front matter ``requires``), found by a probe run in
the lab host itself: a sandbox lab host has it all; a plain one (this machine) may lack its dockerd, the
image or root. Here, not in ``lab/``, so that the warm pool probes the lab hosts it makes while the machine
is idle without reaching up to the lab format (``lab/requires.py`` uses it)."""
from __future__ import annotations

import shlex

from .base import BASH, LabHost

PROBES = {
    "docker": "docker info",
    "busybox-image": "docker image inspect busybox",
    "netns": "ip netns list",
    "iptables": "iptables -n -L",
    "bridge-utils": "command -v brctl",
}


def probe(host: LabHost, needs=PROBES) -> set[str]:
    """Which of ``needs`` (by default all) the lab host offers: one command in it (a few docker calls,
    about a quarter of a second of CPU). It looks for them on the learner's PATH, as the lab's commands
    will; what it answers is read within a bound (``LabHost.capture``)."""
    script = "; ".join(f"{PROBES[n]} >/dev/null 2>&1 || echo {shlex.quote(n)}" for n in needs)
    _code, out, _err = host.capture([BASH, "--norc", "--noprofile", "-c", script], timeout=60)
    missing = set(out.decode(errors="replace").split())
    return {n for n in needs if n not in missing}
