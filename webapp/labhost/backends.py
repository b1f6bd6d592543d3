"""The lab host backends, by the name ``LABNB_BACKEND`` gives, with what the rest of the server needs to
know of each: one entry here and one module are a new backend (a remote node's lab host, a pod).

Like JupyterHub's spawner classes, found by name; tests register fakes the same way (``register``).
A built-in backend's class is named by its module path and imported on first use: the command line
starts without loading docker's SDK.
"""
from __future__ import annotations

import dataclasses
import importlib
import threading
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError
from . import records
from .errors import LabHostError

if TYPE_CHECKING:
    from ..config import Settings
    from .base import LabHost
    from .errors import CannotMake
    from .hostset import Network


@dataclasses.dataclass(frozen=True)
class Backend:
    """A kind of lab host, and its properties."""

    name: str
    make: str | Callable[[Settings], LabHost]   # a new, not yet started, lab host ("module:Class" or callable)
    pooled: bool     # slow to make: the server keeps a warm pool of them ready (LABNB_POOL_SIZE)
    recorded: bool   # recorded in the state dir, which is prepared for it; outlives a killed server: reaped by
                     # the next (``reaper.py``), listed for operators (/lab-hosts)
    isolated: bool   # a learner's commands cannot touch this machine: its own limits (memory fitted to the
                     # machine, the server's own memory cgroup required); not isolated: warned about
    # Why the machine lets no lab host of this kind be made now, whoever asks (the sandbox: every uid range
    # claimed), or None: cheap, as the warm pool, a join and the node's health ask it. None: no such bound.
    refusal: Callable[[Settings], CannotMake | None] | None = None
    # The lab network that joins a learner's set of several lab hosts of this kind (``hostset.Network``),
    # made empty ("module:function" or callable); None: labs of several hosts cannot run on it.
    network: str | Callable[[Settings], Network] | None = None

    def new(self, settings: Settings) -> LabHost:
        return _resolved(self.make)(settings)

    def new_network(self, settings: Settings) -> Network:
        """A new, empty lab network for a set of this kind's lab hosts; LabHostError if it has none."""
        if self.network is None:
            raise LabHostError(f"lab hosts of the {self.name} backend cannot be joined in a set of several",
                               "Run labs of several hosts with LABNB_BACKEND=sandbox")
        return _resolved(self.network)(settings)

    def cannot_make(self, settings: Settings) -> CannotMake | None:
        return self.refusal(settings) if self.refusal else None


def _resolved(make: str | Callable) -> Callable:
    """A callable named "module:name" is imported on first use."""
    if isinstance(make, str):
        module, _, name = make.partition(":")
        return getattr(importlib.import_module(module), name)
    return make


_backends: dict[str, Backend] = {}
_lock = threading.Lock()


def register(backend: Backend) -> Backend:
    """Make ``backend`` known by its name (a name already known is replaced: a test's fake of it)."""
    with _lock:
        _backends[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    with _lock:
        _backends.pop(name, None)


def names() -> list[str]:
    with _lock:
        return sorted(_backends)


def get(name: str) -> Backend:
    """The backend called ``name``; ConfigError naming the known ones if there is none."""
    with _lock:
        found = _backends.get(name)
    if found is None:
        raise ConfigError("LABNB_BACKEND", f"there is no lab host backend {name!r}",
                          f"Set LABNB_BACKEND to one of {', '.join(names())}")
    return found


def _no_uid_range(settings: Settings) -> CannotMake | None:
    return records.refusal(settings.state_dir, settings.max_lab_hosts, settings.uid_base)


register(Backend("sandbox", "webapp.labhost.sandbox:SandboxLabHost", pooled=True, recorded=True, isolated=True,
                 refusal=_no_uid_range, network="webapp.labhost.labnet:LabNet"))
register(Backend("plain", "webapp.labhost.plain:PlainLabHost", pooled=False, recorded=False, isolated=False))
