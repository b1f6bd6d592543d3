"""Speaking the registry HTTP API (distribution's ``/v2/``) to the machine's cache, over a unix socket
(``unix:/path``) or plain HTTP on the machine (``http://host:port``): what ``labnb image`` pushes and
lists, what the forwarder relays to. Every answer is read with a bound."""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse

TIMEOUT = 30.0
MAX_JSON = 4 << 20        # a manifest, a tag list, a catalog page, an error
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])


class RegistryError(OSError):
    """A registry that refused or did not answer: which, what it said."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection(address: str, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
    """A connection to the registry at ``address`` (``unix:/path`` or ``http://host:port``)."""
    if address.startswith("unix:"):
        return _UnixConnection(address[len("unix:"):], timeout)
    url = urllib.parse.urlsplit(address)
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)


def base_path(address: str) -> str:
    """The path prefix before ``/v2/`` (a registry the operator runs behind a path)."""
    return "" if address.startswith("unix:") else urllib.parse.urlsplit(address).path.rstrip("/")


class Registry:
    """Requests to one registry; each on a connection of its own (no state kept between them)."""

    def __init__(self, address: str, timeout: float = TIMEOUT):
        self.address = address
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """``method path`` (``/v2/...``), the whole answer read (at most MAX_JSON bytes)."""
        conn = connection(self.address, self.timeout)
        try:
            conn.request(method, base_path(self.address) + path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read(MAX_JSON + 1)
            if len(data) > MAX_JSON:
                raise RegistryError(f"registry {self.address}: the answer to {method} {path} is over "
                                    f"{MAX_JSON} bytes")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, RegistryError):
                raise
            raise RegistryError(f"registry {self.address} did not answer {method} {path}: {e}") from None
        finally:
            conn.close()

    def ping(self) -> bool:
        try:
            return self.request("GET", "/v2/")[0] == 200
        except RegistryError:
            return False

    def has_blob(self, repository: str, digest: str) -> bool:
        return self.request("HEAD", f"/v2/{repository}/blobs/{digest}")[0] == 200

    def push_blob(self, repository: str, digest: str, size: int, body) -> None:
        """A blob uploaded in one PUT (``body``: bytes or a file of ``size`` bytes); the registry checks the
        digest."""
        if self.has_blob(repository, digest):
            return
        status, headers, data = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                                             headers={"Content-Length": "0"})
        if status != 202 or "location" not in headers:
            raise RegistryError(f"registry {self.address} refused an upload to {repository}: {status} "
                                f"{_said(data)}")
        location = urllib.parse.urlsplit(headers["location"])
        query = (location.query + "&" if location.query else "") + urllib.parse.urlencode({"digest": digest})
        status, _, data = self.request("PUT", f"{location.path.removeprefix(base_path(self.address))}?{query}",
                                       body=body, headers={"Content-Length": str(size),
                                                           "Content-Type": "application/octet-stream"})
        if status != 201:
            raise RegistryError(f"registry {self.address} refused blob {digest} of {repository}: {status} "
                                f"{_said(data)}")

    def push_manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> None:
        status, _, data = self.request("PUT", f"/v2/{repository}/manifests/{reference}", body=body,
                                       headers={"Content-Type": media_type})
        if status != 201:
            raise RegistryError(f"registry {self.address} refused the manifest {repository}:{reference}: "
                                f"{status} {_said(data)}")

    def manifest(self, repository: str, reference: str) -> tuple[int, dict, bytes]:
        return self.request("GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES})

    def blob(self, repository: str, digest: str):
        """A blob's answer to read in pieces (the caller closes it), or RegistryError."""
        conn = connection(self.address, self.timeout)
        try:
            conn.request("GET", base_path(self.address) + f"/v2/{repository}/blobs/{digest}")
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise RegistryError(f"registry {self.address} did not answer for blob {digest}: {e}") from None
        if resp.status != 200:
            conn.close()
            raise RegistryError(f"registry {self.address} has no blob {digest} of {repository}: {resp.status}")
        return resp

    def repositories(self, most: int = 1000) -> list[str]:
        status, _, data = self.request("GET", f"/v2/_catalog?n={most}")
        if status != 200:
            raise RegistryError(f"registry {self.address} lists no repositories: {status} {_said(data)}")
        return list(json.loads(data).get("repositories") or [])

    def tags(self, repository: str) -> list[str]:
        status, _, data = self.request("GET", f"/v2/{repository}/tags/list")
        if status != 200:
            return []
        return list(json.loads(data).get("tags") or [])


def _said(data: bytes) -> str:
    """A registry's error answer, short: its first error's code and message."""
    try:
        first = json.loads(data)["errors"][0]
        return f"{first.get('code')}: {first.get('message')}"
    except (ValueError, KeyError, IndexError, TypeError):
        return data[:200].decode(errors="replace")
