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
    return write(dest, [_layer(busybox)], TAG, ["sh"], f"labnb: {busybox} from Debian")


def write(dest: str, layers: list[bytes], tag: str, cmd: list[str], created_by: str) -> str:
    """Write a ``docker save`` archive of an image made of ``layers`` (uncompressed layer tars, lowest first)
    to ``dest`` (atomically); return its image id. Deterministic: the same layers give the same id."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({
        "architecture": _arch(), "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": created_by} for _ in layers],
    }, sort_keys=True).encode()
    image_id = hashlib.sha256(config).hexdigest()
    layer_dirs = [d.split(":")[1] for d in diff_ids]
    manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag],
                            "Layers": [f"{d}/layer.tar" for d in layer_dirs]}]).encode()
    tmp = dest + ".tmp"
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    with tarfile.open(tmp, "w") as tar:
        members = [(f"{image_id}.json", config)] + [(f"{d}/layer.tar", layer) for d, layer in zip(layer_dirs, layers)]
        for name, data in members + [("manifest.json", manifest)]:
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
