"""``labnb service install``: labnb as a systemd service, the way servers run.

``Delegate=yes`` gives labnb a cgroup of its own to make lab hosts in, as
systemd's "Control Group APIs and Delegation" asks of programs that manage
cgroups (cgroups.py moves the server into its leaf ``server``, whose memory
limit is the server's own: ``cgroups.server_memory``). The token
lives in an environment file only root reads, so the URL stays the same
across restarts; logs go to the journal.
"""
from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys

UNIT = "labnb.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
ENV_PATH = "/etc/labnb/labnb.env"


def unit_text(host: str, port: int) -> str:
    labnb = os.path.join(sys.prefix, "bin", "labnb")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return f"""# Written by `labnb service install`; `labnb service remove` removes it.
[Unit]
Description=labnb, a web lab notebook server
Documentation=file://{repo}/README.md
After=network-online.target
Wants=network-online.target
# a server that cannot start (a setting that does not fit) stops retrying after five tries
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=simple
ExecStart={shlex.quote(labnb)} serve --host {shlex.quote(host)} --port {port}
WorkingDirectory={repo}
EnvironmentFile={ENV_PATH}
Environment=PYTHONUNBUFFERED=1
# lab host cgroups live below the service's own cgroup, delegated to it; the server itself moves to its
# leaf `server`, limited there to LABNB_SERVER_MEMORY_MB (not MemoryMax= here: that would bound the lab hosts too)
Delegate=yes
# each lab host has its own pids limit; the service's default TasksMax would cap them all together
TasksMax=infinity
LimitNOFILE=1048576
StateDirectory=labnb
StateDirectoryMode=0711
Restart=on-failure
RestartSec=2
# stopping kills every lab host (they are in the service's cgroup); the next start reaps their records
KillMode=control-group
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def token() -> str:
    """The learners' token from the environment file, made on first install.

    The file is root's alone (it holds the token); a value in quotes is read
    the way systemd reads it."""
    os.makedirs(os.path.dirname(ENV_PATH), mode=0o700, exist_ok=True)
    fd = os.open(ENV_PATH, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+") as f:
        os.fchmod(fd, 0o600)
        text = f.read()
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key == "LABNB_TOKEN" and value.strip().strip("'\""):
                return value.strip().strip("'\"")
        value = secrets.token_urlsafe(24)
        f.write(("" if not text or text.endswith("\n") else "\n")
                + ("# labnb's settings for the service (LABNB_* variables, see webapp/config.py)\n" if not text else "")
                + f"LABNB_TOKEN={value}\n")
    return value


def _systemctl(*args: str) -> None:
    r = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)} failed: {r.stderr.strip()}")


def install(host: str, port: int) -> str:
    """Write the unit, enable and (re)start it; the learners' token."""
    if not os.path.isdir("/run/systemd/system"):
        raise RuntimeError("this machine does not run systemd; start labnb with `scripts/setup.sh serve` instead")
    value = token()
    with open(UNIT_PATH + ".tmp", "w") as f:
        f.write(unit_text(host, port))
    os.replace(UNIT_PATH + ".tmp", UNIT_PATH)
    _systemctl("daemon-reload")
    _systemctl("enable", UNIT)
    subprocess.run(["systemctl", "reset-failed", UNIT], capture_output=True)   # a start limit hit before
    _systemctl("restart", UNIT)
    return value


def remove() -> None:
    """Stop and disable the service and remove its unit; the token file and the state dir stay."""
    subprocess.run(["systemctl", "disable", "--now", UNIT], capture_output=True)
    try:
        os.remove(UNIT_PATH)
    except FileNotFoundError:
        pass
    _systemctl("daemon-reload")
