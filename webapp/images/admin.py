"""What the operator does to the machine's cache (``labnb image import|pull|ls``)."""
from __future__ import annotations

import json
import os
from typing import Callable

from ..labhost.errors import LabHostError
from . import names
from .archive import DOCKER_LIST, MAX_LAYERS, OCI_INDEX, SHA256, Archive, ArchiveError
from .cache import Cache
from .client import Registry, RegistryError

Say = Callable[[str], None]


def import_archive(cache: Cache, path: str, name: str | None, say: Say) -> list[str]:
    """Push every image of the archive at ``path`` to the import store, under the name it was saved with
    (or ``name``, for an archive of one image); the names, as labs write them."""
    archive = Archive(path)
    try:
        images = archive.images()
        if not images:
            raise ArchiveError(f"{path}: it holds no image; `docker save -o FILE.tar NAME` writes one")
        if name and len(images) > 1:
            raise ArchiveError(f"{path}: it holds {len(images)} images; --name names an archive of one")
        done = []
        for image in images:
            wanted = [name] if name else image.names
            if not wanted:
                raise ArchiveError(f"{path}: an image in it has no name; name it with --name NAME")
            for text in wanted:
                ref = names.parse(text)
                if not ref.tag:
                    raise ArchiveError(f"{text}: an imported image is named with a tag (NAME:TAG), not a digest")
                say(f"importing {ref} as {ref.path}:{ref.tag}")
                archive.push(image, ref, cache.store, say)
                done.append(str(ref))
        return done
    except RegistryError as e:
        raise LabHostError(f"the image store refused {path}: {e}",
                           "A registry the operator runs (LABNB_IMAGE_CACHE) must take pushes") from None
    finally:
        archive.close()


def pull(cache: Cache, text: str, say: Say) -> str:
    """Fill the pull-through cache with image ``text`` from the upstream, ahead of class: its manifest for
    this machine's platform and every blob, read through the cache (which keeps them)."""
    ref = names.parse(text)
    if not ref.hub:
        raise LabHostError(f"{ref} is not a Docker Hub name: the pull-through cache fills only from "
                           "LABNB_IMAGE_UPSTREAM", f"Import it: docker save -o FILE.tar {ref}; labnb image import FILE.tar")
    trouble = cache.local.cache_trouble if cache.local else ""
    if trouble:
        raise LabHostError(f"the pull-through cache cannot pull: {trouble}", "Check LABNB_IMAGE_UPSTREAM")
    try:
        _pull(cache.cache, ref, say)
    except OSError as e:   # a RegistryError, or a read cut short: the cache or its upstream stopped answering
        said = f"{cache.local.dir}/cache.log" if cache.local else "the log of the registry you run"
        raise LabHostError(f"pulling {ref} through the image cache failed: {e}",
                           f"Check that this machine reaches LABNB_IMAGE_UPSTREAM, and see {said}") from None
    return str(ref)


def _pull(registry: Registry, ref: names.Ref, say: Say) -> None:
    manifest, media = _manifest(registry, ref.path, ref.reference, ref)
    if media in (OCI_INDEX, DOCKER_LIST):
        manifest, media = _manifest(registry, ref.path, _digest(_platform(manifest, ref), ref), ref)
    for blob in _blobs(manifest, ref):
        say(f"  blob {blob['digest'][7:19]} ({blob['size'] >> 10} KiB)")
        _read_through(registry, ref.path, blob["digest"])


def _blobs(manifest, ref: names.Ref) -> list[dict]:
    """The config and layers an image manifest names, each checked (what the upstream sends is hostile:
    a "digest" that is a path would be sent on as one), or LabHostError."""
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise LabHostError(f"the manifest of {ref} from the upstream is not an image manifest of at most "
                           f"{MAX_LAYERS} layers", "Check LABNB_IMAGE_UPSTREAM and the name")
    blobs = [manifest.get("config")] + layers
    for blob in blobs:
        _digest(blob, ref)
        if not isinstance(blob.get("size"), int) or blob["size"] < 0:
            raise LabHostError(f"the manifest of {ref} from the upstream names a blob of no size",
                               "Check LABNB_IMAGE_UPSTREAM and the name")
    return blobs


def _digest(entry, ref: names.Ref) -> str:
    digest = entry.get("digest") if isinstance(entry, dict) else None
    if not isinstance(digest, str) or not SHA256.match(digest):
        raise LabHostError(f"the manifest of {ref} from the upstream names {str(digest)[:80]!r}, not a "
                           "sha256 digest", "Check LABNB_IMAGE_UPSTREAM and the name")
    return digest


def _manifest(registry: Registry, path: str, reference: str, ref: names.Ref) -> tuple[dict, str]:
    status, headers, data = registry.manifest(path, reference)
    if status != 200:
        raise LabHostError(f"the upstream (LABNB_IMAGE_UPSTREAM) has no image {ref}: {status} "
                           f"{data[:200].decode(errors='replace')}", "Check the name and tag")
    try:
        return json.loads(data), headers.get("content-type", "").split(";")[0]
    except ValueError:
        raise LabHostError(f"the manifest of {ref} is not JSON",
                           "Check that LABNB_IMAGE_UPSTREAM is a registry's URL") from None


def _platform(index, ref: names.Ref) -> dict:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    entries = index.get("manifests") if isinstance(index, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        platform = (entry.get("platform") if isinstance(entry, dict) else None) or {}
        if not isinstance(platform, dict):
            continue
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return entry
    raise LabHostError(f"image {ref} has no linux/{arch} variant",
                       f"Use a tag built for linux/{arch}, or import an archive of one (labnb image import)")


def _read_through(registry: Registry, path: str, digest: str) -> None:
    resp = registry.blob(path, digest)
    try:
        while resp.read(1 << 20):
            pass
    finally:
        resp.close()


def listing(cache: Cache) -> list[tuple[str, str, str]]:
    """(where, repository, tag) for every image the store and the cache hold."""
    rows = []
    for where, registry in (("imported", cache.store), ("cached", cache.cache)):
        if where == "cached" and registry.address == cache.store.address:
            break
        try:
            for repository in registry.repositories():
                for tag in registry.tags(repository):
                    rows.append((where, repository, tag))
        except RegistryError as e:
            rows.append((where, f"(unreadable: {e})", ""))
    return rows
