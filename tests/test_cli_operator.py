"""The operator's commands: doctor, image build, lab-hosts ls/rm/gc."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import labnb
from webapp.labhost.pool import create


def test_doctor_finds_nothing_wrong_here(settings):
    r = labnb(settings, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok   cgroup delegation" in r.stdout and "FAIL" not in r.stdout


def test_doctor_says_what_to_do_when_the_image_is_missing(settings):
    env = {**os.environ, "LABNB_STATE_DIR": "/var/lib/labnb-test-empty-%d" % os.getpid()}
    r = subprocess.run([sys.executable, "-m", "webapp.commands.cli", "doctor"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "FAIL busybox image" in r.stdout and "-> Run `labnb image build`" in r.stdout


def test_image_build_is_idempotent(settings):
    r = labnb(settings, "image", "build")
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout


def test_lab_hosts_ls_rm_and_gc(settings, lab_host):
    other = create(settings)
    try:
        r = labnb(settings, "lab-hosts", "ls", "--json")
        found = {m["id"]: m for m in json.loads(r.stdout)}
        assert found[lab_host.id]["alive"] and found[lab_host.id]["owner_alive"]
        assert other.id in found
        r = labnb(settings, "lab-hosts", "rm", other.id)
        assert r.returncode == 0 and f"removed {other.id}" in r.stdout
        assert not other.alive()
        r = labnb(settings, "lab-hosts", "rm", "lh-nothere")
        assert r.returncode == 1 and "no lab host lh-nothere" in r.stderr
        # gc spares lab hosts whose server (this test process) still runs
        r = labnb(settings, "lab-hosts", "gc")
        assert r.returncode == 0 and lab_host.id not in r.stdout
        assert lab_host.health().ok
        r = labnb(settings, "lab-hosts", "ls")
        assert lab_host.id in r.stdout and other.id not in r.stdout
    finally:
        other.destroy()
