"""Pools as the AppMaster leader serves them: `pool.create`, `pool.list`, `pool.delete`, and each
pool's policy: `pool.policy.show`, `pool.policy.set` (galaxy.tenancy.policy).

A pool is declared by a record `state/pools/<name>` — written here by an administrator, or by ResMan
when an Agent registers in a pool nobody declared (as Nomad does). `default` always exists, record or
not. Hosts live in ResMan, jobs here, so a listing merges three sources: the declared pools, ResMan's
`hosts.list` (host counts, and pools hosts report that nobody declared) and the jobs in memory.

Deleting a pool is refused while any host or job is in it. The job count and the delete happen under
the master's lock, the same lock a submit holds while it checks that its pool is declared, so a job
cannot slip into a pool as it goes. The pool's policy goes with it.

A policy is set by administrators only — it decides what the pool's hosts give up to jobs (root, host
directories, capabilities), which is the cluster's call, not a pool's host.admin's — and replaced
whole by each `pool.policy.set`: one fenced write of `state/policies/<pool>`, applied to this
daemon's Directory before the answer, so the next submit here is checked against it. Anyone with a
grant on the pool may read it (they need to know what their jobs may ask).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from galaxy.appmaster.authority import caller
from galaxy.appmaster.master import Master
from galaxy.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RetryableError
from galaxy.mesh import Request, Server
from galaxy.protocol.tenancy import TenancyApi
from galaxy.tenancy import (
    DEFAULT_POOL,
    POLICIES,
    POOLS,
    Directory,
    PoolPolicy,
    Principal,
    check_pool_name,
    require_admin,
)
from galaxy.tenancy.policy import policy_record, policy_reply

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
                           api.POOL_DELETE: self.delete, api.POOL_POLICY_SHOW: self.policy_show,
                           api.POOL_POLICY_SET: self.policy_set}.items():
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
            with self.m.store.batch() as batch:      # one write: no policy outlives its pool
                batch.delete(POOLS, pool)
                batch.delete(POLICIES, pool)
            self.directory.drop_pool(pool)
        return {"pool": pool, "deleted": True}

    # ---- policy ------------------------------------------------------------------------------------
    def policy_show(self, req: Request) -> dict[str, Any]:
        """The pool's policy; for administrators and anyone holding a grant on the pool."""
        who = caller(self.directory, req)
        pool = check_pool_name(_body(req).get("pool"))
        if not who.is_admin and (who.user is None or pool not in who.user.grants):
            raise PermissionDenied(f"user {who.name!r} holds no grant on pool {pool!r}", field="pool")
        self._need_declared(pool)
        return policy_reply(pool, self.m.store.get(POLICIES, pool))

    def policy_set(self, req: Request) -> dict[str, Any]:
        """Replace the pool's policy whole (every rule not given is empty: allows nothing)."""
        who = caller(self.directory, req)
        require_admin(who, "setting a pool policy")
        body = _body(req)
        pool = check_pool_name(body.get("pool"))
        policy = PoolPolicy.from_dict(body.get("policy") or {})
        record = policy_record(pool, policy, who.name, time.time())
        with self.m.lock:             # the lock a pool delete holds: no policy outlives its pool
            self._need_declared(pool)
            self.m.store.put(POLICIES, pool, record)
            self.directory.apply_policy(pool, policy)
        return policy_reply(pool, record)

    def _need_declared(self, pool: str) -> None:
        if pool != DEFAULT_POOL and self.m.store.get(POOLS, pool) is None:
            raise NotFound(f"pool {pool!r} is not declared (an administrator declares it with pool.create)",
                           field="pool")

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


def _body(req: Request) -> dict[str, Any]:
    body = req.body if req.body is not None else {}
    if not isinstance(body, dict):
        raise InvalidInput("expected a mapping", field="body")
    return body


__all__ = ["PoolRoutes"]
