"""The canned AppMaster's multi-tenancy methods: users, grants, quotas, usage, pools and pool policies
in memory.

Built from the real records and checks (``galaxy.tenancy``: ``User``, ``Quota``, ``job_demand``,
``check_quota``, ``PoolPolicy``, ``check_policy``), so what the SDK and CLI are shown — a record, a refused quota with its figures — is
what a real AppMaster would send. A user made here is admitted to the replicas' KeyRing at once, so a
test can log in with the key file ``galaxy user create`` wrote. The canned cluster's own user
(``alice``) is an administrator; anyone else holds only what they were granted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from galaxy.errors import Conflict, NotFound, PermissionDenied
from galaxy.mesh import KeyRing
from galaxy.spec import parse_job
from galaxy.tenancy.model import DEFAULT_POOL, Quota, User, check_pool_name, check_user_name
from galaxy.tenancy.policy import PoolPolicy, check_policy, policy_record, policy_reply
from galaxy.tenancy.quota import Demand, check_quota, job_demand, total

HOUR = 3600.0


class TenancyState:
    """Users and declared pools, shared by every replica; ``jobs`` is the canned Model's job table."""

    def __init__(self, admin: str, admin_key: str, keyring: KeyRing, jobs: dict[str, dict[str, Any]]) -> None:
        self.keyring = keyring
        self.jobs = jobs
        self.users: dict[str, User] = {admin: User(admin, admin_key, admin=True, created=time.time() - 86400)}
        self.pools: dict[str, str] = {DEFAULT_POOL: "where hosts go unless told otherwise"}
        self.usage: dict[str, Any] | None = None   # a test sets the report user.usage answers with
        self.policies: dict[str, dict[str, Any]] = {}   # pool -> stored policy record

    # ---- who may --------------------------------------------------------------------------------

    def caller(self, key_name: str | None) -> User:
        user = self.users.get(key_name or "")
        if user is None:
            raise PermissionDenied(f"{key_name!r} is not a user")
        return user

    def admin(self, key_name: str | None) -> User:
        user = self.caller(key_name)
        if not user.admin:
            raise PermissionDenied(f"user {user.name!r} is not an administrator")
        return user

    def target(self, body: dict[str, Any], key_name: str | None) -> User:
        """The user a read names: oneself without ``user``, anyone for an administrator."""
        me = self.caller(key_name)
        name = body.get("user", me.name)
        if name != me.name and not me.admin:
            raise PermissionDenied(f"user {me.name!r} may read only their own record")
        return self.user(name)

    def user(self, name: Any) -> User:
        user = self.users.get(check_user_name(name))
        if user is None:
            raise NotFound(f"no user {name!r}", field="user")
        return user

    # ---- quota ----------------------------------------------------------------------------------

    def used(self, name: str, but: str | None = None) -> Demand:
        return total(job_demand(parse_job(job["spec"]), job["replicas"]) for job in self.jobs.values()
                     if job["owner"] == name and job["job"] != but)

    def check_submit(self, key_name: str | None, spec_body: Any) -> None:
        """What the AppMaster does before a submit: a declared pool, its policy, then the owner's quota."""
        spec = parse_job(spec_body)
        if spec.pool not in self.pools:
            raise NotFound(f"no pool {spec.pool!r}: an administrator declares it with `galaxy pool create`",
                           field="pool")
        user = self.caller(key_name)
        check_policy(spec.pool, PoolPolicy.from_dict(self.policies.get(spec.pool)), spec, user.name)
        check_quota(user.name, user.quota, self.used(user.name), job_demand(spec))

    def quota_reply(self, user: User) -> dict[str, Any]:
        return {"user": user.name, "limit": user.quota.to_dict(), "used": self.used(user.name).to_dict()}

    # ---- the methods ----------------------------------------------------------------------------

    def routes(self) -> dict[str, Callable[[dict[str, Any], str | None], Any]]:
        return {"user.whoami": self.whoami, "user.create": self.user_create, "user.remove": self.user_remove,
                "user.list": self.user_list, "user.show": self.user_show, "user.grant": self.user_grant,
                "user.revoke": self.user_revoke, "quota.set": self.quota_set, "quota.show": self.quota_show,
                "user.usage": self.user_usage, "pool.create": self.pool_create, "pool.list": self.pool_list,
                "pool.delete": self.pool_delete, "pool.policy.show": self.pool_policy_show,
                "pool.policy.set": self.pool_policy_set}

    def whoami(self, body: dict[str, Any], key_name: str | None) -> Any:
        me = self.caller(key_name)
        return {"user": me.name, "kind": "user", "admin": me.admin, "grants": me.to_dict()["grants"]}

    def user_create(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        user = User.new(body.get("user"), body.get("key"), admin=bool(body.get("admin")))  # type: ignore[arg-type]
        if user.name in self.users:
            raise Conflict(f"user {user.name!r} exists", field="user")
        self.users[user.name] = user
        self.keyring.add(user.key, user.name)
        return user.to_dict()

    def user_remove(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        user = self.users.pop(self.user(body.get("user")).name)
        self.keyring.remove(user.key)
        return {"user": user.name, "removed": True}

    def user_list(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        return [user.to_dict() for _, user in sorted(self.users.items())]

    def user_show(self, body: dict[str, Any], key_name: str | None) -> Any:
        user = self.target(body, key_name)
        return {**user.to_dict(), "used": self.used(user.name).to_dict()}

    def user_grant(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        user = self.user(body.get("user")).granted(check_pool_name(body.get("pool")),
                                                   list(body.get("permissions") or []))
        self.users[user.name] = user
        return user.to_dict()

    def user_revoke(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        user = self.user(body.get("user")).revoked(check_pool_name(body.get("pool")), body.get("permissions"))
        self.users[user.name] = user
        return user.to_dict()

    def quota_set(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        user = self.user(body.get("user"))
        quota = user.quota.merged(Quota.from_dict(body.get("quota")), frozenset(body.get("clear") or ()))
        self.users[user.name] = user = user.with_quota(quota)
        return self.quota_reply(user)

    def quota_show(self, body: dict[str, Any], key_name: str | None) -> Any:
        return self.quota_reply(self.target(body, key_name))

    def user_usage(self, body: dict[str, Any], key_name: str | None) -> Any:
        user = self.target(body, key_name)
        until = time.time()
        since = float(body.get("since", until - 24 * HOUR))
        report = self.usage or {"pools": {}, "total": {"cpu_used": 0.0, "cpu_reserved": 0.0, "memory_used": 0.0,
                                                       "memory_reserved": 0.0, "disk_reserved": {}}}
        pools = report["pools"]
        if body.get("pool") is not None:
            pools = {p: f for p, f in pools.items() if p == body["pool"]}
        return {**report, "user": user.name, "since": since, "until": until, "pools": pools}

    def pool_create(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        pool = check_pool_name(body.get("pool"))
        if pool in self.pools:
            raise Conflict(f"pool {pool!r} exists", field="pool")
        self.pools[pool] = str(body.get("description") or "")
        return self._pool_row(pool)

    def pool_list(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.caller(key_name)
        return [self._pool_row(pool) for pool in sorted(self.pools)]

    def pool_delete(self, body: dict[str, Any], key_name: str | None) -> Any:
        self.admin(key_name)
        pool = check_pool_name(body.get("pool"))
        if pool not in self.pools:
            raise NotFound(f"no pool {pool!r}", field="pool")
        row = self._pool_row(pool)
        if pool == DEFAULT_POOL or row["jobs"]:
            raise Conflict(f"pool {pool!r} holds {row['hosts']} hosts and {row['jobs']} jobs" if row["jobs"] else
                           "the default pool cannot be deleted", field="pool",
                           details={"hosts": row["hosts"], "jobs": row["jobs"]})
        del self.pools[pool]
        self.policies.pop(pool, None)
        return {"pool": pool, "deleted": True}

    def pool_policy_show(self, body: dict[str, Any], key_name: str | None) -> Any:
        me = self.caller(key_name)
        pool = check_pool_name(body.get("pool"))
        if not me.admin and pool not in me.grants:
            raise PermissionDenied(f"user {me.name!r} holds no grant on pool {pool!r}", field="pool")
        if pool not in self.pools:
            raise NotFound(f"pool {pool!r} is not declared", field="pool")
        return policy_reply(pool, self.policies.get(pool))

    def pool_policy_set(self, body: dict[str, Any], key_name: str | None) -> Any:
        me = self.admin(key_name)
        pool = check_pool_name(body.get("pool"))
        policy = PoolPolicy.from_dict(body.get("policy") or {})
        if pool not in self.pools:
            raise NotFound(f"pool {pool!r} is not declared", field="pool")
        self.policies[pool] = policy_record(pool, policy, me.name, time.time())
        return policy_reply(pool, self.policies[pool])

    def _pool_row(self, pool: str) -> dict[str, Any]:
        jobs = sum(job["pool"] == pool for job in self.jobs.values())
        return {"pool": pool, "description": self.pools.get(pool, ""), "hosts": 0, "jobs": jobs,
                "declared": pool in self.pools}
