"""Hosts as ResMan knows them: the Agent's facts, the administrator's word, and liveness.

An Agent registers on every (re)connection; ResMan then polls it (`agent.resources`) every
`poll_interval`. Any answer, registration or event is a sign of life; a host silent for
`lost_after` intervals is lost. The administrator's admin state, labels and pool are persisted
(`state/hosts`) and win over the Agent's config; the Agent's own pool and labels apply while the
administrator has said nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from galaxy.errors import InvalidInput, NotFound
from galaxy.resman.scheduler import ADMIN_STATES, DRAINING, ONLINE, HostIndex, HostView
from galaxy.resman.settings import ResManSettings

ALIVE, LOST = "alive", "lost"
LOST_SWEEPS = 50            # sweeps for silent hosts per `lost_seconds`
POLL_CATCH_UP = 1.25        # polls may run this much faster than one per host per interval (to catch up)
POLL_BURST = 0.1            # seconds' worth of polls that may go out in one round


@dataclass(eq=False)
class HostEntry:
    view: HostView
    status: str = LOST
    registered: bool = False           # registered with this leader (counts for safe mode)
    connected: bool = False
    last_heard: float = 0.0
    last_news: float = 0.0              # last container event or create answer (stands in for a poll)
    next_poll: float = 0.0
    polling: bool = False
    lost_handled: bool = True           # its containers were already rescheduled (or it has none)
    agent_pool: str = "default"
    agent_labels: list[str] = field(default_factory=list)
    pool_override: str | None = None
    labels_override: list[str] | None = None
    port_range: list[int] = field(default_factory=list)
    creating: int = 0
    batch_creates: bool = True          # the Agent serves container.create_many (until it says not_found)
    create_queue: deque[str] = field(default_factory=deque)
    destroying: set[str] = field(default_factory=set)    # ids with a destroy in flight
    persisted: bool = False
    # The last full container list this host reported, as applied: a poll carries `report_digest`, and
    # an Agent whose list has not changed since answers "unchanged" instead of the list (agentio.polled).
    report_digest: str | None = None
    report_containers: list[Any] = field(default_factory=list)
    report_ids: set[str] = field(default_factory=set)
    report_ports: set[int] = field(default_factory=set)
    report_clean: bool = False          # every container in it matched the records as running here
    report_free: dict[str, Any] | None = None     # the free figures last applied to the view

    @property
    def id(self) -> str:
        return self.view.id

    def record(self) -> dict[str, Any]:
        return {"admin": self.view.admin, "pool": self.pool_override, "labels": self.labels_override}

    def to_wire(self) -> dict[str, Any]:
        v = self.view
        return {"id": v.id, "pool": v.pool, "labels": sorted(v.labels), "address": v.address,
                "status": ALIVE if self.status == ALIVE and self.registered else LOST, "admin": v.admin,
                "capacity": v.capacity_wire(), "free": v.free_wire(), "containers": len(v.containers)}


class HostRegistry:
    def __init__(self, index: HostIndex, settings: ResManSettings) -> None:
        self.index = index
        self.settings = settings
        self.entries: dict[str, HostEntry] = {}
        # Hosts being drained (kept by set_admin): reconciliation asks it of every container, so a
        # set lookup rather than an entry and its view per container (100,000 every few seconds).
        self.draining: set[str] = set()
        self._poll_order: deque[str] = deque()
        self._polled: set[str] = set()
        self._next_sweep = 0.0
        self._tokens = 0.0
        self._last_pace = 0.0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, host_id: str) -> HostEntry | None:
        return self.entries.get(host_id)

    def need(self, host_id: str) -> HostEntry:
        entry = self.entries.get(host_id)
        if entry is None:
            raise NotFound(f"no host {host_id!r}", field="host")
        return entry

    # ---- from state ---------------------------------------------------------------------------
    def load(self, host_id: str, record: dict[str, Any], now: float) -> HostEntry:
        """A host a previous leader knew: not registered yet; lost only after a silent period."""
        admin = record.get("admin", ONLINE)
        entry = HostEntry(HostView(host_id, record.get("pool") or "default", frozenset(record.get("labels") or ())),
                          status=ALIVE, last_heard=now, persisted=True,
                          pool_override=record.get("pool"), labels_override=record.get("labels"))
        self.entries[host_id] = entry
        self.set_admin(host_id, admin if admin in ADMIN_STATES else ONLINE)
        self.index.add(entry.view)
        return entry

    # ---- registration -------------------------------------------------------------------------
    def register(self, facts: dict[str, Any], now: float) -> HostEntry:
        host_id = facts["id"]
        entry = self.entries.get(host_id)
        if entry is None:
            entry = HostEntry(HostView(host_id))
            self.entries[host_id] = entry
        entry.agent_pool = facts.get("pool") or "default"
        entry.agent_labels = [str(x) for x in facts.get("labels") or ()]
        entry.port_range = list(facts.get("port_range") or ())
        view = entry.view
        view.address = str(facts.get("address") or "")
        view.set_capacity(facts.get("capacity") or {}, facts.get("disks"))
        pool = entry.pool_override or entry.agent_pool
        labels = entry.labels_override if entry.labels_override is not None else entry.agent_labels
        self.index.update(view, pool=pool, labels=labels)
        if host_id not in self._polled:
            self._polled.add(host_id)
            self._poll_order.append(host_id)
        entry.registered = True
        entry.connected = True
        entry.batch_creates = True          # a re-registered Agent may have been upgraded
        self.heard(entry, now)
        entry.next_poll = now + self.settings.poll_interval
        return entry

    def heard(self, entry: HostEntry, now: float) -> None:
        entry.last_heard = now
        if entry.status != ALIVE:
            entry.status = ALIVE
        entry.view.alive = entry.registered

    # ---- liveness -----------------------------------------------------------------------------
    def due_polls(self, now: float, busy: bool = False) -> list[HostEntry]:
        """Hosts whose next poll is due, in a rotating order (so polls spread over the interval).

        `busy`: creates are being sent or answered. Polls then give way to them: only a host not
        heard for a quarter of `lost_seconds` is polled (so a slow answer still leaves time for
        another poll before the host would be lost); the others wait for the end of the burst. At
        10,000 hosts a poll each per second (a request and a full report each) was most of the
        loop's work and held the creates back to a few hundred a second.

        Polls are paced (a token bucket at `POLL_CATCH_UP` × hosts / interval): after a burst every
        host is due at once, and 10,000 requests in one round made answers take seconds and kept
        the polls bunched in every later interval; paced, they spread out again."""
        due: list[HostEntry] = []
        quiet_while_busy = self.settings.lost_seconds / 4
        order = self._poll_order
        rate = len(order) * POLL_CATCH_UP / self.settings.poll_interval
        self._tokens = min(max(1.0, rate * POLL_BURST), self._tokens + rate * max(0.0, now - self._last_pace))
        self._last_pace = now
        for _ in range(len(order)):
            host_id = order[0]
            entry = self.entries.get(host_id)
            if entry is None:
                order.popleft()
                self._polled.discard(host_id)
                continue
            if entry.next_poll > now or self._tokens < 1.0:
                break
            order.rotate(-1)
            entry.next_poll = now + self.settings.poll_interval
            # A lost host stays in the rotation while the mesh still reaches it: an Agent that was
            # only paused answers, and its answer re-registers it (agentio.polled).
            if not entry.connected or entry.polling:
                continue
            if busy and entry.registered and entry.status == ALIVE and now - entry.last_heard < quiet_while_busy:
                continue
            # A host whose containers are changing tells us so (events, create answers) many times a
            # second while a burst of placements lands: its poll waits until it has been quiet for
            # an interval. On 10,000 hosts this halves the loop's work during the burst; a quiet
            # host (the steady state) is polled every interval as before.
            if entry.registered and entry.status == ALIVE and now - entry.last_news < self.settings.poll_interval:
                continue
            self._tokens -= 1.0
            due.append(entry)
        return due

    def newly_lost(self, now: float) -> list[HostEntry]:
        """Hosts silent past `lost_seconds`, found by a sweep of every host. The sweep runs at most
        every `lost_seconds / LOST_SWEEPS` (a round can come every few ms, and 10,000 hosts make the
        sweep cost ~1 ms), so a host is declared lost at most that much late."""
        if now < self._next_sweep:
            return []
        self._next_sweep = now + self.settings.lost_seconds / LOST_SWEEPS
        cutoff = now - self.settings.lost_seconds
        lost = []
        for entry in self.entries.values():
            if entry.status == ALIVE and entry.last_heard < cutoff:
                entry.status = LOST
                entry.view.alive = False
                entry.registered = False
                entry.lost_handled = False
                entry.polling = False
                lost.append(entry)
        return lost

    # ---- administration -----------------------------------------------------------------------
    def set_admin(self, host_id: str, admin: str) -> HostEntry:
        if admin not in ADMIN_STATES:
            raise InvalidInput(f"expected one of {', '.join(ADMIN_STATES)}", field="admin")
        entry = self.need(host_id)
        entry.view.admin = admin
        if admin == DRAINING:
            self.draining.add(host_id)
        else:
            self.draining.discard(host_id)
        return entry

    def set_labels(self, host_id: str, add: list[str], remove: list[str]) -> HostEntry:
        entry = self.need(host_id)
        labels = (set(entry.view.labels) | set(add)) - set(remove)
        entry.labels_override = sorted(labels)
        self.index.update(entry.view, labels=labels)
        return entry

    def move(self, host_id: str, pool: str) -> HostEntry:
        entry = self.need(host_id)
        entry.pool_override = pool
        self.index.update(entry.view, pool=pool)
        return entry

    def listing(self, pool: str | None = None) -> list[dict[str, Any]]:
        return [e.to_wire() for _, e in sorted(self.entries.items()) if pool is None or e.view.pool == pool]
