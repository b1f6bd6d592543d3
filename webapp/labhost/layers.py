"""One copy on disk: image layers that every sandbox lab host shares.

A *bundle* is a set of images made once for the machine: a reference lab host
loads them (``fill``), its dockerd stops, and its image store is streamed out
as a tar. Each layer's files (``overlay2/<cache id>/diff``) move to the shared
store, ``<state_dir>/layers/store/<chain id>`` (root's only; the files keep the
ids they had inside, 0..65535), and the rest, a few hundred kilobytes of
metadata in which each ``diff`` is a symlink to SHARED_LAYERS, becomes the
bundle's archive, which ``labroot.py finish`` unpacks into each new lab host's
docker data dir as it does the busybox seed. ``labroot.py build`` binds the
store at SHARED_LAYERS, read-only and idmapped to the lab host's ids, before
the lab host's user namespace exists, so the bind is locked. Its dockerd then
uses the one copy as lower layers: a learner's writes are copied up into the
lab host's own tmpfs, and ``docker rmi`` removes only its own metadata.

The store is keyed by chain id (the layer and all below it), so two bundles
with the same base layers share them too. A bundle stays as long as it is
current or a lab host's record names it (``collect``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from . import records, statedir
from .base import LabHost, LabHostError
from .sandbox import SandboxLabHost
from ..config import Settings

SHARED_LAYERS = "/var/lib/labnb-layers"   # as labroot.py: where a lab host sees the store
LAYERDB = "image/overlay2/layerdb/sha256"
STREAM_TIMEOUT = 600                       # seconds to stream a reference lab host's image store out


@dataclass(frozen=True)
class Bundle:
    id: str
    archive: str         # the per-lab-host metadata, unpacked into its docker data dir
    images: list[str]    # the names it holds, as the labs name them (busybox:latest too)
    chains: list[str]    # chain ids of its layers, each a dir of the shared store


def current(settings: Settings) -> Bundle | None:
    """The bundle new lab hosts get, or None (they get the busybox seed)."""
    found = statedir.current_bundle(settings)
    return _read(settings, found[0]) if found else None


def ensure(settings: Settings, images: list[str], fill: Callable[[LabHost], None]) -> Bundle:
    """The current bundle if it holds every one of ``images``, else a new one that holds them and what the
    current one held. Called before the warm pool fills, so that the pool's lab hosts have a room's images."""
    have = current(settings)
    if have and set(images) <= set(have.images):
        return have
    return build(settings, sorted(set(images) | set(have.images if have else [])), fill)


def build(settings: Settings, images: list[str], fill: Callable[[LabHost], None]) -> Bundle:
    """Make a bundle of ``images`` (and busybox) and make it current: lab hosts made from now on get it.

    ``fill(host)`` puts the images into the reference lab host's dockerd under
    these names. One build at a time per state dir (a lock).
    """
    statedir.prepare_state_dir(settings)
    with _locked(settings) as work:
        staging = os.path.join(work, secrets.token_hex(6))
        os.mkdir(staging, 0o700)
        try:
            return _build(settings, images, fill, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            _collect(settings)   # also the layers of a bundle that failed


@contextlib.contextmanager
def _locked(settings: Settings):
    """The layers' work dir, held against other builds and collections (a layer just moved to the store
    belongs to no bundle until its bundle is written)."""
    work = os.path.join(settings.state_dir, "layers", "work")
    os.makedirs(work, mode=0o700, exist_ok=True)
    with open(os.path.join(work, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield work


def _build(settings: Settings, images: list[str], fill: Callable[[LabHost], None], staging: str) -> Bundle:
    host = SandboxLabHost(settings, seeded=False)   # busybox loaded, every layer in its own tmpfs
    host.start()
    try:
        host.wait_ready()
        fill(host)
        names = ["busybox:latest", *images]
        _check_names(host, names)
        _stream_out(settings, host, staging)
    finally:
        host.destroy()
    check(staging)
    chains = share(settings, staging)
    bundle_id = secrets.token_hex(6)
    images_dir = os.path.join(settings.state_dir, "images")
    archive = os.path.join(images_dir, f"bundle-{bundle_id}.tar")
    subprocess.run(["tar", "-C", staging, "--numeric-owner", "-cf", archive + ".tmp", "image", "overlay2"],
                   check=True, capture_output=True)
    os.chmod(archive + ".tmp", 0o644)   # unpacked by each lab host's root, in finish
    os.replace(archive + ".tmp", archive)
    meta = {"images": sorted(set(names)), "chains": chains, "created": time.time()}
    with open(os.path.join(images_dir, f"bundle-{bundle_id}.json.tmp"), "w") as f:
        json.dump(meta, f)
    os.replace(os.path.join(images_dir, f"bundle-{bundle_id}.json.tmp"),
               os.path.join(images_dir, f"bundle-{bundle_id}.json"))
    _try(settings, bundle_id, archive, names)
    link = statedir.bundle_link(settings)
    if os.path.lexists(link + ".tmp"):
        os.unlink(link + ".tmp")
    os.symlink(f"bundle-{bundle_id}", link + ".tmp")
    replaced = current(settings)
    os.replace(link + ".tmp", link)   # the switch: atomic
    if replaced:   # when it stopped being current: a lab host that read it just before has its record soon
        os.utime(os.path.join(images_dir, f"bundle-{replaced.id}.json"))
    return Bundle(bundle_id, archive, meta["images"], chains)


def _try(settings: Settings, bundle_id: str, archive: str, names: list[str]) -> None:
    """A lab host made with the new bundle runs busybox and has every image, or the bundle is not made
    current: a machine whose kernel or state dir's file system cannot give lab hosts the shared layers
    keeps the busybox seed, and the operator hears why."""
    host = SandboxLabHost(settings, bundle=(bundle_id, archive))
    try:
        host.start()
        host.wait_ready()
        _check_names(host, names)
        rc, out, err = host.capture(["docker", "run", "--rm", "busybox", "true"], timeout=120)
        if rc != 0:
            raise LabHostError(f"docker run: {(out + err).decode(errors='replace')[-500:]}")
    except LabHostError as e:
        for ext in (".tar", ".json"):
            os.unlink(os.path.join(settings.state_dir, "images", f"bundle-{bundle_id}{ext}"))
        raise LabHostError(f"a lab host cannot use the shared image layers in {statedir.shared_store(settings)}: "
                           f"{e.what}", "Shared layers need Linux 5.19 or later and a state dir on a file system "
                           "with idmapped mounts (ext4, xfs, btrfs, tmpfs); `labnb doctor --start` checks "
                           "lab hosts") from None
    finally:
        host.destroy()


def _check_names(host: LabHost, names: list[str]) -> None:
    client = host.docker()
    try:
        tags = {t for image in client.images.list() for t in image.tags + image.attrs.get("RepoDigests", [])}
    finally:
        client.close()
    missing = [n for n in names if not {n, n + ":latest", _short(n), _short(n) + ":latest"} & tags]
    if missing:
        raise LabHostError(f"the reference lab host for shared image layers lacks {', '.join(missing)}",
                           "Make the image available (`labnb image import FILE` or `labnb image pull NAME`)")


def _stream_out(settings: Settings, host: SandboxLabHost, staging: str) -> None:
    """Stop the reference lab host's dockerd and unpack its image store into ``staging`` as the machine's root,
    ids as they are inside (0..65535), whiteouts (char 0/0) and overlay xattrs kept. Bounded by the lab
    host's disk: its store cannot be larger. GNU tar refuses members outside ``staging``."""
    data = os.path.join(host.dir, "docker")
    script = ('kill "$(cat /run/docker.pid)"; while [ -e /run/docker.pid ]; do sleep 0.05; done; '
              f"tar -C {data} --xattrs --xattrs-include='*' -cf - image overlay2")
    sent = 0
    with tempfile.TemporaryFile() as unpack_err:   # a file, not a pipe: tar never waits on it
        unpack = subprocess.Popen(["tar", "-C", staging, "--numeric-owner", "--same-owner", "-p", "--xattrs",
                                   "--xattrs-include=*", "-xf", "-"], stdin=subprocess.PIPE, stderr=unpack_err)

        def save(chunk: bytes) -> None:
            nonlocal sent
            sent += len(chunk)
            if sent > (settings.disk_mb << 20) + (1 << 20):
                raise LabHostError(f"the reference lab host's image store is larger than "
                                   f"LABNB_DISK_MB={settings.disk_mb}", "Raise LABNB_DISK_MB: the images must fit")
            try:
                unpack.stdin.write(chunk)
            except BrokenPipeError:
                raise LabHostError(f"tar stopped unpacking into {staging}", "Check the space there") from None

        try:
            rc, _out, err = host.capture(["/bin/sh", "-c", script], timeout=STREAM_TIMEOUT, stdout=save)
        finally:
            try:
                unpack.stdin.close()
            except BrokenPipeError:
                pass
            unpack.wait()
        unpack_err.seek(0)
        err += unpack_err.read(2000)
    if rc != 0 or unpack.returncode != 0:
        raise LabHostError(f"cannot move the image store of a reference lab host out to {staging}: "
                           f"{err.decode(errors='replace')[-500:]}",
                           f"Check the space in {settings.state_dir} and LABNB_DISK_MB (the images must fit)")


def check(staging: str) -> None:
    """Refuse what a lab host's image store cannot hold but a hostile stream could: ids outside the lab
    host's 0..65535 (shown unmapped inside, and overlayfs must never copy such a file up as another's) and
    devices other than overlay whiteouts (char 0/0). The store is root's only and bound nosuid, nodev."""
    for root, dirs, files in os.walk(staging):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            device = stat.S_ISBLK(st.st_mode) or (stat.S_ISCHR(st.st_mode) and st.st_rdev != 0)
            if st.st_uid >= records.RANGE or st.st_gid >= records.RANGE or device:
                raise LabHostError(f"a reference lab host's image store holds {os.path.join(root, name)} "
                                   f"(uid {st.st_uid}, gid {st.st_gid}, mode {st.st_mode:o}), which no image "
                                   "loaded by dockerd in a lab host has", "Build the bundle again")


def share(settings: Settings, staging: str) -> list[str]:
    """Move each layer's files from ``staging`` to the shared store (unless a bundle already put the same
    chain there) and leave a symlink where they were; return the chain ids."""
    store = statedir.shared_store(settings)
    os.makedirs(store, mode=0o700, exist_ok=True)
    chains = []
    layerdb = os.path.join(staging, LAYERDB)
    for chain in sorted(os.listdir(layerdb)):
        with open(os.path.join(layerdb, chain, "cache-id")) as f:
            cache_id = f.read().strip()
        diff = os.path.join(staging, "overlay2", _plain(cache_id), "diff")
        target = os.path.join(store, _plain(chain))
        if os.path.isdir(target):
            shutil.rmtree(diff)
        else:
            os.rename(diff, target)
        os.symlink(f"{SHARED_LAYERS}/{_plain(chain)}", diff)
        chains.append(chain)
    return chains


def collect(settings: Settings) -> list[str]:
    """Remove the bundles that are neither current nor named by a lab host's record, and the store's layers
    that no kept bundle uses; return the ids of the bundles removed. ``labnb lab-hosts gc`` runs it."""
    if not os.path.isdir(os.path.join(settings.state_dir, "layers")):
        return []
    with _locked(settings):
        return _collect(settings)


def _collect(settings: Settings) -> list[str]:
    images_dir = os.path.join(settings.state_dir, "images")
    have = current(settings)
    keep = {have.id} if have else set()
    keep |= {r["bundle"] for r in records.read_all(settings.state_dir) if r.get("bundle")}
    removed, chains = [], set()
    for name in sorted(os.listdir(images_dir)):
        if not (name.startswith("bundle-") and name.endswith(".json")):
            continue
        bundle_id = name.removeprefix("bundle-").removesuffix(".json")
        if bundle_id in keep or _replaced_within(settings, os.path.join(images_dir, name)):
            bundle = _read(settings, bundle_id)
            chains |= set(bundle.chains) if bundle else set()
            continue
        for ext in (".tar", ".json"):
            try:
                os.unlink(os.path.join(images_dir, f"bundle-{bundle_id}{ext}"))
            except FileNotFoundError:
                pass
        removed.append(bundle_id)
    store = statedir.shared_store(settings)
    if os.path.isdir(store):
        for name in os.listdir(store):
            if name not in {_plain(c) for c in chains}:
                shutil.rmtree(os.path.join(store, name), ignore_errors=True)
    return removed


def _replaced_within(settings: Settings, meta: str) -> bool:
    """Whether a bundle stopped being current less than LABNB_READY_TIMEOUT ago: a lab host that read it as
    current then may not have written its record yet (it does at once, but is not under the lock)."""
    try:
        return time.time() - os.stat(meta).st_mtime < settings.ready_timeout
    except FileNotFoundError:
        return False


def _short(name: str) -> str:
    """A name as dockerd lists it: Docker Hub's host and ``library/`` left out."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        name = name.removeprefix(prefix)
    return name.removeprefix("library/") if name.count("/") == 1 else name


def _read(settings: Settings, bundle_id: str) -> Bundle | None:
    base = os.path.join(settings.state_dir, "images", f"bundle-{bundle_id}")
    try:
        with open(base + ".json") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return Bundle(bundle_id, base + ".tar", list(meta["images"]), list(meta["chains"]))


def _plain(digest: str) -> str:
    """A digest's hex part as a file name; anything else is refused (the names come from a lab host)."""
    hexpart = digest.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise LabHostError(f"a reference lab host's image store names a layer {digest[:80]!r}",
                           "Build the bundle again; its image store is not dockerd's")
    return hexpart
