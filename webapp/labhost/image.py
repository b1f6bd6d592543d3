"""The ``busybox`` image, built offline from Debian's busybox-static.

Lab hosts have no registry: the image archive is written directly in the
``docker save`` layout and loaded into each lab host's dockerd. The archive
is deterministic (fixed mtimes, sorted entries), so its image id is the same
on every machine built from the same busybox.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"
TAG = "busybox:latest"
EPOCH = 0

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"


def applet_paths(busybox: str = BUSYBOX) -> list[str]:
    """Install paths of every applet (``bin/sh``, ``sbin/ifconfig`` ...)."""
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    return sorted({p.strip().lstrip("/") for p in out.split() if p.strip()} - {"bin/busybox"})


def _layer(busybox: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=b"", link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, EPOCH, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        paths = applet_paths(busybox)
        dirs = {"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "var", "var/www"}
        dirs |= {os.path.dirname(p) for p in paths}
        for d in sorted(dirs):
            add(d, mode=0o1777 if d == "tmp" else (0o700 if d == "root" else 0o755))
        with open(busybox, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, 0o755, f.read())
        add("etc/passwd", tarfile.REGTYPE, 0o644, _PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, _GROUP.encode())
        for p in paths:
            # hard links to one file, as the official image has them
            add(p, tarfile.LNKTYPE, 0o755, link="bin/busybox")
    return buf.getvalue()


def build(dest: str, busybox: str = BUSYBOX) -> str:
    """Write the image archive to ``dest`` (atomically); return its image id."""
    layer = _layer(busybox)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": _arch(), "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"labnb: {busybox} from Debian"}],
    }, sort_keys=True).encode()
    image_id = hashlib.sha256(config).hexdigest()
    layer_dir = diff_id.split(":")[1]
    manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [TAG],
                            "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
    tmp = dest + ".tmp"
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    with tarfile.open(tmp, "w") as tar:
        for name, data in ((f"{image_id}.json", config), (f"{layer_dir}/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return image_id


def image_id(archive: str) -> str | None:
    """Id of the image in an archive written by :func:`build`, or None if unreadable."""
    try:
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
        return manifest[0]["Config"].removesuffix(".json")
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return None


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
