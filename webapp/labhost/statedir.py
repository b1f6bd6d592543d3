"""The state dir's layout: what lives where, and making it.

    <state_dir>/hosts/<id>/   a lab host's dir: meta.json (records.py), its root and docker data
    <state_dir>/slots/<n>     uid range n reserved (records.py)
    <state_dir>/lib/          the in-lab-host scripts, copied where a lab host can read them
    <state_dir>/images/       the busybox image archive and the docker data dirs seeded with it;
                              bundle-<id>.tar/.json and `bundle`, the current one (layers.py)
    <state_dir>/layers/       root's only: store/<chain id>, image layers shared by every lab host
    <state_dir>/sets/<id>.json a learner's set of lab hosts and its lab network (records.py, labnet.py)
    <state_dir>/registry/     the machine's image cache, its registries' data and sockets (images/cache.py)
    <state_dir>/labnb.sqlite  the run store (Settings.store_file)
"""
from __future__ import annotations

import os

from . import image, records
from .base import LabHostError
from ..config import Settings

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def lib_dir(settings: Settings) -> str:
    return os.path.join(settings.state_dir, "lib")


def image_archive(settings: Settings) -> str:
    return os.path.join(settings.state_dir, "images", "busybox.tar")


def seed_path(settings: Settings, image_id: str) -> str:
    """Where the docker data dir seeded with image ``image_id`` is kept (sandbox.build_seed)."""
    return os.path.join(settings.state_dir, "images", f"docker-data-{image_id[:12]}.tar")


def seed_archive(settings: Settings) -> str | None:
    """The docker data dir seeded with the current busybox image, if one was made."""
    image_id = image.image_id(image_archive(settings))
    path = seed_path(settings, image_id) if image_id else None
    return path if path and os.path.exists(path) else None


def shared_store(settings: Settings) -> str:
    """The image layers every lab host shares (layers.py), bound read-only into each."""
    return os.path.join(settings.state_dir, "layers", "store")


def bundle_link(settings: Settings) -> str:
    """Names the bundle that new lab hosts get (layers.py): ``bundle-<id>``, beside it."""
    return os.path.join(settings.state_dir, "images", "bundle")


def current_bundle(settings: Settings) -> tuple[str, str] | None:
    """The current bundle's id and its per-lab-host archive, if there is one."""
    try:
        name = os.readlink(bundle_link(settings))
    except OSError:
        return None
    archive = os.path.join(settings.state_dir, "images", name + ".tar")
    return (name.removeprefix("bundle-"), archive) if os.path.exists(archive) else None


def prepare_state_dir(settings: Settings) -> None:
    """Lay out the state dir and copy the in-lab-host scripts where a lab host can read them.

    The state dir is 0711: a lab host's mapped root may pass through it to its
    own dir but list nothing (other lab hosts' dirs are 0700 and not its own).
    The scripts are copied because the package may live under a dir, like
    /root, that a lab host cannot read.
    """
    masked = ("/tmp", "/root", "/run", "/var/run", "/etc/docker", "/dev/shm")
    state = os.path.realpath(settings.state_dir)
    if any(state == m or state.startswith(m + "/") for m in masked):
        raise LabHostError(f"the state dir {state} is under a path every lab host hides ({', '.join(masked)})",
                           "Set LABNB_STATE_DIR to a dir elsewhere, e.g. /var/lib/labnb")
    os.makedirs(settings.state_dir, exist_ok=True)
    os.chmod(settings.state_dir, 0o711)
    for sub, mode in ((records.HOSTS, 0o711), (records.SLOTS, 0o700), ("lib", 0o755), ("images", 0o755),
                      ("layers", 0o700)):
        path = os.path.join(settings.state_dir, sub)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    for name in os.listdir(SCRIPTS):
        src, dst = os.path.join(SCRIPTS, name), os.path.join(lib_dir(settings), name)
        if not os.path.isfile(src):   # a __pycache__ left by running a script from the package
            continue
        with open(src, "rb") as f:
            data = f.read()
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            pass
        tmp = dst + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
