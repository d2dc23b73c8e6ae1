"""The container-group API (AppMaster and administrators): create, update, scale, remove, list, show,
extra and release. Each call validates its body, writes the group record to ZooKeeper (so an
answered call survives a failover), changes the model and wakes the loop; the loop does the placing
and destroying. A create writes its new record *outside* the engine lock — nothing else can see the
group until it is in the model — so many creates (one per job submitted) overlap their ZooKeeper
round trips instead of queueing behind each other and the loop; the name is held meanwhile.

Only `appmaster*` keys and administrators reach these handlers (`service.serve` checks the caller
first). Users act on their jobs at the AppMaster, which checks their grants, ownership and quota
before it asks ResMan for anything; a group's `owner` is whom its usage is billed to.
"""

from __future__ import annotations

import time
from typing import Any

from galaxy.errors import Conflict, InvalidInput, NotFound
from galaxy.protocol.resman import (
    MAX_EXTRA,
    GroupSpec,
    body_map,
    group_name,
    group_update,
    want_int,
    want_str,
)
from galaxy.resman.engine import Engine
from galaxy.resman.model import DESTROYING, Group
from galaxy.resman.state import delete_group, put_group

CREATE_WAIT = 30.0
"""Seconds a create waits for another create of the same group (a retry of it) to finish."""


class GroupApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _group(self, name: str) -> Group:
        group = self.engine.groups.get(name)
        if group is None:
            raise NotFound(f"no group {name!r}", field="group")
        return group

    def _changed(self, group: Group, event: str, reason: str = "", **fields: Any) -> None:
        e = self.engine
        e.touched.add(group.name)
        e.trace("group", group.name, event, reason, **fields)
        e.wake()

    def create(self, body: Any) -> dict[str, Any]:
        spec = GroupSpec.from_wire(body)
        e = self.engine
        deadline = time.monotonic() + CREATE_WAIT
        while True:
            with e.lock:
                existing = e.groups.get(spec.group)
                if existing is not None:
                    if existing.same_spec(spec):
                        return {"group": existing.name, "version": existing.version}
                    raise Conflict(f"group {spec.group!r} exists with another spec; use group.update",
                                   field="group")
                if spec.group not in e.creating:
                    group = Group.from_spec(spec, e.clock())
                    e.creating.add(group.name)
                    break
            # Another call is writing this group: most often the caller's own earlier try, which timed
            # out and was retried. Its outcome decides this answer (same spec: the same group).
            if time.monotonic() > deadline:
                raise Conflict(f"group {spec.group!r} is being created by another call", field="group")
            time.sleep(0.01)
        try:
            put_group(e.store, group)
        except BaseException:
            with e.lock:
                e.creating.discard(group.name)
            raise
        with e.lock:
            e.creating.discard(group.name)
            e.groups[group.name] = group
            self._changed(group, "created", "", replicas=group.replicas, pool=group.pool)
        return {"group": group.name, "version": group.version}

    def update(self, body: Any) -> dict[str, Any]:
        name, changes = group_update(body)
        e = self.engine
        with e.lock:
            group = self._group(name)
            new = Group.from_record(name, group.record())
            if "container" in changes and changes["container"] != group.template:
                new.set_template(changes["container"])
                new.version = group.version + 1
            for key in ("replicas", "labels", "max_per_host", "update_step"):
                if key in changes:
                    setattr(new, key, changes[key])
            if new.record() == group.record():
                return {"group": name, "version": group.version}
            put_group(e.store, new)
            if new.version != group.version:
                group.set_template(new.template)
                group.version = new.version
            group.replicas, group.labels = new.replicas, new.labels
            group.max_per_host, group.update_step = new.max_per_host, new.update_step
            group.not_before = 0.0
            self._changed(group, "updated", "", version=group.version, replicas=group.replicas)
            return {"group": name, "version": group.version}

    def scale(self, body: Any) -> dict[str, Any]:
        b = body_map(body)
        name = group_name(b)
        replicas = want_int(b, "replicas", 0, 100_000)
        e = self.engine
        with e.lock:
            group = self._group(name)
            if group.replicas != replicas:
                old = group.replicas
                group.replicas = replicas
                try:
                    put_group(e.store, group)
                except BaseException:
                    group.replicas = old
                    raise
                self._changed(group, "scaled", f"{old} -> {replicas}", replicas=replicas)
            return {"group": name, "replicas": group.replicas}

    def remove(self, body: Any) -> dict[str, Any]:
        name = group_name(body_map(body))
        e = self.engine
        with e.lock:
            group = e.groups.get(name)
            if group is None:
                if name in e.creating:
                    raise Conflict(f"group {name!r} is being created; remove it once that call answered",
                                   field="group")
                return {"group": name, "removed": False}
            delete_group(e.store, name)
            del e.groups[name]
            for cid in list(group.containers):
                c = e.containers.get(cid)
                if c is not None:
                    e.retire(c, "its group was removed")
            e.trace("group", name, "removed", "", containers=len(group.containers))
            e.wake()
            return {"group": name, "removed": True}

    def list(self, body: Any) -> list[dict[str, Any]]:
        b = body_map(body)
        pool = b.get("pool")
        if pool is not None and not isinstance(pool, str):
            raise InvalidInput("expected a pool name", field="pool")
        e = self.engine
        with e.lock:
            return [{**g.summary(), **e.counts(g)} for _, g in sorted(e.groups.items())
                    if pool is None or g.pool == pool]

    def show(self, body: Any) -> dict[str, Any]:
        name = group_name(body_map(body))
        e = self.engine
        with e.lock:
            group = self._group(name)
            containers = []
            for cid in sorted(group.containers):
                c = e.containers.get(cid)
                if c is None:
                    continue
                entry = e.hosts.get(c.host) if c.host else None
                containers.append({"id": c.id, "host": c.host, "address": entry.view.address if entry else None,
                                   "state": c.state, "ports": dict(c.ports), "version": c.version,
                                   "exit": c.exit, "reason": c.reason})
            return {**group.summary(), **e.counts(group), "priority": group.priority,
                    "max_per_host": group.max_per_host, "labels": list(group.labels),
                    "update_step": group.update_step, "extra": group.extra, "avoid_hosts": list(group.avoid_hosts),
                    "container": group.template, "reason": group.reason, "containers": containers}

    def extra(self, body: Any) -> dict[str, Any]:
        b = body_map(body)
        name = group_name(b)
        count = want_int(b, "count", 0, MAX_EXTRA)
        avoid = b.get("avoid_hosts", [])
        if not isinstance(avoid, list) or not all(isinstance(h, str) and h for h in avoid):
            raise InvalidInput("expected a list of host ids", field="avoid_hosts")
        e = self.engine
        with e.lock:
            group = self._group(name)
            count = min(count, max(1, group.replicas))
            old = (group.extra, group.avoid_hosts)
            group.extra, group.avoid_hosts = count, sorted(set(avoid))
            try:
                put_group(e.store, group)
            except BaseException:
                group.extra, group.avoid_hosts = old
                raise
            self._changed(group, "extra", f"{count} extra away from {', '.join(avoid) or 'nothing'}")
            return {"group": name, "extra": group.extra}

    def release(self, body: Any) -> dict[str, Any]:
        b = body_map(body)
        name = group_name(b)
        cid = want_str(b, "container")
        e = self.engine
        with e.lock:
            group = self._group(name)
            c = e.containers.get(cid)
            if c is None or c.group != name:
                raise NotFound(f"no container {cid!r} in group {name!r}", field="container")
            if group.extra > 0:
                group.extra -= 1
                if group.extra == 0:
                    group.avoid_hosts = []
                put_group(e.store, group)
            if c.state != DESTROYING:
                e.retire(c, "released by the AppMaster")
            self._changed(group, "released", cid)
            return {"group": name, "container": cid, "extra": group.extra}
