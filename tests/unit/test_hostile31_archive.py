"""A hostile archive for ``labnb image import``: a few KiB whose layer is a sparse member of a TiB (GNU
tar's ``--sparse``; ``docker save`` never writes one). Read in place, it was hashed as a TiB of zeros, then
pushed whole into the import store: the machine's disk filled from a 10 KiB file."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading

from webapp.images import archive


def write_tar(path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_a_sparse_layer_is_refused_at_once(tmp_path):
    config = b'{"architecture": "amd64", "os": "linux"}'
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "manifest.json").write_text(json.dumps([{"Config": "config.json", "RepoTags": ["evil:1"],
                                                         "Layers": ["layer.tar"]}]))
    with open(tmp_path / "layer.tar", "wb") as f:
        f.truncate(1 << 40)
    path = str(tmp_path / "evil.tar")
    subprocess.run(["tar", "--sparse", "-C", str(tmp_path), "-cf", path, "manifest.json", "config.json", "layer.tar"],
                   check=True)
    assert os.path.getsize(path) < 1 << 20
    raised: list = []

    def read():
        try:
            archive.Archive(path).images()
            raised.append(None)
        except archive.ArchiveError as e:
            raised.append(e)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(20)
    assert raised, "the archive's sparse layer is still being read"
    assert raised[0] is not None and "sparse" in str(raised[0])


def test_a_layer_named_over_and_over_is_hashed_once(tmp_path, monkeypatch):
    """manifest.json's 256 entries of 256 layers each, all one member: a 1 GiB layer was hashed 65,536
    times (64 TiB read) before anything was pushed."""
    config = b'{"architecture": "amd64", "os": "linux"}'
    entries = [{"Config": "config.json", "RepoTags": [f"evil:{i}"], "Layers": ["layer.tar"] * archive.MAX_LAYERS}
               for i in range(archive.MAX_LAYERS)]
    path = write_tar(tmp_path / "evil.tar", {"manifest.json": json.dumps(entries).encode(), "config.json": config,
                                             "layer.tar": b"x" * 1024})
    hashed = []
    real = archive.Archive._sha256
    monkeypatch.setattr(archive.Archive, "_sha256", lambda self, member: hashed.append(member.name) or real(self, member))
    images = archive.Archive(path).images()
    assert len(images) == archive.MAX_LAYERS and len(hashed) == 1
