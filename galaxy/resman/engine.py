"""The ResMan engine: one loop thread that owns the model and talks to the Agents.

Everything that changes containers runs in the loop thread under `lock`: mesh callbacks (Agent
registrations, poll answers, create/destroy answers, events) are posted to an inbox and handled
there, in batches, so the mesh I/O thread never waits on ResMan. One round (`step`) is:

    inbox → liveness (polls due, hosts lost) → safe mode → [not safe: lost hosts' containers,
    reconcile touched groups, schedule pending containers] → hand the changes since the last write
    to the writer thread, if it is idle → send the creates and destroys earlier writes made safe.

The writer thread commits each hand-off to ZooKeeper as one fenced batch while the loop goes on
(polls, answers, the next rounds' scheduling): a placement is still written before its create is
sent, one round later. Changes made while a write is under way wait in the journal and go out
together in the next hand-off, so the writer never falls behind by more than one batch.

Administrators' and the AppMaster's calls (`groups.py`, `admin.py`) take the same lock, persist
their change synchronously (a caller that got an answer can rely on it surviving a failover) and
wake the loop.
"""

from __future__ import annotations

import gc
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from galaxy.coord import StateKey, StateStore
from galaxy.errors import GalaxyError, NotLeader
from galaxy.mesh import Outcome, Server
from galaxy.resman import agentio, reconcile
from galaxy.resman.hosts import LOST, HostEntry, HostRegistry
from galaxy.resman.model import ALLOCATING, DESTROYING, PENDING, Container, Group
from galaxy.resman.safemode import SafeMode
from galaxy.resman.scheduler import HostIndex, Scheduler
from galaxy.resman.settings import ResManSettings
from galaxy.resman.state import Journal, Loaded, put_hosts
from galaxy.trace import Tracer

log = logging.getLogger(__name__)

FULL_RECONCILE = 5.0      # seconds between two reconciliations of every group (a safety net)
# Python's collector thresholds for the ResMan process (the defaults are 700, 10, 10). ResMan keeps a
# large long-lived model (100,000 containers: a few million objects) and makes short-lived objects for
# every message (10,000 polls a second, each alive for its round trip). Collected every 700
# allocations, those in flight survived into the old generation and set off a full collection of the
# whole model about every second, 0.3 s each, at full scale (measured): polls then took seconds.
GC_THRESHOLDS = (50_000, 20, 100)


class Engine:
    def __init__(self, settings: ResManSettings, *, server: Server | None = None, store: StateStore | None = None,
                 tracer: Tracer | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.server = server
        self.store = store
        self.tracer = tracer
        self.clock = clock
        # Usage accounting (galaxy.resman.accounting): sees every container list an Agent reports.
        # Called in the loop thread as meter.observe(host_id, pool, containers, at); None = off.
        self.meter: Any = None
        # Opens the secrets the AppMaster sealed into group templates, for create requests only
        # (galaxy/coord/_sealed.py); None = this ResMan holds no state key.
        self.state_key: StateKey | None = None
        # Called (loop thread, must not block) with the pool of every host that registers — by the
        # register route or by answering a poll after it was lost — so ResMan declares new pools.
        self.pool_seen: Callable[[str], None] | None = None
        self.lock = threading.RLock()
        self.groups: dict[str, Group] = {}
        self.containers: dict[str, Container] = {}
        self.index = HostIndex()
        self.hosts = HostRegistry(self.index, settings)
        self.scheduler = Scheduler(self.index, settings.strategy)
        self.safe = SafeMode(settings.safe_mode_ratio, settings.safe_mode_timeout)
        self.journal = Journal(store)
        self.touched: set[str] = set()
        self.creating: set[str] = set()      # groups whose record is being written (GroupApi.create)
        self.rolling: set[str] = set()          # groups with stale containers (reconcile.group says)
        self.last_create_activity = -1e9        # last create sent or answered: polls give way while recent
        self.dirty_hosts: set[str] = set()
        self.create_ready: list[str] = []       # placed since the last dispatch
        self.create_waiting: list[str] = []     # placed, not yet written: looked at again after a commit
        self.dispatched_at_commit = -1          # journal.commits when create_waiting was last looked at
        self.destroy_ready: list[str] = []
        self.queued_hosts: set[str] = set()
        self.poll_latencies: deque[float] = deque(maxlen=200_000)
        self.stats: dict[str, int] = dict.fromkeys(
            ("placed", "created", "create_failed", "destroyed", "unknown_destroyed", "lost_hosts",
             "rescheduled", "exited", "rounds", "write_errors", "polls", "answers_refused"), 0)
        self.first_placement = 0.0
        self.last_placement = 0.0
        self._inbox: deque[Callable[[], None]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._writes: queue.SimpleQueue[tuple[dict[str, Any], dict[str, dict[str, Any]]] | None] = \
            queue.SimpleQueue()
        self._writing = False               # a hand-off is with the writer thread
        self._lost_waiting: list[HostEntry] = []    # declared lost, containers not yet rescheduled
        self._last_full = -FULL_RECONCILE
        self._last_share = 0.0
        self._sweep: deque[str] = deque()          # groups left in this full reconciliation
        self.demoted = threading.Event()

    # ---- lifecycle --------------------------------------------------------------------------------
    def load(self, loaded: Loaded) -> None:
        """Rebuild from ZooKeeper state (a new leader) and enter safe mode if hosts were known."""
        now = self.clock()
        with self.lock:
            reconcile.load(self, loaded, now)
            self.safe.begin(len(self.hosts), now)
            if self.safe.on:
                self.trace("host", "_resman", "safe_mode_entered", self.safe.reason)

    def start(self) -> Engine:
        gc.set_threshold(*GC_THRESHOLDS)     # process-wide: the engine is what this process is for
        self.start_writer()
        self._thread = threading.Thread(target=self._run, name="resman-loop", daemon=True)
        self._thread.start()
        return self

    def start_writer(self) -> None:
        """Write to ZooKeeper from a thread of its own (without it, `step` writes inline)."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="resman-writer", daemon=True)
            self._writer.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        if self._writer is not None:
            self._writes.put(None)
            if self._writer is not threading.current_thread():
                self._writer.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the loop thread, under the lock, at the start of the next round."""
        self._inbox.append(fn)
        # The loop clears the flag before it drains the inbox: if it is still set, that drain is to
        # come and will see `fn`. Setting an Event takes a lock and notifies: skipped when it is moot.
        if not self._wake.is_set():
            self._wake.set()

    def trace(self, kind: str, key: str, event: str, reason: str = "", **fields: Any) -> None:
        if self.tracer is not None:
            self.tracer.record(kind, key, event, reason, **fields)

    def _run(self) -> None:
        tick = min(0.05, self.settings.poll_interval / 10)
        while not self._stopping.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            try:
                self.step()
            except NotLeader as err:
                log.warning("stopping the ResMan loop: %s", err)
                self.demoted.set()
                return
            except Exception:  # one bad round must not end the leader; the next round retries
                log.exception("ResMan round failed")
                time.sleep(0.05)

    # ---- one round --------------------------------------------------------------------------------
    def step(self) -> None:
        now = self.clock()
        with self.lock:
            self.stats["rounds"] += 1
            self._drain_inbox()
            agentio.poll_due(self, now)
            for entry in self.hosts.newly_lost(now):
                self._lost_waiting.append(entry)
                self.stats["lost_hosts"] += 1
                log.warning("host %s lost (silent for %.1f s)", entry.id, self.settings.lost_seconds)
                self.trace("host", entry.id, "lost", f"silent for {self.settings.lost_seconds:g} s")
            self._update_safe_mode(now)
            if not self.safe.on:
                # Only hosts declared lost since (not a scan of 10,000 entries every round); one that
                # came back meanwhile keeps its containers.
                for entry in self._lost_waiting:
                    if entry.status == LOST and not entry.lost_handled and self.hosts.get(entry.id) is entry:
                        reconcile.host_lost(self, entry)
                self._lost_waiting.clear()
                names = self._sweep_share(now)
                names.update(self.touched)
                self.touched.clear()
                for name in names:
                    group = self.groups.get(name)
                    if group is not None:
                        reconcile.group(self, group, now)
                reconcile.schedule(self, now)
            handoff = None if self._writing else self._take_writes()
            if self._writer is not None:
                agentio.dispatch(self, self.clock())       # what earlier hand-offs made safe
        if self._writer is not None:
            if handoff is not None:
                self._writes.put(handoff)
            return
        if handoff is not None:                            # no writer thread: write inline, then send
            self._write(*handoff)
        with self.lock:
            agentio.dispatch(self, self.clock())

    def _take_writes(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
        """Everything changed since the last hand-off (under the lock), or None if nothing did."""
        changes = self.journal.take(self.containers.get)
        host_records = {h: self.hosts.entries[h].record() for h in self.dirty_hosts if h in self.hosts.entries}
        self.dirty_hosts.clear()
        if not changes and not host_records:
            return None
        self._writing = True
        self.journal.inflight = set(changes)
        return changes, host_records

    def _write_loop(self) -> None:
        while True:
            handoff = self._writes.get()
            if handoff is None:
                return
            try:
                self._write(*handoff)
            except NotLeader as err:
                log.warning("stopping the ResMan loop: %s", err)
                self.demoted.set()
                self._stopping.set()
                with self.lock:
                    self._writing = False
                self._wake.set()
                return
            except Exception:  # a bug, not ZooKeeper: keep the records dirty and let the next round retry
                log.exception("writing ResMan state failed")
                with self.lock:
                    self.journal.retry(handoff[0])
                    self.dirty_hosts.update(handoff[1])
                time.sleep(0.05)
            with self.lock:
                self._writing = False
                self.journal.inflight = set()
            self._wake.set()

    def _write(self, changes: dict[str, dict[str, Any] | None], host_records: dict[str, dict[str, Any]]) -> None:
        """Commit one hand-off to ZooKeeper (outside the lock), then record it as written (under it)."""
        try:
            put_hosts(self.store, host_records)
            self.journal.store_changes(changes)
        except NotLeader:
            raise
        except GalaxyError as err:
            self.stats["write_errors"] += 1
            log.error("writing %d container records failed (%s); retrying next round", len(changes), err)
            with self.lock:
                self.journal.retry(changes)
                self.dirty_hosts.update(host_records)
                self._writing = False
                self.journal.inflight = set()
            return
        with self.lock:
            for host_id in host_records:
                entry = self.hosts.entries.get(host_id)
                if entry is not None:
                    entry.persisted = True
            self.journal.committed(changes)
            self._writing = False
            self.journal.inflight = set()

    def _sweep_share(self, now: float) -> set[str]:
        """This round's share of the full reconciliation (every group, every FULL_RECONCILE seconds).

        The sweep is spread over the rounds of the first half of its period: at 100,000 containers
        reconciling every group in one round held the lock (and every Agent's answer) for a tenth of a
        second."""
        if not self._sweep and now - self._last_full >= FULL_RECONCILE:
            self._last_full = self._last_share = now
            self._sweep = deque(self.groups)
        sweep = self._sweep
        if not sweep:
            return set()
        take = max(1, math.ceil(len(self.groups) * (now - self._last_share) / (FULL_RECONCILE / 2)))  # in 2.5 s
        self._last_share = now
        return {sweep.popleft() for _ in range(min(take, len(sweep)))}

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        for _ in range(len(inbox)):
            fn = inbox.popleft()
            try:
                fn()
            except Exception:
                log.exception("handling an Agent message failed")

    def _update_safe_mode(self, now: float) -> None:
        if not self.safe.auto:
            return              # only automatic safe mode waits on the count: skip a scan of every host
        known = len(self.hosts)
        reported = self.reported_count()
        why = self.safe.update(known, reported, now)
        if why is not None:
            log.info("leaving safe mode: %s", why)
            self.trace("host", "_resman", "safe_mode_left", why)

    def reported_count(self) -> int:
        with self.lock:     # the loop adds hosts as they register: callers outside it must not see a dict resize
            return sum(1 for e in self.hosts.entries.values() if e.registered)

    # ---- container bookkeeping (loop thread or API under the lock) --------------------------------
    def new_container(self, group: Group, reason: str = "") -> Container:
        c = Container(Container.new_id(group.name, self.containers), group.name, group.version)
        c.reason = reason
        self.containers[c.id] = c
        group.containers.add(c.id)
        group.pending[c.id] = None
        return c

    def place(self, c: Container, host: HostEntry, now: float) -> None:
        """The scheduler chose `host` (its view is already debited): record it, create after writing."""
        group = self.groups[c.group]
        group.pending.pop(c.id, None)
        c.host = host.id
        c.state = ALLOCATING
        c.placed_at = now
        c.reason = ""
        c.create_sent = False
        self.journal.mark(c.id)
        self.create_ready.append(c.id)

    def unplace(self, c: Container, reason: str) -> None:
        """A placement that did not happen (creation failed): pending again, the host's share freed."""
        host = self.hosts.get(c.host) if c.host else None
        if host is not None:
            host.view.release(c.id, c.group)
        c.host = None
        c.state = PENDING
        c.reason = reason
        c.create_sent = False
        self.journal.mark(c.id)
        group = self.groups.get(c.group)
        if group is not None:
            group.pending[c.id] = None
            self.touched.add(group.name)

    def retire(self, c: Container, why: str) -> None:
        """Take a container out of service: forget it if it never existed, else destroy it."""
        if c.state == PENDING or (c.state == ALLOCATING and not c.create_sent and c.id not in self.journal.written
                                  and c.id not in self.journal.inflight):
            self.forget(c)
            return
        if c.state == DESTROYING:
            return
        c.state = DESTROYING
        c.reason = why
        self.journal.mark(c.id)
        self.destroy_ready.append(c.id)

    def forget(self, c: Container) -> None:
        """The container is gone (or never was): drop it everywhere and delete its record."""
        self.containers.pop(c.id, None)
        if c.host is not None:
            host = self.hosts.get(c.host)
            if host is not None:
                host.view.release(c.id, c.group)
        group = self.groups.get(c.group)
        if group is not None:
            group.containers.discard(c.id)
            group.pending.pop(c.id, None)
            self.touched.add(group.name)
        self.journal.mark(c.id)

    # ---- mesh entry points (any thread) -----------------------------------------------------------
    def agent_registered(self, facts: dict[str, Any], key_name: str | None) -> None:
        received = self.clock()
        self.post(lambda: agentio.registered(self, facts, received))

    def agent_event(self, host_id: str, info: dict[str, Any]) -> None:
        self.post(lambda: agentio.event(self, host_id, info))

    def agent_lost(self, host_id: str) -> None:
        self.post(lambda: agentio.disconnected(self, host_id))

    def agent_joined(self, host_id: str) -> None:
        self.post(lambda: agentio.rejoined(self, host_id))

    def request(self, host_id: str, method: str, body: Any, timeout: float,
                done: Callable[[Outcome, float], None]) -> None:
        """Send a request to an Agent; `done(outcome, answered_at)` runs later in the loop thread.

        The mesh's callback path, not a Future: ResMan sends ~10,000 of these a second."""
        if self.server is None:
            return
        clock, post = self.clock, self.post

        def finished(outcome: Outcome) -> None:
            answered = clock()
            post(lambda: done(outcome, answered))
        self.server.request_callback(host_id, method, body, timeout=timeout, done=finished)

    # ---- views for the API and tests -------------------------------------------------------------
    def counts(self, group: Group) -> dict[str, int]:
        ready = pending = 0
        for cid in group.containers:
            c = self.containers.get(cid)
            if c is None:
                continue
            if c.state == "running":
                ready += 1
            elif c.state in (PENDING, ALLOCATING):
                pending += 1
        return {"ready": ready, "pending": pending}

    def placement_rate(self) -> float:
        span = self.last_placement - self.first_placement
        return self.stats["placed"] / span if span > 0 else 0.0


__all__ = ["Engine"]
