"""Making sure a lab host's dockerd has a lab's images under the lab's names before its setup runs.

An image already there (the shared layers of a bundle, or pulled before) is kept; another is pulled by
the lab host's own dockerd through its forwarder (``127.0.0.1:4999/<path>``: the cache serves every
registry's names, Docker Hub's and others', under ``Ref.path``) and tagged with the lab's name, so that
``docker run registry.example/team/tool:2`` finds it without a registry of that name."""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from ..labhost import engine
from ..labhost.base import LabHost, LabHostError
from . import names
from .forwarder import ADDRESS

PULL_TIMEOUT = 600.0        # seconds for one image's pull through the forwarder (its bounds apply too)
ASK_TIMEOUT = 30.0          # for dockerd to say whether it has an image, to tag one (a busy lab host)
MIRROR = f"{ADDRESS[0]}:{ADDRESS[1]}"


class ImageMissing(LabHostError):
    """An image of a lab that the lab host's dockerd does not have and the cache cannot serve."""


def ensure(host: LabHost, images: list[str]) -> None:
    """Every image of ``images`` in ``host``'s dockerd under its name, or LabHostError naming the first
    one missing and what the operator can do. The lab host may be a learner's who ran anything there: its
    dockerd is asked through ``engine`` (bounded answers, a deadline), never the docker SDK."""
    for name in images:
        _one(host, names.parse(name))


def _one(host: LabHost, ref: names.Ref) -> None:
    if _present(host, str(ref)):
        return
    via = f"{MIRROR}/{ref.path}"
    try:
        line = engine.first_line(host, "POST", "/images/create?" + urlencode({"fromImage": via, "tag": ref.reference}),
                                 PULL_TIMEOUT, b'"error"')
        if line is not None:   # a progress message never says "error"
            raise _missing(host, ref, _error(line))
    except engine.Refused as e:
        raise _missing(host, ref, e.message) from None
    pulled = f"{via}@{ref.digest}" if ref.digest else f"{via}:{ref.tag}"
    if ref.tag:   # the forwarder's name goes; the image stays
        tag = f"/images/{_quoted(pulled)}/tag?" + urlencode({"repo": ref.name, "tag": ref.tag})
        for method, path, ok in (("POST", tag, 201), ("DELETE", f"/images/{_quoted(pulled)}", 200)):
            status, body = engine.ask(host, method, path, ASK_TIMEOUT)
            if status != ok:
                raise LabHostError(f"lab host {host.id}: cannot name image {ref}: {engine.said(body)}",
                                   "Reset the lab host")


def _error(line: bytes) -> str:
    """What a pull's message that names an error says (the line itself, if it is not the JSON it should be)."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    error = event.get("error") if isinstance(event, dict) else None
    return engine.clean(str(error) if error else line.decode("utf-8", "replace"), 300)


def _present(host: LabHost, name: str) -> bool:
    status, body = engine.ask(host, "GET", f"/images/{_quoted(name)}/json", ASK_TIMEOUT)
    if status not in (200, 404):
        raise LabHostError(f"lab host {host.id}: its dockerd answered {status} for image {name}: "
                           f"{engine.said(body)}", "Reset the lab host")
    return status == 200


def _quoted(name: str) -> str:
    return quote(name, safe="/:@")


def _missing(host: LabHost, ref: names.Ref, said: str) -> ImageMissing:
    return ImageMissing(f"image {ref} is not in the machine's image cache (lab host {host.id}'s pull said: {said})",
                        f"The operator can run `labnb image pull {ref}` (from LABNB_IMAGE_UPSTREAM) or "
                        "`labnb image import FILE` (a docker save or OCI archive of it)")
