"""Learners: a browser identity (from the signed session cookie), its lab
host, and a bench per lab it opened (a lab set up on it).

A learner has one lab host, shared by the labs they open (a lab's cleanup
is for headless runs only, and a reset gives a fresh lab host). Making one
takes most of a second, so it is claimed from the pool in a background
thread while the page shows that it is starting. A lab's setup (up to
300 s) runs the same way when its page is first opened on that lab host,
never under the learner's lock, so the page and its health checks answer
meanwhile. A failure of either is kept with its reason until the learner
retries.

A lab host is a scarce part of the machine (LABNB_MAX_LAB_HOSTS), so on the
open server (without a workshop, whose room ends idle places) one that has
seen no activity of its learner for LABNB_IDLE_MINUTES is given back, as
JupyterHub's idle culler does, and the learners of one client address hold
at most LABNB_LAB_HOSTS_PER_ADDRESS at once (limits.LabHostsPerAddress).
Activity is as in a workshop, but for a visible tab: a use of the lab host
(a lab page, a run, a reset: ``get``), an event the learner's tab sends that
it would not send by itself (TAB_EVENTS), typing in a terminal or its
output; a learner whose step's command runs is not idle, but one whose
endless command waits for Stop is (its bench's current step run). A tab that is only
open, its WebSocket pinging, is no activity. The learner's recorded runs
stay; the next use makes them a new lab host, and says why the old one went.

A node of a cluster (docs/cluster.md) is given ``moves`` (webapp/cluster/moves.py): it records where each
learner's lab host is, and a learner first seen here whose lab host was on a node that died is told so
with their new one, as above.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Callable, Protocol

from flask import has_request_context, request, session
from prometheus_client import Histogram

from ..errors import LabnbError
from ..images.ensure import ImageMissing, ensure as ensure_images
from ..lab import Lab, requires
from ..labhost.base import LabHost, LabHostError
from ..labhost.hostset import DEFAULT_NAME, HostSet, names_of
from ..labhost.pool import Pool
from .bench import Bench, script
from ..guard.limits import LabHostsPerAddress, client_address
from ..guard.admission import OPEN, Admission

log = logging.getLogger(__name__)

STARTING, READY, FAILED = "starting", "ready", "failed"
RECLAIMED = "reclaimed"   # the lab host was given back for idleness; the next use makes a new one
# Socket.IO events a lab page's tab sends by itself (as it connects, as output comes, as its layout
# settles): signs of an open tab, not of its learner (a tab left open on an endless ping is idle).
TAB_EVENTS = frozenset({"open", "attach", "ack", "shell_ack", "shell_resize"})
# seconds from a claim to a ready lab host: a warm pool's (milliseconds) to one made then, or waited for
READY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class NotReady(LabnbError, RuntimeError):
    """The learner's lab host cannot take commands now; the message says why."""


class Moves(Protocol):
    """Where learners' lab hosts are, for the other nodes of a cluster (webapp/cluster/moves.py)."""

    def placed(self, learner_id: str, lab_host: str, state: str) -> None: ...

    def lost(self, learner_id: str) -> str: ...


class Learner:
    def __init__(self, learner_id: str):
        self.id = learner_id
        self.state = STARTING
        self.hosts = HostSet()         # their lab hosts by the lab's names; empty while none is theirs
        self.error = ""
        self.since = time.time()       # when the current state began
        self.generation = 0            # bumped by every (re)start: a late claim for an old one is released
        self.ended = False             # Learners.end took them out: nothing may give them a lab host again
        self.benches: dict[str, Bench] = {}   # labs whose setup has run on this lab host
        self.setups: dict[str, tuple[str, float]] = {}   # lab: ("", since) while its setup runs, or (why it failed, since)
        self.lock = threading.RLock()  # also serialises starting runs
        self.growing = threading.Lock()   # one growth of their set at a time (two labs opened at once)
        self.address = ""              # the client address the lab host was claimed for (per-address limit)
        self.active = time.time()      # the learner's last activity (Learners.touch)
        self.note = ""                 # why their last lab host was given back, told with this one

    @property
    def host(self) -> LabHost | None:
        """The primary of their lab hosts (what a lab of one host uses), None while they have none."""
        return self.hosts.host() if self.hosts else None

    @property
    def holds(self) -> bool:
        """Whether a lab host is theirs, or being claimed for them."""
        return self.state == STARTING or self.host is not None

    @property
    def holding(self) -> int:
        """How many lab hosts are theirs (a set counts as its hosts), or being claimed for them."""
        return len(self.hosts) or (1 if self.state == STARTING else 0)

    @property
    def working(self) -> bool:
        """Whether a step's command runs on one of their benches that does not wait for their Stop (an
        endless ping left running is no work): what the idle reclaim and a workshop's idle ends ask."""
        return any(run is not None and not run.waits_for_stop
                   for run in [b.current for b in list(self.benches.values())])

    def status(self, lab_id: str | None = None) -> dict:
        """The lab host's state or, for a lab whose setup has not run on it yet,
        the setup's: starting while it runs or waits for ``Learners.check`` to
        start it (the page polls), failed with why.

        Read without the learner's lock: a run's start holds it while it waits
        for the store and the lab host, and a workshop's dashboard reads every
        learner's status on each push, which must not queue behind them. A
        field may be a moment newer than another; the next poll or push shows both."""
        state, error, since, setup, hosts = self.state, self.error, self.since, False, self.hosts
        host = hosts.host() if hosts else None
        if state == READY and lab_id is not None and lab_id not in self.benches:
            error, since = self.setups.get(lab_id, ("", time.time()))
            state, setup = FAILED if error else STARTING, True
        return {"state": state, "error": error, "elapsed": time.time() - since, "setup": setup,
                "host": host.id if host else None, "hosts": self.hosts.ids(), "note": self.note}


class Learners:
    """Every learner seen, and their lab hosts. ``admission`` says who may have one (a workshop's room);
    ``per_address`` is the open server's limit of lab hosts per client address; a lab host with no activity
    of its learner for ``idle`` seconds is given back (0: kept; ``start`` starts that); ``moves``: a cluster's
    node's placements (None on one machine)."""

    def __init__(self, pool: Pool, admission: Admission = OPEN, per_address: LabHostsPerAddress | None = None,
                 idle: float = 0.0, moves: Moves | None = None):
        self.pool = pool
        self.admission, self.per_address, self.idle, self.moves = admission, per_address, idle, moves
        self._learners: dict[str, Learner] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._on_release: list[Callable[[str, LabHost], None]] = []
        self._closing = threading.Event()
        self.ready_time = Histogram(   # for the operator's metrics (webapp/web/metrics.py collects it)
            "labnb_lab_host_ready_seconds", "Seconds from a learner's claim of a lab host to its being ready "
            "(taken from the warm pool, or made then)", buckets=READY_BUCKETS, registry=None)

    def on_release(self, callback: Callable[[str, LabHost], None]) -> None:
        """Call ``callback(learner_id, lab_host)`` when a learner's lab host is
        reset or released, before it is destroyed (the terminal shells end so)."""
        self._on_release.append(callback)

    def get(self, learner_id: str) -> Learner:
        """The learner, whose lab host starts being made the first time they are
        seen, and again when they come back after it was given back (NotReady if
        the admission refuses them one: a workshop's learner without a place). A get
        is a use of the lab host: the learner's activity. A learner whose lab host on another node was lost
        is told so (``moves``)."""
        moved = self.moves.lost(learner_id) if self.moves is not None and self.peek(learner_id) is None else ""
        with self._lock:
            learner = self._learners.get(learner_id)
            if learner is None:
                why = self.admission.admits(learner_id)
                if why:
                    raise NotReady(why)
                learner = self._learners[learner_id] = Learner(learner_id)
                learner.note = moved
                self._start(learner)
        learner.active = time.time()
        if learner.state == RECLAIMED:
            with learner.lock, self._lock:
                if learner.state == RECLAIMED:
                    self._start(learner)
        return learner

    def touch(self, learner_id: str) -> None:
        """A sign of the learner's activity outside a request of theirs (typing in a terminal, its output),
        for the idle lab hosts and the admission (a workshop's room)."""
        self._active(learner_id)
        self.admission.touch(learner_id)

    def _active(self, learner_id: str) -> None:
        learner = self.peek(learner_id)
        if learner is not None:
            learner.active = time.time()

    def event_refusal(self, event: str) -> str | None:
        """The gate of the Socket.IO events (stream.events.Events): why this tab's learner may not send
        ``event`` now, the admission's say. An event is the learner's activity, unless their tab sends it by
        itself (TAB_EVENTS)."""
        why = self.admission.refusal()
        if not why and event not in TAB_EVENTS:
            self._active(session["learner"])
        return why

    def working(self, learner_id: str) -> bool:
        """``Learner.working`` for a learner who may not be known (then: no)."""
        learner = self.peek(learner_id)
        return learner is not None and learner.working

    def every(self) -> list[Learner]:
        """Every learner seen (for the operator's counts)."""
        with self._lock:
            return list(self._learners.values())

    def peek(self, learner_id: str) -> Learner | None:
        """The learner if they have been seen, without starting anything."""
        with self._lock:
            return self._learners.get(learner_id)

    def end(self, learner_id: str) -> None:
        """Stop the learner's runs and terminals and destroy their lab host, in
        a thread; a later ``get`` starts them afresh (their runs are kept)."""
        with self._lock:
            learner = self._learners.pop(learner_id, None)
        if learner is None:
            return
        with learner.lock:
            learner.generation += 1   # a claim still under way is released
            learner.ended = True      # and so is one that a reset racing this end starts
            old = (learner.hosts, list(learner.benches.values()))
            learner.hosts, learner.benches, learner.setups = HostSet(), {}, {}
            learner.state, learner.error, learner.since = FAILED, "ended", time.time()
        threading.Thread(target=self._dispose, args=(learner_id, *old), name=f"end-{learner_id[:8]}",
                         daemon=True).start()

    def check(self, learner_id: str, lab: Lab) -> dict:
        """How the learner's lab host stands for ``lab``: its health checked (one
        that died, killed or out of memory, shows as failed with why instead of
        failing every run), and the lab's setup started once it is ready."""
        learner = self.get(learner_id)
        with learner.lock:
            host = learner.host if learner.state == READY else None
        if host is not None:
            health = host.health()
            with learner.lock:
                if learner.host is host and not health.ok:
                    learner.state, learner.error, learner.since = FAILED, health.detail, time.time()
                elif learner.host is host:
                    self._set_up(learner, lab)
        return learner.status(lab.id)

    def retry(self, learner_id: str, lab: Lab) -> dict:
        """Start a new lab host in place of one that failed to start, died, or
        where the lab's setup failed (it may have left half its work)."""
        learner = self.get(learner_id)
        if learner.status(lab.id)["state"] == FAILED:
            self.reset(learner_id)
        return learner.status(lab.id)

    def reset(self, learner_id: str) -> Learner:
        """Tear the learner's lab host down and start a fresh one; their runs stop.

        The old one is destroyed before the new one is claimed, in the same
        thread: on a full server its slot is the one the new one needs. A
        learner not seen yet gets their first (claimed once, not twice)."""
        if self.peek(learner_id) is None:
            return self.get(learner_id)
        learner = self.get(learner_id)
        with learner.lock, self._lock:
            old = (learner.hosts, list(learner.benches.values()))
            learner.hosts, learner.benches, learner.setups, learner.note = HostSet(), {}, {}, ""
            self._start(learner, old)
        return learner

    def bench(self, learner: Learner, lab: Lab) -> Bench:
        """The learner's bench for ``lab``, once the lab's setup has run on their lab host."""
        with learner.lock:
            if learner.state == FAILED:
                raise NotReady(f"your lab host could not start: {learner.error}")
            bench = learner.benches.get(lab.id) if learner.state == READY else None
            if bench is not None:
                return bench
            wait = "your lab host is still starting"
            if learner.state == READY:
                self._set_up(learner, lab)
                why, wait = learner.setups[lab.id][0], "the lab's setup is still running"
                if why:
                    raise NotReady(why)
            raise NotReady(f"{learner.note} A new lab host is being made for you: try again in a moment"
                           if learner.note else f"{wait}; try again in a moment")

    def start(self) -> "Learners":
        """Start giving back the lab host of a learner with no activity for ``idle`` seconds (none if 0), in
        a thread: in the serving process."""
        if self.idle > 0:
            threading.Thread(target=self._reclaim_loop, name="reclaim-idle", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop every learner's runs and terminals; the pool destroys their lab hosts."""
        self._closing.set()
        with self._lock:
            self._closed = True
            learners = list(self._learners.values())
        for learner in learners:
            with learner.lock:
                benches, learner.benches = list(learner.benches.values()), {}
                network = learner.hosts.network
            for s in benches:
                s.close()
            if network is not None:
                network.destroy()

    # -- internals ------------------------------------------------------------
    def _start(self, learner: Learner, old: tuple = ()) -> None:
        """Claim a lab host in a thread, once ``old`` (its host and benches) is disposed of, unless the
        learners at this request's client address hold their most (under ``self._lock``: counted and
        started at once, so parallel requests cannot pass the count together)."""
        learner.generation += 1
        learner.address = (client_address(request.remote_addr) if has_request_context() else None) or learner.address
        held = self._held_at(learner.address, learner)
        why = self.per_address.refusal(learner.address, held) if self.per_address else None
        if why:
            learner.state, learner.error, learner.since = FAILED, why, time.time()
            if old:
                threading.Thread(target=self._dispose, args=(learner.id, *old), name=f"dispose-{learner.id[:8]}",
                                 daemon=True).start()
            return
        learner.state, learner.error, learner.since = STARTING, "", time.time()
        threading.Thread(target=self._claim, args=(learner, learner.generation, old),
                         name=f"claim-{learner.id[:8]}", daemon=True).start()

    def _held_at(self, address: str, but: Learner | None = None) -> int:
        """Lab hosts the learners at ``address`` hold (a set counts as its hosts), ``but`` one (under
        ``self._lock``)."""
        return sum(other.holding for other in self._learners.values()
                   if other is not but and other.address == address)

    def _claim(self, learner: Learner, generation: int, old: tuple) -> None:
        if old:
            self._dispose(learner.id, *old)
        self._place(learner.id, None, STARTING)
        host, error = None, ""
        claimed = time.monotonic()
        try:
            host = self.pool.claim()
            self.ready_time.observe(time.monotonic() - claimed)
        except LabHostError as e:
            free = self._when_free()
            error = f"{str(e).rstrip('.')}. {free}" if free else str(e)
        except Exception as e:  # a bug or an unexpected system error: say it, keep serving
            log.exception("claiming a lab host for learner %s", learner.id)
            error = f"unexpected error: {e}"
        with learner.lock:
            current = generation == learner.generation and not self._closed and not learner.ended
            if current:
                learner.hosts = HostSet([(DEFAULT_NAME, host)]) if host else HostSet()
                learner.state = READY if host else FAILED
                learner.error, learner.since = error, time.time()
        if current:
            self._place(learner.id, host, READY if host else FAILED)
        if host is not None and not current:
            self.pool.release(host)

    def _place(self, learner_id: str, host: LabHost | None, state: str) -> None:
        """Tell the cluster's other nodes where the learner's lab host is (``moves``; none on one machine)."""
        if self.moves is None:
            return
        try:
            self.moves.placed(learner_id, host.id if host else "", state)
        except Exception:   # the store out of reach: the lab host works; the heartbeat says so
            log.exception("recording where learner %s's lab host is", learner_id)

    def _set_up(self, learner: Learner, lab: Lab) -> None:
        """Start the lab's setup on the learner's lab host, unless it ran or runs (call under its lock)."""
        if lab.id in learner.benches or lab.id in learner.setups:
            return
        learner.setups[lab.id] = ("", time.time())
        threading.Thread(target=self._setup, args=(learner, lab, learner.host, learner.generation),
                         name=f"setup-{learner.id[:8]}", daemon=True).start()

    def _setup(self, learner: Learner, lab: Lab, host: LabHost, generation: int) -> None:
        bench, why = None, ""
        try:
            members = self._grow(learner, lab, generation)
            bench = Bench(lab, host, dict(members))
            why = self._prepare_all(lab, members)
        except (LabHostError, NotReady) as e:   # no more lab hosts, one that died meanwhile: say it
            why = f"the lab's hosts could not be made ready: {e}. Retry to get fresh lab hosts"
        except Exception as e:   # a bug: say it, keep serving
            log.exception("setting up lab %s for learner %s", lab.id, learner.id)
            why = f"the lab's setup could not run: {e}. Retry to get a fresh lab host"
        with learner.lock:
            current = generation == learner.generation and learner.host is host and not self._closed
            if current and why:
                learner.setups[lab.id] = (why, time.time())
            elif current:
                learner.benches[lab.id] = bench
                del learner.setups[lab.id]
        if bench is not None and (why or not current):
            bench.close()

    def _grow(self, learner: Learner, lab: Lab, generation: int) -> list[tuple[str, LabHost]]:
        """The learner's lab hosts by ``lab``'s names: for a lab of several, their set grown to as many (more
        lab hosts claimed from the pool, within the per-address limit), joined by its lab network, and each
        named as the lab names it (a set's hosts past the lab's keep theirs). A lab of one host: the
        primary, as it is."""
        names = names_of(lab)
        with learner.growing:
            with learner.lock:
                hosts = learner.hosts
                if generation != learner.generation or not hosts:
                    raise NotReady("your lab hosts were reset meanwhile")
            if len(names) == 1:
                return [(names[0], hosts.host())]
            need = len(names) - len(hosts)
            if need > 0 and self.per_address:
                with self._lock:
                    why = self.per_address.refusal(learner.address, self._held_at(learner.address) + need - 1)
                if why:
                    raise NotReady(f"this lab has {len(names)} hosts, {need} more than you hold: {why}")
            claimed: list[LabHost] = []
            network = hosts.network
            try:
                for _ in range(need):
                    claimed.append(self.pool.claim())
                named = _named(names, hosts.hosts() + claimed, hosts.names)
                if network is None:
                    network = self.pool.backend.new_network(self.pool.settings)
                network.wire(named)
                with learner.lock:
                    if generation != learner.generation or learner.hosts is not hosts:
                        raise NotReady("your lab hosts were reset meanwhile")
                    learner.hosts = HostSet(named, network)
            except BaseException:
                for host in claimed:
                    self.pool.release(host)
                if network is not None and network is not hosts.network:
                    network.destroy()
                raise
            return named[:len(names)]

    def _prepare_all(self, lab: Lab, members: list[tuple[str, LabHost]]) -> str:
        """The lab made ready on each of its hosts at once (a thread each, at most hostset.MOST): why one
        could not be, or ""."""
        whys: dict[str, str] = {}

        def prepare(name: str, host: LabHost) -> None:
            try:
                whys[name] = self._prepare(lab, name, host)
            except Exception as e:   # a lab host that died meanwhile, a bug: say it, keep serving
                log.exception("setting up lab %s on lab host %s", lab.id, host.id)
                whys[name] = f"the lab's setup could not run: {e}. Retry to get a fresh lab host"

        threads = [threading.Thread(target=prepare, args=m, name=f"setup-{m[1].id[-6:]}", daemon=True)
                   for m in members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = [(name, why) for name, why in ((n, whys.get(n, "")) for n, _ in members) if why]
        if len(members) == 1:
            return failed[0][1] if failed else ""
        return "; ".join(f"on {name}: {why}" for name, why in failed)

    @staticmethod
    def _prepare(lab: Lab, name: str, host: LabHost) -> str:
        """The lab made ready on one of its hosts: its images (first: its setup may run them), what it
        requires there, its setup: why not, or ""."""
        try:
            ensure_images(host, lab.images)
        except ImageMissing as e:   # which image, and what the operator can do
            return str(e)
        missing = requires.lacking(host, lab.requires)
        if missing:
            return requires.refusal(lab.id, missing, host)
        if lab.setup:
            outcome, output = script(host, name if lab.hosts else None, lab.setup)
            if not outcome.ok:
                return (f"the lab's setup failed ({outcome.status}, exit code {outcome.exit_code}): "
                        f"{output.strip()[-500:]}. Retry to get a fresh lab host")
        return ""

    # -- idle lab hosts --------------------------------------------------------
    def _idle_since(self, learner: Learner) -> float | None:
        """Since when the learner is idle (None: not, a step's command or a lab's setup runs; a command
        that waits for Stop, an endless ping left running, is no work)."""
        setting_up = any(not why for why, _ in list(learner.setups.values()))
        return None if setting_up or learner.working else learner.active

    def _reclaim_loop(self) -> None:
        while not self._closing.wait(min(self.idle / 4, 30)):
            now = time.time()
            with self._lock:
                learners = [lr for lr in self._learners.values()
                            if lr.host is not None and now - lr.active >= self.idle]
            for learner in learners:
                try:
                    self._reclaim(learner)
                except Exception:   # a bug: say it, go on with the others
                    log.exception("giving back the lab host of learner %s", learner.id)

    def _reclaim(self, learner: Learner) -> None:
        """Give back the learner's lab host if they are still idle; their runs stop (an endless one that waited
        for Stop), their recorded runs stay."""
        with learner.lock:
            since = self._idle_since(learner)
            host = learner.host
            if host is None or since is None or time.time() - since < self.idle:
                return
            learner.generation += 1   # a lab's setup under way is not kept
            old = (learner.hosts, list(learner.benches.values()))
            learner.hosts, learner.benches, learner.setups = HostSet(), {}, {}
            learner.note = (f"Your last lab host, {host.id}, was given back after {_span(self.idle)} with no activity "
                            f"(no lab page opened, no run, nothing typed in a terminal), so that other learners could "
                            f"have one. Your recorded runs are kept; what you made on it (containers, namespaces, "
                            f"files) went with it: run this lab's steps again from the first.")
            learner.state, learner.error, learner.since = RECLAIMED, learner.note, time.time()
        log.info("gave back lab host %s of learner %s: no activity for %s", host.id, learner.id[:8], _span(self.idle))
        threading.Thread(target=self._dispose, args=(learner.id, *old), name=f"reclaim-{learner.id[:8]}",
                         daemon=True).start()

    def _when_free(self) -> str:
        """For a learner refused a lab host because learners hold every one: when an idle one is given back."""
        if not self.idle:
            return ""
        with self._lock:
            holders = [lr for lr in self._learners.values() if lr.host is not None]
        if len(holders) < self.pool.settings.max_lab_hosts:
            return ""   # another failure
        ends = [since + self.idle for since in map(self._idle_since, holders) if since is not None]
        if not ends:
            return (f"Every lab host runs a command now; one with no activity for {_span(self.idle)} is given back: "
                    f"press Retry later")
        return (f"A lab host with no activity for {_span(self.idle)} is given back, the next in about "
                f"{_span(max(0.0, min(ends) - time.time()))} if its learner stays away: press Retry then")

    def _dispose(self, learner_id: str, hosts: HostSet, benches: list[Bench]) -> None:
        """End what ran on each of the learner's old lab hosts, then give every one back and remove the
        lab network that joined them: a set goes as one."""
        for _, host in hosts.members():
            for callback in self._on_release:
                try:
                    callback(learner_id, host)
                except Exception:
                    log.exception("ending what ran on lab host %s", host.id)
        for s in benches:
            s.close()
        for host in hosts.hosts():
            self.pool.release(host)
        if hosts.network is not None:
            hosts.network.destroy()

def _named(names: list[str], hosts: list[LabHost], before: list[str]) -> list[tuple[str, LabHost]]:
    """``hosts`` named: the first by ``names``, those past them by their names ``before`` (``hostN``, N their
    place, where a lab's name took theirs)."""
    named = list(zip(names, hosts))
    for i, host in enumerate(hosts[len(names):], start=len(names)):
        taken = {n for n, _ in named}
        kept = before[i] if i < len(before) else ""
        name = kept if kept and kept not in taken else next(f"host{k}" for k in itertools.count(i + 1)
                                                             if f"host{k}" not in taken)
        named.append((name, host))
    return named


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
