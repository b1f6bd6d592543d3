"""A set's lab network: a bridge of its own joining a learner's lab hosts (``hostset.HostSet``).

Being written (issue 31): the shape only, so that the registry and the fast tier's fakes can use it.
"""
from __future__ import annotations

from ..config import Settings
from .base import LabHost, LabHostError


class LabNet:
    """The lab network of one set (``hostset.Network``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.id = ""

    def wire(self, members: list[tuple[str, LabHost]]) -> None:
        raise LabHostError("lab networks of several hosts are not ready yet on this server")

    def destroy(self) -> None:
        pass
