"""Image archives as ``labnb image import`` reads them: ``docker save``'s (``manifest.json`` and a dir per
layer) and OCI image layouts (``index.json`` and ``blobs/``, also what newer ``docker save`` writes),
pushed to the cache's import store through the registry API, blob by blob, then the manifest.

The archive is read in place (nothing is extracted): each JSON file within a bound, every blob
found by its exact member name, a regular file (not a sparse one: its size is what is read and pushed),
its digest checked (by the registry for blobs, here for what the manifest names). A bad archive is
refused saying what is wrong with it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tarfile
from typing import Callable

from . import names
from .client import Registry

SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")
MAX_JSON = 4 << 20
MAX_MEMBERS = 100_000
MAX_LAYERS = 256
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"     # docker save's layers are not compressed
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


class ArchiveError(ValueError):
    """An archive that is not an image archive labnb reads: the file, and what is wrong."""


@dataclasses.dataclass
class Blob:
    digest: str
    size: int
    member: tarfile.TarInfo


@dataclasses.dataclass
class Image:
    """One image of an archive: the names it was saved with, its manifest and the blobs it names."""
    names: list[str]
    manifest: bytes
    media_type: str
    blobs: list[Blob]


class Archive:
    def __init__(self, path: str):
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:")
            members = []
            for member in self.tar:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise self.bad(f"more than {MAX_MEMBERS} files")
        except (OSError, tarfile.TarError) as e:
            raise ArchiveError(f"{path}: not a readable tar archive ({e}); `docker save -o FILE.tar NAME` "
                               "writes one") from None
        self.members = {m.name.removeprefix("./"): m for m in members}
        self._digests: dict[str, str] = {}   # a member's, once: manifest.json may name one layer 65,536 times

    def bad(self, what: str) -> ArchiveError:
        return ArchiveError(f"{self.path}: {what}; `docker save -o FILE.tar NAME` writes an archive labnb reads")

    def close(self) -> None:
        self.tar.close()

    def member(self, name: str) -> tarfile.TarInfo:
        member = self.members.get(name)
        if member is None:
            raise self.bad(f"it names {name!r}, which it does not hold")
        if not member.isfile():
            raise self.bad(f"{name!r} is not a regular file")
        if member.issparse():   # a few bytes in the archive that read as a TiB of zeros, pushed whole
            raise self.bad(f"{name!r} is a sparse file ({member.size} bytes, mostly holes)")
        return member

    def read(self, name: str, most: int = MAX_JSON) -> bytes:
        member = self.member(name)
        if member.size > most:
            raise self.bad(f"{name!r} is over {most} bytes")
        return self.tar.extractfile(member).read()

    def json(self, name: str):
        data = self.read(name)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise self.bad(f"{name!r} is not JSON") from None

    def images(self) -> list[Image]:
        if "index.json" in self.members:
            return self._oci()
        if "manifest.json" in self.members:
            return self._docker()
        raise self.bad("it has neither index.json (an OCI layout) nor manifest.json (docker save)")

    def _oci(self) -> list[Image]:
        index = self.json("index.json")
        found = []
        for entry in _list(index, "manifests", self):
            digest, media = _digest(entry, self), entry.get("mediaType")
            saved = _saved_names(entry.get("annotations") or {})
            if media in (OCI_INDEX, DOCKER_LIST):
                entry = self._platform(self.json(_blob_name(digest)), digest)
                digest, media = _digest(entry, self), entry.get("mediaType")
            if media not in (OCI_MANIFEST, DOCKER_MANIFEST):
                raise self.bad(f"manifest {digest} is of type {media!r}, not an image manifest")
            manifest = self.read(_blob_name(digest))
            if "sha256:" + hashlib.sha256(manifest).hexdigest() != digest:
                raise self.bad(f"manifest {digest} does not match its digest")
            found.append(Image(saved, manifest, media, self._blobs(manifest)))
        return found

    def _platform(self, index: dict, digest: str) -> dict:
        """The entry of a multi-platform index for this machine's platform (the one a lab host runs)."""
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        for entry in _list(index, "manifests", self):
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == arch:
                if _blob_name(_digest(entry, self)) in self.members:
                    return entry
        raise self.bad(f"the index {digest} has no image for linux/{arch} in the archive")

    def _blobs(self, manifest_bytes: bytes) -> list[Blob]:
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError:
            raise self.bad("a manifest is not JSON") from None
        config = manifest.get("config") if isinstance(manifest, dict) else None
        layers = _list(manifest, "layers", self)
        if not isinstance(config, dict) or len(layers) > MAX_LAYERS:
            raise self.bad(f"a manifest has no config or more than {MAX_LAYERS} layers")
        blobs = []
        for entry in [config] + layers:
            digest = _digest(entry, self)
            member = self.member(_blob_name(digest))
            if member.size != entry.get("size"):
                raise self.bad(f"blob {digest} is {member.size} bytes, its manifest says {entry.get('size')}")
            blobs.append(Blob(digest, member.size, member))
        return blobs

    def _docker(self) -> list[Image]:
        found = []
        for entry in _list(self.json("manifest.json"), None, self):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise self.bad("manifest.json's entries name no Config")
            layers = entry.get("Layers")
            if not isinstance(layers, list) or len(layers) > MAX_LAYERS or not all(isinstance(x, str) for x in layers):
                raise self.bad(f"manifest.json's Layers is not a list of at most {MAX_LAYERS} files")
            config = self.read(entry["Config"])
            blobs = [Blob("sha256:" + hashlib.sha256(config).hexdigest(), len(config), self.member(entry["Config"]))]
            for layer in layers:
                member = self.member(layer)
                blobs.append(Blob(self._digest_of(member), member.size, member))
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "size": blobs[0].size, "digest": blobs[0].digest},
                "layers": [{"mediaType": DOCKER_LAYER, "size": b.size, "digest": b.digest} for b in blobs[1:]],
            }, indent=3).encode()
            tags = entry.get("RepoTags") or []
            found.append(Image([t for t in tags if isinstance(t, str)], manifest, DOCKER_MANIFEST, blobs))
        return found

    def _digest_of(self, member: tarfile.TarInfo) -> str:
        if member.name not in self._digests:
            self._digests[member.name] = self._sha256(member)
        return self._digests[member.name]

    def _sha256(self, member: tarfile.TarInfo) -> str:
        digest = hashlib.sha256()
        stream = self.tar.extractfile(member)
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
        return "sha256:" + digest.hexdigest()

    def push(self, image: Image, ref: names.Ref, registry: Registry, say: Callable[[str], None] = lambda _: None):
        """Every blob of ``image``, then its manifest under ``ref``'s tag, to ``registry``."""
        for blob in image.blobs:
            say(f"  blob {blob.digest[7:19]} ({blob.size >> 10} KiB)")
            registry.push_blob(ref.path, blob.digest, blob.size, self.tar.extractfile(blob.member))
        registry.push_manifest(ref.path, ref.tag or ref.digest, image.media_type, image.manifest)


def _list(obj, key: str | None, archive: Archive) -> list:
    value = obj.get(key) if key and isinstance(obj, dict) else obj
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise archive.bad(f"{key or 'manifest.json'} is not a list of at most {MAX_LAYERS} entries")
    return value


def _digest(entry, archive: Archive) -> str:
    digest = entry.get("digest") if isinstance(entry, dict) else None
    if not isinstance(digest, str) or not SHA256.match(digest):
        raise archive.bad(f"an entry's digest {str(digest)[:80]!r} is not sha256:<64 hex>")
    return digest


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _saved_names(annotations: dict) -> list[str]:
    """The name an OCI layout's entry was saved as: containerd's full name, else a full ref.name."""
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if isinstance(value, str):
            try:
                names.parse(value)
            except ValueError:
                continue   # ref.name is often a tag alone: the image is then named with --name
            if "/" in value or ":" in value:
                return [value]
    return []
