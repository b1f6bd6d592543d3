"""Teardown leaves nothing: no process, mount, cgroup, veth, dir or slot."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from webapp.labhost import cgroups, reaper, records
from webapp.labhost.pool import create


def snapshot(settings) -> dict:
    """What lab hosts of this state dir could leave behind on the machine. A zombie is not: a lab host's
    ``unshare`` whose server was killed is one until the machine's init reaps it, as any orphan."""
    first_uid = settings.uid_base
    mapped = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if l.startswith(("Uid:", "State:")))
        except OSError:
            continue
        if status.get("State", "Z").split()[0] == "Z":
            continue
        if first_uid <= int(status["Uid"].split()[0]) < first_uid + settings.max_lab_hosts * 65536:
            mapped.append(pid)
    state = os.path.join(settings.state_dir, "hosts")
    return {
        "processes": sorted(mapped),
        "mounts": [l for l in open("/proc/self/mountinfo") if settings.state_dir in l],
        "cgroups": sorted(cgroups.existing_ids(records.id_prefix(settings.state_dir))),
        "dirs": sorted(os.listdir(state)),
        "slots": sorted(os.listdir(os.path.join(settings.state_dir, "slots"))),
        "links": subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("\n"),
    }


@pytest.mark.slow
def test_fifty_create_destroy_cycles_leave_nothing(settings):
    before = snapshot(settings)
    for _ in range(50):
        host = create(settings)
        host.destroy()
    assert snapshot(settings) == before


@pytest.mark.slow
def test_reaper_removes_the_lab_host_of_a_killed_server(settings):
    before = snapshot(settings)
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from webapp.config import Settings
        from webapp.labhost.pool import create
        host = create(Settings(state_dir={settings.state_dir!r}, uid_base={settings.uid_base},
                               max_lab_hosts={settings.max_lab_hosts}))
        print(host.id, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    lab_host_id = server.stdout.readline().strip()
    assert lab_host_id
    server.send_signal(signal.SIGKILL)
    server.wait()
    orphans = [m for m in reaper.list_all(settings) if m["id"] == lab_host_id]
    assert orphans and orphans[0]["alive"] and not orphans[0]["owner_alive"]
    assert snapshot(settings) != before
    assert reaper.gc(settings) == [lab_host_id]
    assert snapshot(settings) == before


def test_gc_keeps_lab_hosts_whose_server_runs(lab_host, settings):
    assert lab_host.id not in reaper.gc(settings)
    assert lab_host.health().ok


def test_gc_releases_the_uid_range_a_lab_host_was_made_with(settings):
    """An operator's `gc` may run with other settings than the server's: the
    machine-wide claim of the lab host's uid range still goes with it."""
    import dataclasses
    import shutil

    from webapp.labhost.statedir import prepare_state_dir

    # uid range 30 of root's subordinate ids: no other test's (conftest 32-63, web 16-27)
    own = dataclasses.replace(settings, state_dir=settings.state_dir + "-gc", max_lab_hosts=1,
                              uid_base=200000 + 30 * 65536)
    prepare_state_dir(own)
    shutil.copytree(os.path.join(settings.state_dir, "images"), os.path.join(own.state_dir, "images"),
                    dirs_exist_ok=True)
    try:
        host = create(own)
        claim = os.path.join(records.UIDS, str(host.uid))
        assert os.path.exists(claim)
        host._destroyed = True   # as if its server had died: only the reaper removes it
        assert reaper.gc(dataclasses.replace(own, uid_base=own.uid_base + 65536), everything=True) == [host.id]
        assert not os.path.exists(claim)
    finally:
        reaper.gc(own, everything=True)
        shutil.rmtree(own.state_dir, ignore_errors=True)
