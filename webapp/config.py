"""Settings, from ``LABNB_*`` environment variables with defaults for a workshop machine.

Settings are frozen: what is derived from them (the tokens, a workshop's
access code and sizing, the lab hosts that fit the machine) is worked out
once, by ``resolve``, before any service is built (webapp/app.py), so that
every service sees the same values. ``dataclasses.replace`` derives others.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re

from .errors import ConfigError

NODE_NAME = re.compile(r"[a-z0-9]{1,12}")   # a cluster node's name (LABNB_NODE)


@dataclasses.dataclass(frozen=True)
class Settings:
    state_dir: str = "/var/lib/labnb"
    labs_dir: str = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "labs")
    backend: str = "sandbox"          # "sandbox" (isolated lab hosts) or "plain" (this machine)
    pool_size: int = 2                # lab hosts kept started and waiting to be claimed (about 40 MB each)
    max_lab_hosts: int = 64
    memory_mb: int = 1024             # per lab host, dockerd and containers included
    pids: int = 1024
    disk_mb: int = 512                # dockerd's data (images, containers' files), a tmpfs
    tmpfs_mb: int = 64                # each of the lab host's /tmp, /var/tmp, /dev/shm, /run and HOME
    ptys: int = 256                   # PTYs a lab host may hold at once, from any devpts
    pty_guard: str = "auto"           # the BPF LSM bound on PTYs (ptyguard.py): "on" (required), "auto", "off"
    cpu_weight: int = 100             # cgroup v2 weight; 100 = an equal share
    io_mbps: int = 200                # cgroup v2 io.max: MiB/s read and written per disk of the machine; 0: no limit
    io_iops: int = 4000               # cgroup v2 io.max: reads and writes per second per disk; 0: no limit
    uid_base: int = 200000            # lab host n maps root to uid_base + n * 65536
    hostname: str = "localhost"
    address: str = "192.168.118.137/24"  # the lab host's ens33, as in the seed
    ready_timeout: float = 60.0
    token: str = ""                   # the server token in the URL; empty: a new random one per start
    # Roles and the share of the server one client may take (webapp/guard/auth.py, webapp/guard/limits.py):
    operator_token: str = ""          # grants the operator's pages (/lab-hosts); empty: derived from token and secret key
    session_days: float = 7.0         # a browser stays signed in this long after its last request
    new_learners_per_address: int = 20  # new learner identities one client address may get per learner_window
    learner_window: float = 3600.0    # seconds
    max_learners: int = 256           # new learner identities per server start, all addresses together
    max_sockets: int = 192            # open WebSockets in all (each holds a thread; 64 more are kept for HTTP)
    max_sockets_per_address: int = 64
    max_sockets_per_learner: int = 8  # one browser's open lab pages
    runs_per_minute: int = 60         # runs one learner may start in any minute (one at a time already)
    lab_hosts_per_address: int = 0    # lab hosts the learners of one client address may hold at once; 0: a quarter
                                      # of max_lab_hosts, at least 1 (not in a workshop: its room has places)
    server_memory_mb: int = 1024      # memory left for the server and the system beside every lab host's limit
    # A workshop (webapp/workshop/): learners join with the access code and a name, the operator is the
    # instructor, and a room holds at most `capacity` learners at once (the next ones wait in a queue).
    workshop: int = 0                 # 1: a workshop; 0: every holder of the token is a learner
    capacity: int = 30                # learners in the room at once, each with a lab host
    access_code: str = ""             # what learners type to join; empty: a new random one per start
    workshop_labs: str = ""           # the workshop's lab ids, comma-separated; empty: every lab
    join_attempts: int = 20           # wrong access codes one client address may try per learner_window
    max_minutes: float = 240.0        # a learner's place lasts this long from when they got it; 0: for ever
    idle_minutes: float = 30.0        # ... or ends this long after their last activity (a visible tab, a request, a
                                      # running command); 0: never. Without a workshop, a learner's lab host is given
                                      # back after this long with no activity (webapp/learners/registry.py)
    gone_minutes: float = 10.0        # ... or this long after their last tab closed; 0: never
    warn_minutes: float = 5.0         # the learner is warned this long before their place ends
    extend_minutes: float = 15.0      # what a learner's "extend" adds to their time
    extend_most_minutes: float = 30.0  # what a learner may add in all (the instructor may add more)
    store_file: str = "labnb.sqlite"  # the run store, relative to state_dir
    proxy_domain: str = "localhost"   # lab hosts' web services at p<port>-<lab host>.<this>; browsers resolve *.localhost
    proxy_connections: int = 64       # connections to lab hosts' web services at once, in all (each a server thread)
    proxy_per_learner: int = 8        # and to one learner's
    shell_idle_timeout: float = 3600.0  # seconds a terminal panel's shell lives with no tab showing it; 0: for ever
    # The run store's limits (docs/run-store.md): what is stored of runs' output, in MiB.
    run_output_mb: int = 16           # per run: a longer output keeps its first and last 8 MiB, the middle is counted
    learner_output_mb: int = 256      # per learner: past it, their oldest runs' output makes room
    store_output_mb: int = 4096       # all learners: past it, the biggest user's oldest runs' output makes room
    retention_days: float = 30.0      # runs that ended longer ago are deleted (checked hourly); 0: kept for ever
    # Past one machine (docs/cluster.md): every node is a whole labnb; they share PostgreSQL and Redis, and
    # HAProxy in front pins each learner to a node. All empty or 0 on one machine: SQLite, nothing to start.
    database_url: str = ""            # postgresql://... : the shared store; empty: SQLite at state_dir/store_file
    redis_url: str = ""               # redis://... : Socket.IO's message queue and commands between nodes
    node: str = ""                    # this node's name in the cluster (labnb serve --node NAME); empty: one machine
    agent_port: int = 0               # where HAProxy's agent-check asks this node's weight, drain or down; 0: none
    # HAProxy's addresses (comma-separated, networks allowed): a request from one of them is from the address
    # its X-Forwarded-For names last, for every per-address limit (webapp/guard/proxied.py); empty: none
    trusted_proxies: str = ""
    # Images for labs (docs/images.md): the machine's cache, Debian's docker-registry run by labnb (an import store
    # beside a pull-through cache of image_upstream), started when a served lab names images.
    image_cache: str = ""             # "": labnb runs its own when a lab names images; "local": always; or the
                                      # http(s):// URL of a registry the operator runs (pulls and imports go there)
    image_upstream: str = "https://registry-1.docker.io"  # what labnb's pull-through cache fills from
    image_connections: int = 8        # connections one lab host's dockerd may hold to the forwarder at once
    image_rate_mbps: int = 64         # MiB/s the forwarder passes to one lab host (a token bucket)
    image_total_mb: int = 4096        # MiB one lab host may pull through the forwarder in its life

    def __post_init__(self):
        if self.node and not NODE_NAME.fullmatch(self.node):
            raise ConfigError("LABNB_NODE", f"the node name {self.node!r} is not 1 to 12 lower-case letters and "
                              "digits (it begins the node's lab host ids, which HAProxy routes by)",
                              "Set LABNB_NODE (or labnb serve --node) to a name such as node1, unique in the cluster")
        proxies(self.trusted_proxies)

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
                raise ConfigError(f"LABNB_{f.name.upper()}", f"{raw!r} is not a valid {f.type}",
                                  f"Set it to a{'n' if f.type == 'int' else ''} {f.type}, or unset it") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def proxies(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of LABNB_TRUSTED_PROXIES (addresses or networks, comma-separated)."""
    try:
        networks = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())
    except ValueError as e:
        raise ConfigError("LABNB_TRUSTED_PROXIES", f"{text!r} is not a list of addresses: {e}",
                          "Set it to HAProxy's addresses, comma-separated (such as 10.0.0.5,10.0.1.0/24), "
                          "or unset it") from None
    every = [str(n) for n in networks if n.prefixlen == 0]
    if every:   # a client within a trusted network may write any other address in X-Forwarded-For
        raise ConfigError("LABNB_TRUSTED_PROXIES", f"{', '.join(every)} trusts every address: any client could "
                          "name itself another address at each request, past every per-address limit",
                          "Set it to HAProxy's addresses only, comma-separated (such as 10.0.0.5)")
    return networks
