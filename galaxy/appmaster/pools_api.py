"""Pools as the AppMaster leader serves them: `pool.create`, `pool.list`, `pool.delete`.

A pool is declared by a record `state/pools/<name>` — written here by an administrator, or by ResMan
when an Agent registers in a pool nobody declared (as Nomad does). `default` always exists, record or
not. Hosts live in ResMan, jobs here, so a listing merges three sources: the declared pools, ResMan's
`hosts.list` (host counts, and pools hosts report that nobody declared) and the jobs in memory.

Deleting a pool is refused while any host or job is in it. The job count and the delete happen under
the master's lock, the same lock a submit holds while it checks that its pool is declared, so a job
cannot slip into a pool as it goes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from galaxy.appmaster.authority import caller
from galaxy.appmaster.master import Master
from galaxy.errors import Conflict, InvalidInput, NotFound, RetryableError
from galaxy.mesh import Request, Server
from galaxy.protocol.tenancy import TenancyApi
from galaxy.tenancy import DEFAULT_POOL, POOLS, Directory, Principal, check_pool_name, require_admin

log = logging.getLogger(__name__)

HOSTS_DEADLINE = 5.0
MAX_DESCRIPTION = 256


class PoolRoutes:
    def __init__(self, master: Master, directory: Directory) -> None:
        self.m = master
        self.directory = directory

    def register(self, server: Server) -> None:
        api = TenancyApi
        for method, fn in {api.POOL_CREATE: self.create, api.POOL_LIST: self.listing,
                           api.POOL_DELETE: self.delete}.items():
            server.route(method, fn, blocking=True)

    def create(self, req: Request) -> dict[str, Any]:
        who = caller(self.directory, req)
        require_admin(who, "declaring a pool")
        body = req.body if isinstance(req.body, dict) else {}
        pool = check_pool_name(body.get("pool"))
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise InvalidInput(f"expected text of at most {MAX_DESCRIPTION} characters", field="description")
        with self.m.lock:
            if pool == DEFAULT_POOL or self.m.store.get(POOLS, pool) is not None:
                raise Conflict(f"pool {pool!r} exists", field="pool")
            self.m.store.put(POOLS, pool, {"pool": pool, "description": description, "created": time.time(),
                                           "by": who.name})
            self.directory.add_pool(pool)
        rows = self._rows(who)
        return next(row for row in rows if row["pool"] == pool)

    def listing(self, req: Request) -> list[dict[str, Any]]:
        """Administrators see every pool; a user sees the pools where they hold any grant."""
        return self._rows(caller(self.directory, req))

    def delete(self, req: Request) -> dict[str, Any]:
        require_admin(caller(self.directory, req), "deleting a pool")
        body = req.body if isinstance(req.body, dict) else {}
        pool = check_pool_name(body.get("pool"))
        if pool == DEFAULT_POOL:
            raise Conflict("the default pool cannot be deleted", field="pool")
        if self.m.store.get(POOLS, pool) is None:
            raise NotFound(f"pool {pool!r} is not declared", field="pool")
        hosts = (self._hosts(strict=True) or {}).get(pool, 0)   # ResMan must answer: a guess could strand hosts
        with self.m.lock:
            jobs = sum(1 for job in self.m.jobs.values() if job.pool == pool)
            if hosts or jobs:
                raise Conflict(f"pool {pool!r} still holds {hosts} host(s) and {jobs} job(s); move or remove "
                               "them first", field="pool", details={"pool": pool, "hosts": hosts, "jobs": jobs})
            self.m.store.delete(POOLS, pool)
            self.directory.drop_pool(pool)
        return {"pool": pool, "deleted": True}

    # ---- the merged view ---------------------------------------------------------------------------
    def _rows(self, who: Principal) -> list[dict[str, Any]]:
        declared = self.m.store.list(POOLS)
        hosts = self._hosts(strict=False)
        with self.m.lock:
            jobs: dict[str, int] = {}
            for job in self.m.jobs.values():
                if not job.removing:
                    jobs[job.pool] = jobs.get(job.pool, 0) + 1
        names = set(declared) | {DEFAULT_POOL} | set(hosts or {}) | set(jobs)
        if not who.is_admin:
            names &= set(who.user.grants) if who.user is not None else set()
        rows = []
        for name in sorted(names):
            record = declared.get(name) or {}
            rows.append({"pool": name, "description": str(record.get("description") or ""),
                         "hosts": None if hosts is None else hosts.get(name, 0), "jobs": jobs.get(name, 0),
                         "declared": name == DEFAULT_POOL or name in declared})
        return rows

    def _hosts(self, *, strict: bool) -> dict[str, int] | None:
        """Hosts per pool from ResMan; None when ResMan cannot answer and `strict` is off."""
        try:
            listed = self.m.resman.call("hosts.list", {}, deadline=HOSTS_DEADLINE)
        except RetryableError as err:
            if strict:
                raise
            log.warning("pool.list without host counts: %s", err)
            return None
        counts: dict[str, int] = {}
        for host in listed if isinstance(listed, list) else []:
            if isinstance(host, dict) and isinstance(host.get("pool"), str):
                counts[host["pool"]] = counts.get(host["pool"], 0) + 1
        return counts


__all__ = ["PoolRoutes"]
