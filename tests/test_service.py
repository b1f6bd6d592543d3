"""labnb as the systemd service (`labnb service install`), the way servers run it.

It needs a machine that runs systemd with cgroup v2 only, as a fresh Debian
does: the README's test command in `../shared/vm/labnb-vm.sh ci` runs it
there. On other machines (this project's build machines: cgroup v1, no
systemd) it is skipped, and says why. It never touches a labnb.service an
operator installed: it is skipped when one exists.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import requests

from web_support import LABNB, Server, Tab, _state_dir, wait_for
from webapp.commands import service
from webapp.labhost import cgroups, records

ON_SYSTEMD_V2 = os.path.isdir("/run/systemd/system") and cgroups.version() == 2
needs_systemd = [
    pytest.mark.slow,
    pytest.mark.skipif(not ON_SYSTEMD_V2, reason="needs systemd and cgroup v2 only (a fresh Debian: labnb-vm.sh ci)"),
    pytest.mark.skipif(os.path.exists(service.UNIT_PATH) or os.path.exists(service.ENV_PATH),
                       reason=f"{service.UNIT_PATH} or {service.ENV_PATH} exists: an operator's, left alone"),
]


def with_systemd(test):
    for mark in needs_systemd:
        test = mark(test)
    return test
LAB = "01-network-modes"
MEMORY_MB = 256   # 2 lab hosts and the server fit a small VM
IO_MBPS = 50
SLICE = "/sys/fs/cgroup/system.slice/labnb.service"


class ServiceServer(Server):
    """The same clients as the web tests' server, but started by systemd."""

    expect_restarts = 0

    def start(self) -> "ServiceServer":
        os.makedirs(os.path.dirname(service.ENV_PATH), exist_ok=True)
        with open(service.ENV_PATH, "w") as f:
            for name in ("LABNB_STATE_DIR", "LABNB_TOKEN", "LABNB_OPERATOR_TOKEN", "LABNB_UID_BASE",
                         "LABNB_POOL_SIZE"):
                f.write(f"{name}={self.env[name]}\n")
            f.write(f"LABNB_MEMORY_MB={MEMORY_MB}\nLABNB_MAX_LAB_HOSTS=2\nLABNB_IO_MBPS={IO_MBPS}\n")
        r = subprocess.run([LABNB, "service", "install", "--port", str(self.port)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"?token={self.token}" in r.stdout, r.stdout
        wait_for(self._answers, 120, 0.5, "the service to answer")
        return self

    def _answers(self) -> bool:
        restarts = subprocess.run(["systemctl", "show", "-p", "NRestarts", "--value", "labnb"],
                                  capture_output=True, text=True).stdout.strip()
        if restarts not in ("", "0") and self.expect_restarts == 0:
            log = subprocess.run(["journalctl", "-u", "labnb", "--no-pager", "-n", "20"],
                                 capture_output=True, text=True).stdout
            raise AssertionError(f"labnb.service failed and restarted {restarts} times:\n{log}")
        try:
            return requests.get(self.url + "/", timeout=2).status_code == 403
        except requests.ConnectionError:
            return False

    def stop(self, sig=None) -> None:
        subprocess.run([LABNB, "service", "remove"], capture_output=True)

    def cleanup(self) -> None:
        super().cleanup()
        for path in (service.ENV_PATH,):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def main_pid() -> int:
    return int(subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "labnb"],
                              capture_output=True, text=True).stdout.strip() or 0)


def lab_hosts() -> set[str]:
    top = os.path.join(SLICE, cgroups.TOP)
    return {e.name for e in os.scandir(top) if e.is_dir()} if os.path.isdir(top) else set()


@pytest.fixture(scope="module")
def served():
    server = ServiceServer(_state_dir("service"), uid_slot=48, pool_size=1)
    try:
        server.prepare().start()
        yield server
    finally:
        server.cleanup()


def test_the_token_file_is_roots_alone_and_keeps_its_token(tmp_path, monkeypatch):
    monkeypatch.setattr(service, "ENV_PATH", str(tmp_path / "labnb" / "labnb.env"))
    first = service.token()
    assert service.token() == first and len(first) >= 32
    assert os.stat(service.ENV_PATH).st_mode & 0o777 == 0o600
    own = tmp_path / "own.env"   # an operator's file: no final newline, readable by all
    own.write_text("LABNB_POOL_SIZE=3")
    own.chmod(0o644)
    monkeypatch.setattr(service, "ENV_PATH", str(own))
    made = service.token()
    assert own.read_text() == f"LABNB_POOL_SIZE=3\nLABNB_TOKEN={made}\n"
    assert own.stat().st_mode & 0o777 == 0o600
    own.write_text('LABNB_TOKEN="quoted-one"\n')
    assert service.token() == "quoted-one"


@with_systemd
def test_the_service_runs_a_lab_through_the_web_in_its_own_delegated_cgroup(served):
    wait_for(lambda: open(f"/proc/{main_pid()}/cgroup").read().strip() == "0::/system.slice/labnb.service/server",
             60, 0.2, "the server to move into its leaf as its first lab host is made")
    http = served.learner()
    served.open_lab(http, LAB)
    tab = Tab(served, http, lab=LAB)
    try:
        run = tab.run("networks")
        end = tab.wait_end(run, 300)
        assert end["status"] == "done" and end["exit_code"] == 0, (end, tab.text(run))
        assert re.search(r"\bbridge\b.*\bbridge\b", tab.text(run)), tab.text(run)
    finally:
        tab.close()
    hosts = lab_hosts()
    assert hosts, "no lab host below the service's cgroup"
    for lab_host in hosts:   # the limits, on the root-owned top of each subtree
        base = os.path.join(SLICE, cgroups.TOP, lab_host)
        assert open(os.path.join(base, "memory.max")).read().strip() == str(MEMORY_MB << 20)
        assert open(os.path.join(base, "pids.max")).read().strip() == "1024"
        disks = cgroups.disks(served.state_dir)
        if "io" in open(os.path.join(SLICE, "cgroup.controllers")).read().split() and disks:
            io_max = open(os.path.join(base, "io.max")).read()
            for disk in disks:
                assert f"{disk} rbps={IO_MBPS << 20} wbps={IO_MBPS << 20} riops=4000 wiops=4000" in io_max, io_max
        assert os.stat(os.path.join(base, "lab")).st_uid >= int(served.env["LABNB_UID_BASE"]), \
            "lab is delegated to the lab host's root"
    at_root = os.path.join(cgroups.ROOT, cgroups.TOP)
    mine = records.id_prefix(served.state_dir)
    assert not os.path.isdir(at_root) or not [e for e in os.scandir(at_root) if e.is_dir() and
                                              e.name.startswith(mine)], "the service made lab hosts at the tree's root"


@with_systemd
def test_a_killed_service_restarts_and_reaps_what_it_left(served):
    before, old = main_pid(), lab_hosts()
    assert old, "the pool keeps a lab host below the service"
    served.expect_restarts = 1
    subprocess.run(["systemctl", "kill", "-s", "KILL", "labnb"], check=True)
    wait_for(lambda: main_pid() not in (0, before) and served._answers(), 120, 0.5, "systemd to restart labnb")
    wait_for(lambda: not (old & lab_hosts()), 60, 0.5, "the killed server's lab hosts to go")
    wait_for(lab_hosts, 120, 0.5, "the new server's pool")
