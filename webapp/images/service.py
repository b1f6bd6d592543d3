"""The images part of a server or a ``labnb run``: the cache opened, the forwarder ready to attach to each
new lab host (the pool's ``prepare`` hook). Made only when wanted (``cache.wanted``): the README's
default starts no registry and attaches no forwarder."""
from __future__ import annotations

import logging

from ..config import Settings
from ..labhost import backends, layers
from ..labhost.base import LabHost, LabHostError
from .ensure import ensure
from .cache import named, open_cache, wanted
from .forwarder import Forwarder

log = logging.getLogger(__name__)


class Images:
    """One per server (or ``labnb run``), shared by all its lab hosts: the cache is the machine's, and the
    forwarder serves every lab host from one event loop thread, so neither is made per lab host."""

    def __init__(self, settings: Settings, images: list[str]):
        """``images``: the names the served labs use; the pull-through cache fetches only those (and what
        it holds already) for lab hosts."""
        self.settings, self.names = settings, sorted(set(images))
        self.cache = open_cache(settings)
        try:
            self.forwarder = Forwarder(settings, self.cache, named(images))
        except BaseException:
            self.cache.close()
            raise
        self.attach = backends.get(settings.backend).isolated   # the plain backend's dockerd is the machine's

    def prepare(self, host: LabHost) -> None:
        """The pool's hook: the forwarder in the new lab host, before a learner has it."""
        if self.attach:
            self.forwarder.attach(host)

    def share_layers(self) -> None:
        """The served labs' images in one shared copy on disk (``layers.ensure``), before the warm pool
        fills: the pool's lab hosts then have them without a pull. Where that cannot be (an image the cache
        lacks, a kernel without idmapped mounts) it is logged, and lab hosts pull their own copies."""
        if not (self.attach and self.names):
            return
        try:
            layers.ensure(self.settings, self.names, lambda host: (self.prepare(host), ensure(host, self.names)))
        except LabHostError as e:
            log.warning("the labs' images are not shared between lab hosts; each pulls its own copy: %s", e)

    def close(self) -> None:
        self.forwarder.close()
        self.cache.close()


def for_labs(settings: Settings, labs) -> Images | None:
    """The images part if a lab of ``labs`` names images or the operator set LABNB_IMAGE_CACHE, else None."""
    labs = list(labs)
    return Images(settings, [i for lab in labs for i in getattr(lab, "images", None) or []]) \
        if wanted(settings, labs) else None
