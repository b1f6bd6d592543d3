"""A hostile archive for ``labnb image import``: a few KiB whose layer is a sparse member of a TiB (GNU
tar's ``--sparse``; ``docker save`` never writes one). Read in place, it was hashed as a TiB of zeros, then
pushed whole into the import store: the machine's disk filled from a 10 KiB file."""
from __future__ import annotations

import json
import os
import subprocess
import threading

from webapp.images import archive


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
