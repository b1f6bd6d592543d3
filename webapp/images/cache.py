"""The machine's image cache: two of Debian's ``docker-registry`` (the CNCF distribution registry) run by
labnb side by side, or one registry the operator runs (LABNB_IMAGE_CACHE=<url>).

* the **store** takes what ``labnb image import`` pushes (a pull-through registry takes no pushes);
* the **cache** is a pull-through cache of LABNB_IMAGE_UPSTREAM (Docker Hub by default): an image is
  fetched from the upstream once per machine, at its first pull or ``labnb image pull``.

A name is looked up in the store first: an imported image wins over the upstream's of the same name.
Each has its own data dir under ``<state_dir>/registry/`` and listens on a unix socket there only
(``http.net: unix``), in a dir only root and the registry's user can enter. A lock file says which labnb
process (the server or a CLI command) runs them: another one uses those, and takes over if they go.

    <state_dir>/registry/lock            held (flock) by the labnb process that runs them
    <state_dir>/registry/pids            their pids, to stop ones a crashed owner left
    <state_dir>/registry/{store,cache}/  their data; {store,cache}.json their configs; *.log what they said
    <state_dir>/registry/run/*.sock      where they listen
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import threading
import time

from ..config import Settings
from ..errors import ConfigError
from ..labhost.errors import LabHostError
from . import names
from .client import Registry

log = logging.getLogger(__name__)

PROGRAM = "docker-registry"
USER = "docker-registry"     # Debian's package makes it; the registries run as it
START_TIMEOUT = 30.0
ROLES = ("store", "cache")
LOG_MOST = 16 << 20          # a registry's log is cut back to nothing past this, at each start


def wanted(settings: Settings, labs) -> bool:
    """Whether the server should have a cache: the operator set one (or "local"), or a served lab names
    images. The README's default (the built-in labs, busybox only) starts none."""
    return bool(settings.image_cache) or any(getattr(lab, "images", None) for lab in labs)


def open_cache(settings: Settings) -> "Cache":
    """The cache the settings name, ready: the operator's (a URL), else labnb's own, started here or used
    from the labnb process that runs it."""
    url = settings.image_cache
    if url and url != "local":
        if not url.startswith(("http://", "https://")):
            raise ConfigError("LABNB_IMAGE_CACHE", f"{url!r} is neither \"local\" nor a registry's http(s):// URL",
                              "Set it to the URL of the registry you run (such as http://127.0.0.1:5000), to "
                              "\"local\", or unset it")
        return Cache(Registry(url), Registry(url), None)
    local = Local(settings)
    local.start()
    return Cache(Registry("unix:" + local.socket("store")), Registry("unix:" + local.socket("cache")), local)


def named(images: list[str]) -> frozenset[str]:
    """What the served labs' ``images`` let the pull-through cache fetch for lab hosts: each repository
    (``Ref.path``: by digest, as a tag's manifest list names its manifests) and each tag (``path:tag``)."""
    refs = [names.parse(image) for image in images]
    return frozenset([ref.path for ref in refs] + [f"{ref.path}:{ref.tag}" for ref in refs if ref.tag])


class Cache:
    """Where images are read (``sources``: the store first, then the pull-through cache) and imported
    (``store``)."""

    def __init__(self, store: Registry, cache: Registry, local: "Local | None"):
        self.store, self.cache, self.local = store, cache, local

    def sources(self, path: str, named: frozenset[str] = frozenset(), tag: str = "") -> list[Registry]:
        """The registries a lab host's pull of repository ``path`` (of its manifest ``tag``, if asked by tag)
        may read, in order: the import store, then the pull-through cache, only for a Docker Hub name
        (``registry.example/...`` is only ever imported) that a served lab names (``named``, from
        ``named()``) or that the cache holds already (the operator's ``labnb image pull``), a tag only if
        that tag is so: a learner cannot fill the machine's disk with images of their choosing, nor with
        every tag of a repository a lab names. A registry the operator runs is asked for anything."""
        if self.store.address == self.cache.address:
            return [self.store]
        first = path.split("/", 1)[0]
        hub = "." not in first and "_" not in first
        wanted = f"{path}:{tag}" in named if tag else path in named
        return [self.store, self.cache] if hub and (wanted or self.holds(path, tag)) else [self.store]

    def holds(self, path: str, tag: str = "") -> bool:
        """Whether labnb's pull-through cache has repository ``path`` (its ``tag``, if given; both matched
        the API's grammar: no dot segments), by its data dir (distribution's layout), without asking it."""
        where = [self.local.dir, "cache", "docker", "registry", "v2", "repositories", path] if self.local else []
        return bool(where) and os.path.isdir(os.path.join(*where, *(["_manifests", "tags", tag] if tag else [])))

    def revive(self) -> None:
        """After a registry did not answer: run them here if their owner went (a CLI command ended)."""
        if self.local:
            self.local.start()

    def close(self) -> None:
        if self.local:
            self.local.stop()


class Local:
    """labnb's own two registries on this machine. The pull-through cache may fail to start (distribution
    asks the upstream at its start, and stops when it cannot reach it: a machine without the internet):
    the store goes on alone, and the cache's log says why."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = os.path.join(settings.state_dir, "registry")
        self._lock_fd = -1
        self._procs: dict[str, subprocess.Popen] = {}
        self._mutex = threading.Lock()
        self.cache_trouble = ""   # why the pull-through cache is not running, if it is not

    def socket(self, role: str) -> str:
        return os.path.join(self.dir, "run", f"{role}.sock")

    def start(self) -> None:
        """Run the registries here, or wait for the labnb process that runs them to have the store answer."""
        with self._mutex:
            if "store" in self._procs and self._procs["store"].poll() is None:
                return
            self._stop_own()
            if shutil.which(PROGRAM) is None:
                raise LabHostError(f"a lab names images, but {PROGRAM} is not installed",
                                   "Run scripts/setup.sh (it installs Debian's docker-registry), or set "
                                   "LABNB_IMAGE_CACHE to a registry you run")
            os.makedirs(self.dir, 0o700, exist_ok=True)
            if self._lock_fd < 0:
                self._lock_fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                self._wait_answering("store", "another labnb process runs it")
                return
            self._stop_stale()
            try:
                self._prepare()
                for role in ROLES:
                    self._spawn(role)
                self._wait_answering("store", "started here")
                try:
                    self._wait_answering("cache", "started here")
                    self.cache_trouble = ""
                except LabHostError as e:   # what it cached is still served, read-only, and nothing new
                    self.cache_trouble = (f"{e}; what the cache holds is served, nothing is pulled from the "
                                          "upstream until labnb starts again with it reachable")
                    log.error("%s", self.cache_trouble)
                    self._procs.pop("cache").wait()
                    self._spawn("cache", offline=True)
                    self._wait_answering("cache", "started here, offline")
            except BaseException:
                self._stop_own()
                raise

    def _prepare(self) -> None:
        account = _account()
        if account:   # its user passes through to its own dirs and reads its config; nothing more
            os.chown(self.dir, 0, account.pw_gid)
            os.chmod(self.dir, 0o750)
        for path in [os.path.join(self.dir, "run")] + [os.path.join(self.dir, role) for role in ROLES]:
            os.makedirs(path, 0o700, exist_ok=True)
            if account:
                os.chown(path, account.pw_uid, account.pw_gid)

    def _spawn(self, role: str, offline: bool = False) -> None:
        account = _account()
        try:
            os.unlink(self.socket(role))
        except FileNotFoundError:
            pass
        config = os.path.join(self.dir, f"{role}.json")   # YAML is a superset of JSON
        with open(config, "w") as f:
            os.fchmod(f.fileno(), 0o640)
            if account:
                os.fchown(f.fileno(), 0, account.pw_gid)
            json.dump(self._config(role, offline), f, indent=1)
        logfile = os.path.join(self.dir, f"{role}.log")
        if os.path.exists(logfile) and os.path.getsize(logfile) > LOG_MOST:
            os.truncate(logfile, 0)
        with open(logfile, "ab") as out:
            self._procs[role] = subprocess.Popen(
                [PROGRAM, "serve", config], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, user=account.pw_uid if account else None,
                group=account.pw_gid if account else None, extra_groups=[] if account else None)
        with open(os.path.join(self.dir, "pids"), "w") as f:
            f.write("".join(f"{p.pid}\n" for p in self._procs.values()))

    def _config(self, role: str, offline: bool = False) -> dict:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}, "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, role)}, "delete": {"enabled": False},
                        "cache": {"blobdescriptor": "inmemory"}},
            "http": {"net": "unix", "addr": self.socket(role), "secret": secrets.token_hex(16)},
        }
        if role == "cache" and offline:   # the same data dir as a plain registry that takes nothing
            config["storage"]["maintenance"] = {"readonly": {"enabled": True}}
        elif role == "cache":
            config["proxy"] = {"remoteurl": self.settings.image_upstream}
        return config

    def _wait_answering(self, role: str, why: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        registry = Registry("unix:" + self.socket(role), timeout=2)
        what = {"store": "the image store", "cache": f"the pull-through cache of {self.settings.image_upstream}"}[role]
        while not registry.ping():
            proc = self._procs.get(role)
            died = proc is not None and proc.poll() is not None
            if died or time.monotonic() > deadline:
                said = "stopped" if died else f"did not answer within {START_TIMEOUT:.0f} s"
                raise LabHostError(f"{what} ({why}) {said}: {self._log_tail(role)}",
                                   f"See {self.dir}/{role}.log; check LABNB_IMAGE_UPSTREAM, or set "
                                   "LABNB_IMAGE_CACHE to a registry you run")
            time.sleep(0.1)

    def _log_tail(self, role: str) -> str:
        """What the registry said last, for an error: its last panic's reason (a Go panic's first line),
        else its last three lines."""
        try:
            with open(os.path.join(self.dir, f"{role}.log"), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4000))
                lines = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "(no log)"
        panic = [line for line in lines if line.startswith("panic:")]
        return (panic[-1] if panic else "; ".join(lines[-3:]))[:500] or "(no log)"

    def _stop_stale(self) -> None:
        """Registries a labnb process that died without stopping them left on this data dir (we hold the
        lock: no live labnb owns them)."""
        try:
            with open(os.path.join(self.dir, "pids")) as f:
                pids = [int(line) for line in f if line.strip().isdigit()]
        except OSError:
            return
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(argv[0]) == PROGRAM.encode() and any(a.startswith(self.dir.encode()) for a in argv):
                _kill(pid)

    def _stop_own(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs = {}

    def stop(self) -> None:
        with self._mutex:
            self._stop_own()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)   # the lock goes with it
                self._lock_fd = -1


def _account():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

