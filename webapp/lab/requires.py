"""What a lab may require of its lab host (front matter ``requires``), and whether a lab host has it.

Each item is a probe run in the lab host itself (``labhost/offers.py``): a
sandbox lab host has them all; a plain one (this machine) may lack its
dockerd, the image or root.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..labhost.offers import probe

if TYPE_CHECKING:
    from ..labhost.base import LabHost

__all__ = ["lacking", "refusal"]


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


def refusal(lab_id: str, missing: list[str], host: LabHost) -> str:
    return (f"lab {lab_id} needs {', '.join(missing)}, which {host.backend} lab host {host.id} lacks; "
            f"on a plain lab host install or start them, or use the sandbox backend")
