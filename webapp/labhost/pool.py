"""Lab hosts for learners: made on demand or claimed from a warm pool.

A sandbox lab host takes most of a second to make; a workshop of 30 opening
the same lab at once would wait for each other. The pool keeps ``size`` lab
hosts started and ready in the background, so a claim takes milliseconds.

The pool counts every lab host it holds a slot for (ready, claimed, being
made or being destroyed) against ``max_lab_hosts``: its own, not other
servers' (they share only the machine's uid ranges, records.py). It refills
only into free slots, and a claim on a full server waits (up to ``ready_timeout``)
for a slot that a destroyed lab host frees, or for a lab host the pool made
in it, instead of failing at once.

When the machine lets it make none (``cannot_make``: every uid range of the
machine is claimed), a claim is refused at once, saying what the operator must
do, unless the pool is making one (it waits for that one); the pool says so in
the log once and makes the next when a range is freed: one of its own lab hosts
going, or, checked every few seconds, another server's.

A lab host waiting in the pool is frozen (``LabHost.pause``): a pool sized
for a room of 30 would otherwise burn about a third of a core doing nothing.
A claim thaws it and checks its health, in milliseconds.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..config import Settings
from . import backends, offers
from .base import LabHost, LabHostError
from .errors import CannotMake
from .statedir import prepare_state_dir

log = logging.getLogger(__name__)

# seconds between the pool's checks whether the machine lets it make a lab host again: growing to the most
RECHECK_LEAST, RECHECK_MOST = 1.0, 10.0


def make(settings: Settings) -> LabHost:
    """A new, not yet started, lab host of the configured backend."""
    return backends.get(settings.backend).new(settings)


def create(settings: Settings, prepare: Callable[[LabHost], None] | None = None) -> LabHost:
    """Make a lab host and wait until it is ready; then ``prepare`` it (the server's hook: attach what
    each lab host gets before a learner has it, such as the image forwarder)."""
    host = make(settings)
    host.start()
    try:
        host.wait_ready(settings.ready_timeout)
        if prepare:
            prepare(host)
    except BaseException:
        host.destroy()
        raise
    return host


class Pool:
    """Ready lab hosts waiting to be claimed, refilled by one background thread."""

    def __init__(self, settings: Settings, size: int | None = None,
                 prepare: Callable[[LabHost], None] | None = None):
        self.settings = settings
        self.prepare = prepare   # called on each new lab host once ready (``create``)
        self.backend = backends.get(settings.backend)
        self.size = settings.pool_size if size is None else size
        self._ready: list[LabHost] = []
        self._claimed: dict[str, LabHost] = {}
        self._held = 0   # slots held by this pool's lab hosts, whatever their state
        self._filling = 0   # lab hosts the pool's thread is making, until they wait ready
        self._gone = 0      # lab hosts of this pool destroyed so far (each frees its uid range)
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.exhausted = 0   # claims refused, every slot held (for the operator's metrics)
        if self.backend.recorded:
            prepare_state_dir(settings)

    def start(self) -> "Pool":
        if self.size > 0 and self.backend.pooled:
            self._thread = threading.Thread(target=self._fill, name="lab-host-pool", daemon=True)
            self._thread.start()
        return self

    def claim(self) -> LabHost:
        """A ready lab host: from the pool when one waits (or comes while the claim waits for a free
        slot), else made now."""
        while True:
            host, pooled = self._take_or_make()
            if not pooled:
                break   # made just now, and ready
            try:
                host.pause(False)
                ok = host.health().ok
            except LabHostError:
                log.exception("thawing lab host %s from the pool", host.id)
                ok = False
            if ok:
                break
            self._destroy(host)   # it died while it waited: take another
        with self._cond:
            self._claimed[host.id] = host
        return host

    def cannot_make(self) -> str | None:
        """Why this server can give no new lab host now because the machine lets it make none (every uid
        range of the machine is claimed), with what the operator must do; None when it can: a ready one
        waits, the pool is making one, or the machine lets it make one. A server whose own lab hosts
        (LABNB_MAX_LAB_HOSTS) are all held is full, not refused: None (a workshop's room queues for that).
        Asked by a join, the node's health (HAProxy's agent-check says down) and the metrics."""
        with self._cond:
            if self._ready or self._filling or self._held >= self.settings.max_lab_hosts:
                return None
        refused = self.backend.cannot_make(self.settings)
        return str(refused) if refused else None

    def _take_or_make(self) -> tuple[LabHost, bool]:
        """A lab host that waited in the pool (True), or one made now in a free slot (False). When the machine
        lets none be made but the pool is making one, that one (the last range is its)."""
        most = self.settings.max_lab_hosts
        deadline = time.monotonic() + self.settings.ready_timeout
        refused = None
        with self._cond:
            while True:
                if self._ready:
                    host = self._ready.pop(0)
                    self._cond.notify_all()
                    return host, True
                if self._closed:
                    break
                if self._held < most:
                    refused = self._filling and self.backend.cannot_make(self.settings)
                    if not refused:
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._full() if self._held >= most else refused
                self._cond.wait(left)
        return self._make(), False

    def _full(self) -> LabHostError:
        """This server's own lab hosts are all held (other servers' on the machine are not counted here)."""
        self.exhausted += 1   # under self._cond
        return LabHostError(f"this server's {self.settings.max_lab_hosts} lab hosts (LABNB_MAX_LAB_HOSTS) are all "
                            f"in use and none was freed in {self.settings.ready_timeout:.0f} s",
                            "Try again when a learner has left, or raise LABNB_MAX_LAB_HOSTS")

    def release(self, host: LabHost) -> None:
        """Destroy a claimed lab host (its learner left, or asked for a fresh one)."""
        with self._cond:
            self._claimed.pop(host.id, None)
        self._destroy(host)

    def _make(self) -> LabHost:
        """A new ready lab host in a free slot, waiting for one to free if need be."""
        most = self.settings.max_lab_hosts
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._held < most, self.settings.ready_timeout):
                raise self._full()
            self._held += 1
        try:
            return create(self.settings, self.prepare)
        except BaseException:
            with self._cond:
                self._held -= 1
                self._cond.notify_all()
            raise

    def _destroy(self, host: LabHost) -> None:
        try:
            host.destroy()
        finally:
            with self._cond:
                self._held -= 1
                self._gone += 1
                self._cond.notify_all()

    def claimed(self) -> list[LabHost]:
        with self._cond:
            return list(self._claimed.values())

    def waiting(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_full(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= self.size or self._closed, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            hosts = self._ready + list(self._claimed.values())
            self._ready, self._claimed = [], {}
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=self.settings.ready_timeout)
        for host in hosts:   # each on its own: one that fails to go leaves the rest to go (and `gc` to retry)
            try:
                host.destroy()
            except Exception:
                log.exception("destroying lab host %s", host.id)

    def _fill(self) -> None:
        failures, refused = 0, ""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or (len(self._ready) < self.size
                                                             and self._held < self.settings.max_lab_hosts))
                if self._closed:
                    return
                self._filling += 1
                gone = self._gone
            try:
                host = self._make()
            except CannotMake as e:
                self._filled(None)
                if str(e) != refused:   # once, not at each check: the room may wait long
                    log.error("warm pool: %s. It makes the next when a uid range is freed", e)
                    refused = str(e)
                if self._wait_for_range(gone):
                    return
                continue
            except LabHostError as e:
                self._filled(None)
                failures += 1
                log.error("warm pool: %s", e)
                with self._cond:
                    if self._cond.wait_for(lambda: self._closed, min(60, 2 ** failures)):
                        return
                continue
            except BaseException:
                self._filled(None)
                raise
            failures = 0
            if refused:
                log.info("warm pool: a uid range was freed; it makes lab hosts again")
                refused = ""
            try:   # what labs may require, probed now while the machine is idle (a room joins at once)
                host.offers = offers.probe(host)
            except (LabHostError, OSError) as e:
                log.error("warm pool: probing lab host %s: %s", host.id, e)
            try:
                host.pause(True)
            except LabHostError as e:   # it works, but costs CPU while it waits
                log.error("warm pool: %s", e)
            if not self._filled(host):
                self._destroy(host)
                return

    def _filled(self, host: LabHost | None) -> bool:
        """The pool's thread is done making ``host`` (None: it failed): it waits ready, unless the pool closed
        meanwhile (False)."""
        with self._cond:
            self._filling -= 1
            if host is not None and not self._closed:
                self._ready.append(host)
            self._cond.notify_all()
            return not self._closed

    def _wait_for_range(self, gone: int) -> bool:
        """Back off after the machine refused a lab host: until a lab host of this pool goes (its range is
        free: ``gone`` is the count before) or the machine lets one be made, checked at growing intervals up
        to RECHECK_MOST (another server's lab host went). True if the pool closed meanwhile."""
        delay = RECHECK_LEAST
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closed or self._gone != gone, delay):
                    return self._closed
            if not self.backend.cannot_make(self.settings):
                return False
            delay = min(delay * 2, RECHECK_MOST)
