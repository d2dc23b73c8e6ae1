"""Convergence: every group's containers move toward its desired count and version, and pending
containers are placed. Runs in the loop thread, under the engine lock, never in safe mode.

Counting a group (`group`): containers are *stale* when they run an older template version or sit
on a draining host. Without stale ones, the count is simply topped up or trimmed (trimming pending
ones first, then unconfirmed placements, then running ones). With stale ones, the group rolls:
new-version containers are added at most `update_step` not-yet-running at a time, and a stale one
is destroyed only when a new one is running in its place — so a rolling update or a drain never
takes a group below its desired count by more than zero, and never above it by more than a step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from galaxy.resman.hosts import HostEntry
from galaxy.resman.model import ALLOCATING, DESTROYING, PENDING, PRIORITY_ORDER, RUNNING, Container, Group
from galaxy.resman.state import Loaded

if TYPE_CHECKING:
    from galaxy.resman.engine import Engine

log = logging.getLogger(__name__)

RETRY_UNPLACEABLE = 1.0     # seconds before a group that fit nowhere is tried again
TRIM_ORDER = {PENDING: 0, ALLOCATING: 1, RUNNING: 2}


def load(engine: Engine, loaded: Loaded, now: float) -> None:
    for name, rec in loaded.groups.items():
        engine.groups[name] = Group.from_record(name, rec)
    for host_id, rec in loaded.hosts.items():
        engine.hosts.load(host_id, rec, now)
    for cid, rec in loaded.containers.items():
        host_id = rec.get("host")
        if not isinstance(host_id, str):
            continue
        entry = engine.hosts.get(host_id) or engine.hosts.load(host_id, {}, now)
        c = Container(cid, rec.get("group", ""), int(rec.get("version", 0)))
        c.host = host_id
        c.state = DESTROYING if rec.get("state") == "destroying" else ALLOCATING
        engine.journal.loaded(cid, rec)
        engine.containers[cid] = c
        group = engine.groups.get(c.group)
        if group is None:
            engine.retire(c, "its group was removed")
            entry.view.assign(cid, c.group)
            continue
        group.containers.add(cid)
        if c.state == ALLOCATING:
            entry.view.debit(cid, c.group, group.ask)   # until the Agent's report says it exists
        else:
            entry.view.assign(cid, c.group)
    engine.touched.update(engine.groups)
    log.info("loaded %d groups, %d containers, %d hosts from state", len(loaded.groups),
             len(loaded.containers), len(loaded.hosts))


def host_lost(engine: Engine, entry: HostEntry) -> None:
    """Reschedule a lost host's containers: their records go, the groups' counts bring new ones."""
    moved = 0
    for cid in list(entry.view.containers):
        c = engine.containers.get(cid)
        if c is None:
            continue
        if c.state != DESTROYING:
            moved += 1
            if engine.settings.trace_containers:
                engine.trace("container", cid, "lost", f"host {entry.id} lost", host=entry.id)
        engine.forget(c)
    entry.create_queue.clear()
    entry.creating = 0
    entry.lost_handled = True
    engine.stats["rescheduled"] += moved
    if moved:
        log.warning("host %s lost: rescheduling %d containers", entry.id, moved)
        engine.trace("host", entry.id, "rescheduled", f"{moved} containers placed elsewhere")


def _stale(engine: Engine, group: Group, c: Container) -> bool:
    return c.version != group.version or c.host in engine.hosts.draining


def group(engine: Engine, g: Group, now: float) -> None:
    live: list[Container] = []
    for cid in g.containers:
        c = engine.containers.get(cid)
        if c is not None and c.live:
            live.append(c)
    stale = [c for c in live if _stale(engine, g, c)]
    target = g.target
    if stale:
        engine.rolling.add(g.name)      # its containers' start-ups move the update on: reconcile then
    else:
        engine.rolling.discard(g.name)
    if not stale:
        missing = target - len(live)
        for _ in range(missing):
            engine.new_container(g)
        if missing < 0:
            for c in sorted(live, key=lambda c: (TRIM_ORDER[c.state], -c.placed_at))[:-missing]:
                engine.retire(c, f"scaled down to {target}")
        return
    fresh = [c for c in live if c not in stale]
    for _ in range(target - len(live)):                  # a gap (lost containers): fill it at once
        fresh.append(engine.new_container(g, "replaces a lost container"))
    starting = sum(1 for c in fresh if c.state != RUNNING)
    room = min(g.update_step - starting, target - len(fresh))
    for _ in range(max(0, room)):
        fresh.append(engine.new_container(g, "rolling replacement"))
    fresh_running = sum(1 for c in fresh if c.state == RUNNING)
    excess = len(stale) + fresh_running - target
    if excess > 0:
        for c in sorted(stale, key=lambda c: (TRIM_ORDER[c.state], -c.placed_at))[:excess]:
            engine.retire(c, "replaced" if c.version == g.version else f"replaced by version {g.version}")
    surplus = len(fresh) - target
    if surplus > 0:
        for c in sorted(fresh, key=lambda c: (TRIM_ORDER[c.state], -c.placed_at))[:surplus]:
            engine.retire(c, f"scaled down to {target}")


def schedule(engine: Engine, now: float) -> None:
    """Place pending containers, whole groups at a time, most important groups first."""
    budget = engine.settings.round_limit
    waiting = [g for g in engine.groups.values() if g.pending and g.not_before <= now]
    waiting.sort(key=lambda g: (PRIORITY_ORDER.get(g.priority, 9), g.created_at))
    for g in waiting:
        if budget <= 0:
            engine.wake()
            break
        ids = list(g.pending)[:budget]
        outcome = engine.scheduler.place(g.group_ask(now), ids)
        for cid, view in outcome.placed:
            c = engine.containers[cid]
            engine.place(c, engine.hosts.entries[view.id], now)
        placed = len(outcome.placed)
        budget -= placed
        if placed:
            engine.stats["placed"] += placed
            if not engine.first_placement:
                engine.first_placement = now
            engine.last_placement = engine.clock()
        if outcome.reason:
            if outcome.reason != g.reason:
                log.info("group %s: %d containers wait: %s", g.name, len(g.pending), outcome.reason)
                engine.trace("group", g.name, "unplaceable", outcome.reason, pending=len(g.pending))
            g.reason = outcome.reason
            g.not_before = now + RETRY_UNPLACEABLE
            for cid in g.pending:
                engine.containers[cid].reason = outcome.reason
        elif g.reason and not g.pending:
            g.reason = ""
