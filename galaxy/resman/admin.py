"""Machine management and safe mode for administrators: list hosts, offline/online/drain, labels,
pool moves, and entering or leaving safe mode by hand. Every change is written to `state/hosts`
before it is answered, so it wins over the Agent's config and survives a failover."""

from __future__ import annotations

from typing import Any

from galaxy.errors import InvalidInput
from galaxy.protocol.resman import POOL, body_map, want_labels, want_str
from galaxy.resman.engine import Engine
from galaxy.resman.hosts import HostEntry
from galaxy.resman.scheduler import DRAINING, OFFLINE, ONLINE
from galaxy.resman.state import put_host


class AdminApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def hosts(self, body: Any) -> list[dict[str, Any]]:
        b = body_map(body)
        pool = b.get("pool")
        if pool is not None and not isinstance(pool, str):
            raise InvalidInput("expected a pool name", field="pool")
        with self.engine.lock:
            return self.engine.hosts.listing(pool)

    def _save(self, entry: HostEntry, event: str, reason: str) -> None:
        e = self.engine
        put_host(e.store, entry.id, entry.record())
        entry.persisted = True
        e.trace("host", entry.id, event, reason)
        e.touched.update(entry.view.group_count)
        e.touched.update(g.name for g in e.groups.values() if g.pending)
        e.wake()

    def set_admin(self, body: Any, admin: str) -> dict[str, Any]:
        host_id = want_str(body_map(body), "host")
        e = self.engine
        with e.lock:
            entry = e.hosts.need(host_id)
            old = entry.view.admin
            if old != admin:
                e.hosts.set_admin(host_id, admin)
                try:
                    self._save(entry, admin, f"{old} -> {admin}")
                except BaseException:
                    entry.view.admin = old
                    raise
            return {"host": host_id, "admin": admin}

    def offline(self, body: Any) -> dict[str, Any]:
        return self.set_admin(body, OFFLINE)

    def online(self, body: Any) -> dict[str, Any]:
        return self.set_admin(body, ONLINE)

    def drain(self, body: Any) -> dict[str, Any]:
        return self.set_admin(body, DRAINING)

    def label(self, body: Any, *, remove: bool = False) -> dict[str, Any]:
        b = body_map(body)
        host_id = want_str(b, "host")
        labels = want_labels(b)
        e = self.engine
        with e.lock:
            entry = e.hosts.need(host_id)
            before = (set(entry.view.labels), entry.labels_override)
            e.hosts.set_labels(host_id, [] if remove else labels, labels if remove else [])
            try:
                self._save(entry, "unlabeled" if remove else "labeled", ", ".join(labels))
            except BaseException:
                entry.labels_override = before[1]
                e.index.update(entry.view, labels=before[0])
                raise
            return {"host": host_id, "labels": sorted(entry.view.labels)}

    def unlabel(self, body: Any) -> dict[str, Any]:
        return self.label(body, remove=True)

    def move(self, body: Any) -> dict[str, Any]:
        b = body_map(body)
        host_id = want_str(b, "host")
        pool = want_str(b, "pool", POOL)
        e = self.engine
        with e.lock:
            entry = e.hosts.need(host_id)
            before = (entry.view.pool, entry.pool_override)
            e.hosts.move(host_id, pool)
            try:
                self._save(entry, "moved", f"{before[0]} -> {pool}")
            except BaseException:
                entry.pool_override = before[1]
                e.index.update(entry.view, pool=before[0])
                raise
            return {"host": host_id, "pool": pool}

    # ---- safe mode ----------------------------------------------------------------------------
    def safemode_status(self, body: Any = None) -> dict[str, Any]:
        e = self.engine
        with e.lock:
            return e.safe.status(len(e.hosts), e.reported_count())

    def safemode_enter(self, body: Any = None) -> dict[str, Any]:
        e = self.engine
        with e.lock:
            e.safe.enter()
            e.trace("host", "_resman", "safe_mode_entered", "by an administrator")
        return self.safemode_status()

    def safemode_leave(self, body: Any = None) -> dict[str, Any]:
        e = self.engine
        with e.lock:
            e.safe.leave()
            e.trace("host", "_resman", "safe_mode_left", "by an administrator")
            e.touched.update(e.groups)
            e.wake()
        return self.safemode_status()
