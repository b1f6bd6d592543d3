"""The kernel's per-user counts (ucounts) are each lab host's own.

The kernel charges what a process takes of a per-user count (inotify
instances, POSIX message queue bytes, pending signals, locked shared memory,
namespaces...) to its uid in its user namespace, and again, level by level,
to the uid that created each user namespace above it. A lab host whose user
namespace the machine's root creates charges root: one lab host that takes
every inotify instance or all the message queue bytes leaves root on the
machine, and every other lab host, with none. Each test takes a count in one
lab host, holds it, and checks that root on the machine and another lab host
can still take one (docs/security.md, "Kernel counts").
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys

import pytest

from conftest import Output
from test_security import ATTACKS, attack, ok
from web_support import wait_for
from webapp import executor

NS_GET_OWNER_UID = 0xB704        # _IO(0xb7, 0x4): the uid that created a user namespace
HOG = ATTACKS / "ucount_hog.py"
MQUEUE_BYTES = 819200            # Linux's default RLIMIT_MSGQUEUE: what one user's queues may hold
QUEUE_BYTES = 10 * 8192          # what one of the hog's queues holds (the kernel charges a little more)
MEMLOCK_BYTES = 8 << 20          # Linux's default RLIMIT_MEMLOCK since 5.16: what each uid may lock
PAGE = os.sysconf("SC_PAGE_SIZE")
CEILING = 1 << 20                # the hog stops here: far past every bound, and past the machine root's own


def test_lab_hosts_user_namespace_is_owned_by_its_own_range(lab_host):
    """Who created the user namespace is where its counts are charged: the first uid of the lab host's range."""
    fd = lab_host.namespace_fd("user")
    try:
        owner = struct.unpack("I", fcntl.ioctl(fd, NS_GET_OWNER_UID, bytes(4)))[0]
    finally:
        os.close(fd)
    assert owner == lab_host.uid, f"lab host {lab_host.id}'s user namespace is owned by uid {owner}, " \
                                  f"not by its own range's {lab_host.uid}"


def _bound(kind: str, settings) -> int:
    """The most of ``kind`` one lab host may hold, in the hog's units."""
    if kind == "inotify":
        with open("/proc/sys/fs/inotify/max_user_instances") as f:
            return int(f.read())
    # memlock: a segment of MEMLOCK_BYTES for each uid; all the lab host's uids together may lock its
    # creator's RLIMIT_MEMLOCK read as pages (the kernel keeps that bound in bytes, the count in pages)
    return {"mqueue": MQUEUE_BYTES // QUEUE_BYTES, "sigpending": settings.pids,
            "memlock": MEMLOCK_BYTES // (MEMLOCK_BYTES // PAGE)}[kind]


def _probe_on_machine(kind: str) -> str:
    r = subprocess.run([sys.executable, "-I", "-S", str(HOG), kind, "probe"], capture_output=True, text=True,
                       timeout=30)
    return r.stdout.strip() or r.stderr.strip()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["inotify", "mqueue", "sigpending", "memlock"])
def test_a_lab_host_holding_a_per_user_count_leaves_the_machine_and_others_theirs(settings, fresh_lab_host,
                                                                                 lab_host, kind):
    host, other = fresh_lab_host, lab_host
    bound = _bound(kind, settings)
    out = Output()
    # generous deadlines, not measures: the memlock hog forks 4,096 times, minutes in an emulated VM
    hog = executor.start(host, attack("ucount_hog.py", kind, "hold", CEILING, 120), on_output=out,
                         timeout=900, window=None)
    try:
        line = wait_for(lambda: re.search(r"HOG (\{.*\})", out.text) or (not hog.running and "ended"), 720,
                        what="the hog's report")
        assert line != "ended", f"the {kind} hog ended without a report: {hog.outcome}\n{out.text[-2000:]}"
        report = json.loads(line.group(1))
        # while the hog holds all it could take
        on_machine = _probe_on_machine(kind)
        in_other = ok(other, attack("ucount_hog.py", kind, "probe")).strip()
    finally:
        hog.stop(grace=1)
    print(f"{kind}: the lab host took {report}; root on the machine: {on_machine}; another lab host: {in_other}")
    assert report["held"] >= 1 and report["stopped_by"] != "ceiling", \
        f"the {kind} hog did not run into the kernel's bound: {report}"
    assert on_machine == "PROBE ok", f"root on the machine could not take {kind} while lab host {host.id} " \
                                     f"held {report}: {on_machine}"
    assert in_other == "PROBE ok", f"lab host {other.id} could not take {kind} while lab host {host.id} " \
                                   f"held {report}: {in_other}"
    assert report["held"] <= bound, f"lab host {host.id} held {report['held']} of {kind}, past its bound {bound}"
