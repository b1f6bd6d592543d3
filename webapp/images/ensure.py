"""Making sure a lab host's dockerd has a lab's images under the lab's names before its setup runs.

An image already there (the shared layers of a bundle, or pulled before) is kept; another is pulled by
the lab host's own dockerd through its forwarder (``127.0.0.1:4999/<path>``: the cache serves every
registry's names, Docker Hub's and others', under ``Ref.path``) and tagged with the lab's name, so that
``docker run registry.example/team/tool:2`` finds it without a registry of that name."""
from __future__ import annotations

import time

import docker.errors

from ..labhost.base import LabHost, LabHostError
from . import names
from .forwarder import ADDRESS

PULL_TIMEOUT = 600.0        # seconds for one image's pull through the forwarder (its bounds apply too)
MIRROR = f"{ADDRESS[0]}:{ADDRESS[1]}"


class ImageMissing(LabHostError):
    """An image of a lab that the lab host's dockerd does not have and the cache cannot serve."""


def ensure(host: LabHost, images: list[str]) -> None:
    """Every image of ``images`` in ``host``'s dockerd under its name, or LabHostError naming the first
    one missing and what the operator can do."""
    if not images:
        return
    client = host.docker(timeout=int(PULL_TIMEOUT))
    try:
        for name in images:
            _one(client, host, names.parse(name))
    finally:
        client.close()


def _one(client, host: LabHost, ref: names.Ref) -> None:
    if _present(client, str(ref)):
        return
    via = f"{MIRROR}/{ref.path}"
    deadline = time.monotonic() + PULL_TIMEOUT
    try:
        for event in client.api.pull(via, tag=ref.reference, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise _missing(host, ref, str(event["error"])[:300])
            if time.monotonic() > deadline:
                raise LabHostError(f"lab host {host.id}: pulling image {ref} took over {PULL_TIMEOUT:.0f} s",
                                   "Check the machine's load and LABNB_IMAGE_RATE_MBPS")
    except docker.errors.APIError as e:
        raise _missing(host, ref, str(e.explanation or e)[:300]) from None
    pulled = f"{via}@{ref.digest}" if ref.digest else f"{via}:{ref.tag}"
    try:
        if ref.tag:
            client.api.tag(pulled, ref.name, tag=ref.tag)
            client.api.remove_image(pulled)   # the forwarder's name goes (by digest, if pulled so); the image stays
    except docker.errors.APIError as e:
        raise LabHostError(f"lab host {host.id}: cannot name image {ref}: {e.explanation or e}",
                           "Reset the lab host") from None


def _present(client, name: str) -> bool:
    try:
        client.api.inspect_image(name)
        return True
    except docker.errors.NotFound:
        return False


def _missing(host: LabHost, ref: names.Ref, said: str) -> ImageMissing:
    return ImageMissing(f"image {ref} is not in the machine's image cache (lab host {host.id}'s pull said: {said})",
                        f"The operator can run `labnb image pull {ref}` (from LABNB_IMAGE_UPSTREAM) or "
                        "`labnb image import FILE` (a docker save or OCI archive of it)")
