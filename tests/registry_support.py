"""A real ``docker-registry`` (Debian's) standing in for Docker Hub on loopback, and test images built in
the session from Debian's busybox-static (deterministic ``docker save`` archives, as
webapp/labhost/image.py builds busybox's), pushed to it through the registry API.

``Upstream.push(name, archive)`` puts an image there; ``build_image(path, greeting, padding)`` writes an
archive whose ``/greeting`` says ``greeting`` (its default command prints it), with ``padding`` bytes of
a second layer to make a big image."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import subprocess
import tarfile
import time

from webapp.images import names
from webapp.images.archive import Archive
from webapp.images.client import Registry

BUSYBOX = "/bin/busybox"
EPOCH = 0


def _tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A layer: (path, data or None for a dir, mode), fixed times, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime, info.mode = EPOCH, mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_image(dest: str, greeting: str, padding: int = 0, tag: str = "labnbtest/hello:1") -> str:
    """A docker-save archive at ``dest`` of an image with busybox as /bin/sh and /bin/cat and a
    ``/greeting``; its command prints it. ``padding`` bytes (seeded, incompressible) in a second layer."""
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    layers = [_tar([("bin", None, 0o755), ("bin/busybox", busybox, 0o755), ("bin/sh", busybox, 0o755),
                    ("bin/cat", busybox, 0o755), ("greeting", greeting.encode() + b"\n", 0o644)])]
    if padding:
        layers.append(_tar([("padding", random.Random(greeting).randbytes(padding), 0o644)]))
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/cat", "/greeting"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    image_id = hashlib.sha256(config).hexdigest()
    files = [(f"{image_id}.json", config)]
    files += [(f"{d[7:]}/layer.tar", layer) for d, layer in zip(diff_ids, layers)]
    files.append(("manifest.json", json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag],
                                                "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids]}]).encode()))
    with tarfile.open(dest, "w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """Debian's docker-registry on 127.0.0.1:<port>, a plain registry with a data dir of its own."""

    def __init__(self, base: str):
        os.makedirs(base, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(base, "config.json")
        with open(config, "w") as f:
            json.dump({"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
                       "storage": {"filesystem": {"rootdirectory": os.path.join(base, "data")}},
                       "http": {"addr": f"127.0.0.1:{self.port}", "secret": "upstream"}}, f)
        self.log = open(os.path.join(base, "upstream.log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.registry = Registry(self.url)
        deadline = time.monotonic() + 30
        while not self.registry.ping():
            assert self.proc.poll() is None and time.monotonic() < deadline, "the stand-in upstream did not start"
            time.sleep(0.1)

    def push(self, name: str, archive_path: str) -> None:
        archive = Archive(archive_path)
        try:
            archive.push(archive.images()[0], names.parse(name), self.registry)
        finally:
            archive.close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
