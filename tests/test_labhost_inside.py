"""What the server opens inside a lab host stays the lab host's (webapp/labhost/inside.py), against the lab
host's root, who may mount: the machine's /etc is bound read-only into every lab host, and a bind mount needs
no right to read what it binds. A real lab host; its root makes the binds and symlinks, the server opens."""
from __future__ import annotations

import os

import pytest

from conftest import sh
from webapp.labhost import inside

SHADOW = "/etc/shadow"


def _in(lab_host, command: str) -> None:
    outcome, out = sh(lab_host, command)
    assert outcome.ok, out


def test_the_dockerd_log_is_not_read_through_a_bind_of_the_machines_shadow(lab_host):
    """``mount --bind /etc/shadow /run/labnb/dockerd.log`` in the lab host: the server read the machine's
    /etc/shadow as the lab host's dockerd log (openat2's RESOLVE_IN_ROOT does not stop at mount points), and
    would have shown it in an error. A file on another mount than the lab host's /run is refused now."""
    with open(SHADOW, "rb") as f:
        secret = f.read()[-1500:].strip()
    assert secret
    _in(lab_host, f"mount --bind {SHADOW} /run/labnb/dockerd.log")
    try:
        log = lab_host._dockerd_log()
        leaked = secret.decode(errors="replace") in log   # never shown: a failure must not print the machine's file
        assert not leaked, "the server read the machine's /etc/shadow as the lab host's dockerd log"
        assert "unreadable" in log
        with pytest.raises(PermissionError):
            os.close(lab_host.open_inside("/run/labnb/dockerd.log", os.O_RDONLY))
    finally:
        _in(lab_host, "umount /run/labnb/dockerd.log")


@pytest.mark.parametrize("plant, path, flags", [
    # a directory of the machine's, listed as the lab host's named network namespaces
    ("mount --rbind /etc /run/netns", "/run/netns", os.O_RDONLY | os.O_DIRECTORY),
    # a symlink to a directory of the machine's, on the way (absolute, or by ..)
    ("ln -s /etc /run/machine", "/run/machine/shadow", os.O_RDONLY),
    ("ln -s ../etc /run/machine", "/run/machine/shadow", os.O_RDONLY),
    # the machine's file, where a namespace file is looked for (opened O_PATH, then read through /proc/self/fd)
    ("touch /run/netns/fake && mount --bind /etc/shadow /run/netns/fake", "/run/netns/fake", inside.O_PATH),
], ids=["machine-dir-bound", "absolute-symlink", "relative-symlink", "machine-file-as-namespace"])
def test_no_open_leads_to_a_file_of_the_machines(lab_host, plant, path, flags):
    """Each found the machine's file or directory; each is refused now, whatever the flags."""
    _in(lab_host, plant)
    try:
        with pytest.raises(PermissionError):
            os.close(lab_host.open_inside(path, flags))
    finally:
        _in(lab_host, "umount /run/netns/fake 2>/dev/null; umount -l /run/netns 2>/dev/null; "
                      "rm -f /run/machine /run/netns/fake; true")


def test_the_lab_hosts_own_files_sockets_and_namespaces_still_open(lab_host):
    """What the server opens in a lab host for real: its dockerd log and socket, and the namespaces ``ip netns``
    and dockerd bind-mount (a mount point by design, taken O_PATH only if it is a namespace)."""
    assert "unreadable" not in lab_host._dockerd_log()
    client = lab_host.docker()
    try:
        assert client.ping()
    finally:
        client.close()
    _in(lab_host, "ip netns add inside-test")
    try:
        fd = lab_host.open_inside("/run/netns/inside-test", inside.O_PATH)
        try:
            assert os.fstat(fd).st_dev == inside.NSFS
        finally:
            os.close(fd)
        with pytest.raises(PermissionError):   # a namespace, but not O_PATH: the caller would use it as a file
            os.close(lab_host.open_inside("/run/netns/inside-test", os.O_RDONLY))
    finally:
        _in(lab_host, "ip netns delete inside-test")
