"""Image references read as docker reads them (distribution's reference grammar): a lab's
``images: [nginx:1.27]`` means ``docker.io/library/nginx:1.27`` exactly as ``docker pull`` would,
so a name that docker refuses is refused here too, with the reason, before any lab host sees it."""
from __future__ import annotations

import dataclasses
import re

HUB = "docker.io"
# Names docker itself treats as Docker Hub.
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"
_NAME_MAX = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
                     r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]{1,5})?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")


@dataclasses.dataclass(frozen=True)
class Ref:
    """One image reference, normalized: ``registry`` ("docker.io" by default), ``repository``
    ("library/nginx"), ``tag`` ("latest" unless a digest alone was given) and ``digest`` (or None)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def hub(self) -> bool:
        return self.registry == HUB

    @property
    def name(self) -> str:
        """The repository as docker shows it: ``nginx``, ``team/tool``, ``registry.example/team/tool``."""
        if self.hub:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def path(self) -> str:
        """The repository as the cache serves it under ``/v2/``: a Hub name as the Hub spells it
        (``library/nginx``, what dockerd asks a mirror for); any other registry's name behind its
        domain (``registry.example/team/tool``, a port's colon as ``_``: ``localhost_5000/tool``),
        a first part no Hub name can have (Hub namespaces have no dot or underscore; a dotless
        host such as ``localhost`` gets ``.host``)."""
        if self.hub:
            return self.repository
        domain = self.registry.lower().replace(":", "_")
        if "." not in domain and "_" not in domain:
            domain += ".host"
        return f"{domain}/{self.repository}"

    @property
    def reference(self) -> str:
        """What follows ``/manifests/`` in the registry API: the digest if given, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(ref: str) -> Ref:
    """``ref`` as docker normalizes it; ``ValueError`` says what is wrong with a bad one."""
    if not isinstance(ref, str) or not ref:
        raise ValueError("an image name is empty: write one like nginx:1.27 or registry.example/team/tool:2")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise ValueError(f"image name {ref!r} has white space in it")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"image name {ref!r}: {digest!r} is not a digest (algorithm:hex, e.g. sha256:<64 hex>)")
        if digest.startswith("sha256:") and not _SHA256.match(digest):
            raise ValueError(f"image name {ref!r}: a sha256 digest is 64 lower-case hex digits")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise ValueError(f"image name {ref!r}: tag {tag!r} is not valid (letters, digits, _ . -; "
                             f"at most 128; not starting with . or -)")
    if not rest:
        raise ValueError(f"image name {ref!r} has no repository")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.match(first):
            raise ValueError(f"image name {ref!r}: {first!r} is not a registry host[:port]")
        registry, path = first, remainder
    else:
        registry, path = HUB, rest
    if registry.lower() in _HUB_ALIASES:
        registry = HUB
    if path != path.lower():
        raise ValueError(f"image name {ref!r}: a repository name must be lower case")
    components = path.split("/")
    for component in components:
        if not _COMPONENT.match(component):
            raise ValueError(f"image name {ref!r}: {component!r} is not a valid part of a repository name "
                             f"(lower-case letters and digits, separated by . _ __ or -)")
    if registry == HUB and len(components) == 1:
        path = f"library/{path}"
    if len(path) > _NAME_MAX:
        raise ValueError(f"image name {ref!r}: the repository name is longer than {_NAME_MAX} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Ref(registry=registry, repository=path, tag=tag, digest=digest)
