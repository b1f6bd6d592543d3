"""Image archives are read in place and refused, saying what is wrong, when they are not what
``docker save`` or an OCI layout writes; the README's default wants no cache; ``labnb image pull`` through a
cache that does not answer says what to check."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from webapp.config import Settings
from webapp.images import archive, cache
from webapp.labhost import image


def write(path, files: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return str(path)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_docker_save_of_busybox_reads_as_one_named_image(tmp_path):
    path = str(tmp_path / "busybox.tar")
    image.build(path)
    a = archive.Archive(path)
    [found] = a.images()
    assert found.names == ["busybox:latest"]
    manifest = json.loads(found.manifest)
    assert [b.digest for b in found.blobs] == [manifest["config"]["digest"]] + [x["digest"] for x in manifest["layers"]]
    assert manifest["layers"][0]["mediaType"] == archive.DOCKER_LAYER


def test_an_oci_layout_reads_with_its_name(tmp_path):
    config, layer = b'{"rootfs": {}}', b"layer bytes"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": archive.OCI_MANIFEST,
                           "config": {"mediaType": "x", "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "y", "digest": sha(layer), "size": len(layer)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": archive.OCI_MANIFEST, "digest": sha(manifest),
                                                "size": len(manifest), "annotations": {
                                                    "io.containerd.image.name": "docker.io/library/nginx:1.27"}}]}
    path = write(tmp_path / "oci.tar", {"index.json": json.dumps(index).encode(), "oci-layout": b"{}",
                                        **{f"blobs/sha256/{sha(d)[7:]}": d for d in (config, layer, manifest)}})
    [found] = archive.Archive(path).images()
    assert found.names == ["docker.io/library/nginx:1.27"] and found.manifest == manifest


@pytest.mark.parametrize("files, links, says", [
    ({}, None, "neither index.json"),
    ({"manifest.json": b"not json"}, None, "not JSON"),
    ({"manifest.json": b'{"a": 1}'}, None, "not a list"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": ["l.tar"]}]'}, None, "does not hold"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": ["l.tar"]}]', "c.json": b"{}"}, {"l.tar": "/etc/shadow"},
     "not a regular file"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": ' + json.dumps(["l"] * 300).encode() + b"}]"}, None,
     "at most"),
    ({"index.json": b'{"manifests": [{"digest": "sha256:../../x"}]}'}, None, "not sha256"),
    ({"manifest.json": b" " * (archive.MAX_JSON + 1)}, None, "over"),
])
def test_a_bad_archive_is_refused_saying_what_is_wrong(tmp_path, files, links, says):
    path = write(tmp_path / "bad.tar", files, links)
    with pytest.raises(archive.ArchiveError, match=says):
        archive.Archive(path).images()


def test_a_file_that_is_no_tar_is_refused(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(archive.ArchiveError, match="not a readable tar archive"):
        archive.Archive(str(path))


def test_the_readme_default_wants_no_cache():
    class Lab:
        images = []
    assert not cache.wanted(Settings(), [Lab()])
    Lab.images = ["nginx:1.27"]
    assert cache.wanted(Settings(), [Lab()])
    assert cache.wanted(Settings(image_cache="local"), [])


def test_a_pull_through_a_cache_that_does_not_answer_says_what_to_check(tmp_path):
    """`labnb image pull` when the cache (or its upstream) does not answer: an error the command prints,
    naming the setting to check, not a traceback."""
    from webapp.images import admin
    from webapp.images.client import Registry
    from webapp.labhost.errors import LabHostError

    gone = cache.Cache(Registry(f"unix:{tmp_path}/store.sock"), Registry(f"unix:{tmp_path}/cache.sock"), None)
    with pytest.raises(LabHostError, match="nginx:1.27 through the image cache failed.*LABNB_IMAGE_UPSTREAM"):
        admin.pull(gone, "nginx:1.27", lambda said: None)
