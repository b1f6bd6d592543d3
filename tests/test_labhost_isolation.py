"""What a learner who is root in a lab host cannot do to the machine or to another lab host."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import cmdline, sh, unreached_port
from webapp import executor
from webapp.labhost.pool import create


@pytest.fixture(scope="module")
def other_lab_host(settings):
    host = create(settings)
    yield host
    host.destroy()


def test_host_shadow_is_unreadable_through_a_bind_mount(lab_host):
    outcome, out = sh(lab_host, "docker run --rm -v /:/host busybox cat /host/etc/shadow")
    assert outcome.exit_code != 0
    assert "Permission denied" in out
    assert "root:" not in out


def test_host_root_dir_is_not_writable(lab_host):
    probe = f"labnb-probe-{os.getpid()}"
    outcome, out = sh(lab_host, f"docker run --rm -v /:/host busybox sh -c "
                                f"'touch /host/root/{probe}; touch /host/etc/{probe}; touch /host/usr/{probe}'")
    # /host/root is the lab host's own private HOME; the real /root, /etc and /usr are untouched
    assert not os.path.exists(f"/root/{probe}")
    assert not os.path.exists(f"/etc/{probe}") and not os.path.exists(f"/usr/{probe}")
    assert out.count("Read-only file system") >= 2, out   # the binds are read-only (and locked)


def test_only_the_machines_programs_and_etc_are_visible(lab_host, settings):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _, top = sh(lab_host, "ls -1 /")
    _, out = sh(lab_host, f"ls -1 /home /mnt; test -e {repo} || echo no-repo; "
                          f"test -e {settings.state_dir}/labnb.sqlite || echo no-store; "
                          f"test -e {settings.state_dir}/lib || echo no-lib")
    assert {"usr", "etc", "bin", "tmp", "root", "var"} <= set(top.split()), top
    # (an /opt appears: containerd makes /opt/containerd in the lab host's own root)
    assert not {"work", "srv", "boot", "lost+found"} & set(top.split()), top
    assert out.split() == ["/home:", "/mnt:", "no-repo", "no-store", "no-lib"], out


def test_privileged_container_cannot_mount_the_host_disk(lab_host):
    dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
    assert dev.startswith("/dev/")
    outcome, out = sh(lab_host, f"docker run --rm --privileged busybox sh -c "
                                f"'mkdir -p /mnt/d; mount {dev} /mnt/d && ls /mnt/d/etc/shadow'")
    assert outcome.exit_code != 0
    assert "shadow" not in out.replace("/mnt/d/etc/shadow'", "")


def test_processes_of_another_lab_host_are_invisible_and_unsignallable(lab_host, other_lab_host):
    proc = executor.start(other_lab_host, "exec sleep 4242", window=None)
    try:
        deadline = time.monotonic() + 10
        victim = []
        while not victim and time.monotonic() < deadline:   # until bash has exec'd sleep
            victim = [p for p in other_lab_host.subtree.pids() if cmdline(p).startswith(b"sleep\x004242")]
        assert victim, "the sleep is not in the other lab host's cgroup"
        _, ps = sh(lab_host, "ps -ef")
        assert "sleep 4242" not in ps
        outcome, out = sh(lab_host, f"kill -9 {victim[0]}")
        assert outcome.exit_code != 0
        assert proc.running and os.path.exists(f"/proc/{victim[0]}")
    finally:
        proc.stop(grace=1)


def test_same_addresses_but_separate_networks(lab_host, other_lab_host):
    sh(other_lab_host, "docker run -d --name only-in-b -p 8081:80 busybox "
                       "sh -c 'echo from-b > /tmp/index.html; httpd -f -h /tmp'")
    outcome, out = sh(lab_host, "docker ps -a --format '{{.Names}}'; ip netns list; "
                                "wget -T 2 -O - -q 192.168.118.137:8081; wget -T 2 -O - -q 172.17.0.2:80")
    assert "only-in-b" not in out and "from-b" not in out
    _, out = sh(other_lab_host, "for i in $(seq 50); do wget -T 2 -O - -q 192.168.118.137:8081 && break; sleep 0.1; done")
    assert "from-b" in out
    sh(other_lab_host, "docker rm -f only-in-b")


def test_netns_names_are_per_lab_host(lab_host, other_lab_host):
    sh(other_lab_host, "ip netns add only-in-b")
    _, out = sh(lab_host, "ip netns list; ls /run/netns")
    assert "only-in-b" not in out
    sh(other_lab_host, "ip netns delete only-in-b")


def test_server_port_is_unreachable(lab_host):
    with unreached_port() as (port, machine):
        for addr in ["127.0.0.1", *machine[:2]]:
            outcome, out = sh(lab_host, f"timeout 5 bash -c 'echo > /dev/tcp/{addr}/{port}' && echo REACHED")
            assert "REACHED" not in out, f"{addr}:{port} reached from a lab host"
            outcome, out = sh(lab_host, f"docker run --rm busybox nc -w 2 {addr} {port} </dev/null && echo REACHED")
            assert "REACHED" not in out, f"{addr}:{port} reached from a container"


@pytest.mark.slow
def test_fork_bomb_and_memory_hog_stay_inside_their_limits(settings):
    import dataclasses
    small = dataclasses.replace(settings, pids=256, memory_mb=256)
    host = create(small)
    try:
        pids_dir = next(p for p in host.subtree.paths() if "/pids/" in p or p.startswith("/sys/fs/cgroup/labnb"))
        outcome, out = sh(host, "bomb() { bomb | bomb & }; bomb; sleep 5; echo survived", timeout=30)
        # the machine still answers while the bomb is at its limit
        assert subprocess.run(["true"], timeout=10).returncode == 0
        peak = open(os.path.join(pids_dir, "pids.current")).read().strip()
        assert int(peak) <= 256
        assert "fork: retry" in out or "Resource temporarily unavailable" in out, out[-500:]
        _kill_matching(host, b"bomb()")
        outcome, out = sh(host, "head -c 600M /dev/zero | tail > /dev/null; echo status=$?", timeout=60)
        mem_dir = next(p for p in host.subtree.paths() if "/memory/" in p or p.startswith("/sys/fs/cgroup/labnb"))
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            path = os.path.join(mem_dir, name)
            if os.path.exists(path):
                assert int(open(path).read()) <= 256 * 1024 * 1024
        assert "status=137" in out, out[-500:]
        assert subprocess.run(["true"], timeout=10).returncode == 0
    finally:
        host.destroy()


def _kill_matching(host, needle: bytes) -> None:
    """SIGKILL the lab host's processes whose command line holds ``needle``, until none are left."""
    while True:
        victims = [pid for pid in host.subtree.pids() if needle in cmdline(pid)]
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
