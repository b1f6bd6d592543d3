"""What a reference lab host streams out for the shared store is refused whole if it holds what no lab host's
dockerd writes: a device other than overlay's whiteout, or an id outside the lab host's 0..65535 (a file
overlayfs could copy up as another's). As root: making devices and files of other ids needs it (the fast
tier runs as any user)."""
from __future__ import annotations

import os
import stat

import pytest

from webapp.labhost import layers
from webapp.labhost.base import LabHostError


@pytest.mark.parametrize("make", ["device", "uid", "gid"])
def test_a_store_with_what_a_lab_hosts_dockerd_cannot_write_is_refused(tmp_path, make):
    diff = tmp_path / "overlay2" / ("c1" * 32) / "diff" / "etc"
    diff.mkdir(parents=True)
    (diff / "f").write_text("a layer's file")
    os.mknod(diff / "whiteout", 0o600 | stat.S_IFCHR, 0)   # overlay's whiteout: allowed
    layers.check(str(tmp_path))
    evil = diff / "evil"
    if make == "device":
        os.mknod(evil, 0o600 | stat.S_IFCHR, os.makedev(1, 1))   # /dev/mem
    else:
        evil.write_text("")
        os.chown(evil, 65536 if make == "uid" else 0, 65536 if make == "gid" else 0)
    with pytest.raises(LabHostError, match="evil"):
        layers.check(str(tmp_path))
