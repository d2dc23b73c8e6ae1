"""Machine management and safe mode: list hosts, offline/online/drain, labels, pool moves, and
entering or leaving safe mode by hand. Every change is written to `state/hosts` before it is
answered, so it wins over the Agent's config and survives a failover.

Authority is checked here, under the engine lock, against the pool the host is in at that moment
(a host moved between the check and the change could otherwise be changed by someone with no
authority over its new pool): host changes need `host.admin` on the host's pool (a move: on both
pools), safe mode needs an administrator. Every host a call names is checked before anything
changes, so a denial for one host leaves all of them as they were.
"""

from __future__ import annotations

from typing import Any

from galaxy.errors import InvalidInput, NotFound, PermissionDenied
from galaxy.protocol.resman import POOL, body_map, want_int, want_labels, want_str
from galaxy.resman.engine import Engine
from galaxy.resman.hosts import HostEntry
from galaxy.resman.scheduler import DRAINING, OFFLINE, ONLINE
from galaxy.resman.state import put_hosts
from galaxy.tenancy import APPMASTER, HOST_ADMIN, Directory, Principal, require, require_admin
from galaxy.trace import RING

MAX_HOSTS_PER_CALL = 10_000


def want_hosts(body: dict[str, Any]) -> tuple[list[str], bool]:
    """The hosts a call names (``host``: one id, or ``hosts``: a list) and whether it named one."""
    if "hosts" in body:
        hosts = body["hosts"]
        if not isinstance(hosts, list) or not hosts or len(hosts) > MAX_HOSTS_PER_CALL:
            raise InvalidInput(f"expected a list of 1..{MAX_HOSTS_PER_CALL} host ids", field="hosts")
        for i, host in enumerate(hosts):
            if not isinstance(host, str) or not host:
                raise InvalidInput(f"expected a host id, got {host!r:.60}", field=f"hosts[{i}]")
        return list(dict.fromkeys(hosts)), False
    return [want_str(body, "host")], True


class AdminApi:
    def __init__(self, engine: Engine, directory: Directory) -> None:
        self.engine = engine
        self.directory = directory

    def hosts(self, body: Any, who: Principal) -> list[dict[str, Any]]:
        """Every host for the AppMaster and administrators; a user sees the pools they hold a grant in."""
        b = body_map(body)
        pool = b.get("pool")
        if pool is not None and not isinstance(pool, str):
            raise InvalidInput("expected a pool name", field="pool")
        if not (who.kind == APPMASTER or who.is_user):
            raise PermissionDenied(f"hosts.list is for the AppMaster, administrators and users; key {who.name!r} "
                                   f"({who.kind}) is none of them", field="key")
        visible = None if who.kind == APPMASTER or who.is_admin else \
            frozenset(p for p, perms in (who.user.grants.items() if who.user else ()) if perms)
        with self.engine.lock:
            listing = self.engine.hosts.listing(pool)
        return listing if visible is None else [h for h in listing if h["pool"] in visible]

    def host_trace(self, body: Any, who: Principal) -> list[dict[str, Any]]:
        """A host's recorded events for whoever may list it (``trace/`` in ZooKeeper is readable by
        the daemons only, so clients ask here)."""
        b = body_map(body)
        host_id = want_str(b, "host")
        limit = want_int(b, "limit", 1, RING, RING)
        with self.engine.lock:
            self.engine.hosts.need(host_id)                  # NotFound for a host nobody knows
        if host_id not in {h["id"] for h in self.hosts({}, who)}:
            raise PermissionDenied(f"host {host_id!r} is in a pool where key {who.name!r} holds no grant",
                                   field="host")
        tracer = self.engine.tracer
        return [] if tracer is None else tracer.read("host", host_id, limit)

    def _entries(self, host_ids: list[str], who: Principal) -> list[HostEntry]:
        """The hosts, each checked for host.admin on its pool (caller holds the engine lock)."""
        entries = [self.engine.hosts.need(h) for h in host_ids]
        for entry in entries:
            require(who, HOST_ADMIN, entry.view.pool)
        return entries

    def _save(self, entries: list[HostEntry], event: str, reason: str) -> None:
        """Write the hosts' records as one fenced batch, then tell the loop (caller holds the lock)."""
        e = self.engine
        put_hosts(e.store, {entry.id: entry.record() for entry in entries})
        for entry in entries:
            entry.persisted = True
            e.trace("host", entry.id, event, reason)
            e.touched.update(entry.view.group_count)
        e.touched.update(g.name for g in e.groups.values() if g.pending)
        e.wake()

    def set_admin(self, body: Any, admin: str, who: Principal) -> dict[str, Any]:
        host_id = want_str(body_map(body), "host")
        e = self.engine
        with e.lock:
            (entry,) = self._entries([host_id], who)
            old = entry.view.admin
            if old != admin:
                e.hosts.set_admin(host_id, admin)
                try:
                    self._save([entry], admin, f"{old} -> {admin}")
                except BaseException:
                    e.hosts.set_admin(host_id, old)
                    raise
            return {"host": host_id, "admin": admin}

    def offline(self, body: Any, who: Principal) -> dict[str, Any]:
        return self.set_admin(body, OFFLINE, who)

    def online(self, body: Any, who: Principal) -> dict[str, Any]:
        return self.set_admin(body, ONLINE, who)

    def drain(self, body: Any, who: Principal) -> dict[str, Any]:
        return self.set_admin(body, DRAINING, who)

    def label(self, body: Any, who: Principal, *, remove: bool = False) -> dict[str, Any]:
        """Add (or remove) several labels on several hosts in one call, all or nothing."""
        b = body_map(body)
        host_ids, single = want_hosts(b)
        labels = want_labels(b)
        e = self.engine
        with e.lock:
            entries = self._entries(host_ids, who)
            before = [(entry, set(entry.view.labels), entry.labels_override) for entry in entries]
            for entry in entries:
                e.hosts.set_labels(entry.id, [] if remove else labels, labels if remove else [])
            try:
                self._save(entries, "unlabeled" if remove else "labeled", ", ".join(labels))
            except BaseException:
                for entry, labels_before, override in before:
                    entry.labels_override = override
                    e.index.update(entry.view, labels=labels_before)
                raise
            done = [{"host": entry.id, "labels": sorted(entry.view.labels)} for entry in entries]
        return done[0] if single else {"hosts": done}

    def unlabel(self, body: Any, who: Principal) -> dict[str, Any]:
        return self.label(body, who, remove=True)

    def move(self, body: Any, who: Principal) -> dict[str, Any]:
        """Move a host to a declared pool; needs host.admin on the pool it leaves and the one it joins."""
        b = body_map(body)
        host_id = want_str(b, "host")
        pool = want_str(b, "pool", POOL)
        e = self.engine
        with e.lock:
            (entry,) = self._entries([host_id], who)
            require(who, HOST_ADMIN, pool)
            if not self.directory.has_pool(pool):
                raise NotFound(f"no pool {pool!r}: an administrator declares it with `galaxy pool create`",
                               field="pool")
            before = (entry.view.pool, entry.pool_override)
            e.hosts.move(host_id, pool)
            try:
                self._save([entry], "moved", f"{before[0]} -> {pool}")
            except BaseException:
                entry.pool_override = before[1]
                e.index.update(entry.view, pool=before[0])
                raise
            return {"host": host_id, "pool": pool}

    # ---- safe mode ----------------------------------------------------------------------------
    def safemode_status(self, body: Any, who: Principal) -> dict[str, Any]:
        require_admin(who, "safemode.status")
        return self._status()

    def _status(self) -> dict[str, Any]:
        e = self.engine
        with e.lock:
            return e.safe.status(len(e.hosts), e.reported_count())

    def safemode_enter(self, body: Any, who: Principal) -> dict[str, Any]:
        require_admin(who, "safemode.enter")
        e = self.engine
        with e.lock:
            e.safe.enter()
            e.trace("host", "_resman", "safe_mode_entered", f"by {who.name}")
        return self._status()

    def safemode_leave(self, body: Any, who: Principal) -> dict[str, Any]:
        require_admin(who, "safemode.leave")
        e = self.engine
        with e.lock:
            e.safe.leave()
            e.trace("host", "_resman", "safe_mode_left", f"by {who.name}")
            e.touched.update(e.groups)
            e.wake()
        return self._status()
