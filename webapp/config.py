"""Settings, from ``LABNB_*`` environment variables with defaults for a workshop machine."""
from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass
class Settings:
    state_dir: str = "/var/lib/labnb"
    labs_dir: str = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "labs")
    backend: str = "sandbox"          # "sandbox" (isolated lab hosts) or "plain" (this machine)
    pool_size: int = 2                # lab hosts kept started and waiting to be claimed (about 40 MB each)
    max_lab_hosts: int = 64
    memory_mb: int = 1024             # per lab host, dockerd and containers included
    pids: int = 1024
    disk_mb: int = 512                # dockerd's data (images, containers' files), a tmpfs
    cpu_weight: int = 100             # cgroup v2 weight; 100 = an equal share
    uid_base: int = 200000            # lab host n maps root to uid_base + n * 65536
    hostname: str = "localhost"
    address: str = "192.168.118.137/24"  # the lab host's ens33, as in the seed
    ready_timeout: float = 60.0
    token: str = ""                   # the server token in the URL; empty: a new random one per start
    store_file: str = "labnb.sqlite"  # the run store, relative to state_dir
    shell_idle_timeout: float = 3600.0  # seconds a terminal panel's shell lives with no tab showing it; 0: for ever

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then ``LABNB_<FIELD>`` variables, then explicit overrides."""
        values = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get("LABNB_" + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = {"int": int, "float": float}.get(f.type, str)(raw)
            except ValueError:
                raise ValueError(f"LABNB_{f.name.upper()}={raw!r} is not a valid {f.type}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
