"""The tenancy API (galaxy.protocol.tenancy) as the AppMaster leader serves it: users, grants, quotas,
whoami and usage. Pools are in galaxy.appmaster.pools_api.

Users meet Galaxy here, so users are made and removed here. Every change is one fenced, synchronous
write of the user's whole record (`state/users/<name>`) through the leader's StateStore, then applied
to this daemon's Directory before the answer goes out: a removed user's key leaves the KeyRing before
the administrator hears "removed", so that user's very next message — on a connection that is already
open — gets no answer at all. ResMan and the standbys follow by watch.

Read-modify-write of a record happens under one lock, so two grants racing on the same user cannot
lose one another.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from galaxy.appmaster.authority import caller
from galaxy.appmaster.master import Master
from galaxy.appmaster.pools_api import PoolRoutes
from galaxy.appmaster.quotas import used_by
from galaxy.errors import Conflict, InvalidInput, NotFound
from galaxy.mesh import Request, Server
from galaxy.mesh.keys import check_key
from galaxy.protocol.tenancy import TenancyApi
from galaxy.tenancy import (
    USERS,
    Directory,
    Principal,
    Quota,
    User,
    check_permission,
    check_pool_name,
    check_user_name,
    require_admin,
)

DEFAULT_USAGE_WINDOW = 24 * 3600.0       # `user.usage` without `since`: the last day
QUOTA_FIELDS = ("cpu", "memory", "jobs", "replicas")


class TenancyRoutes:
    """Handlers of every tenancy method; `register` puts them on the leader's mesh server."""

    def __init__(self, master: Master, directory: Directory) -> None:
        self.m = master
        self.directory = directory
        self._lock = threading.Lock()
        self.pools = PoolRoutes(master, directory)

    def register(self, server: Server) -> None:
        api = TenancyApi
        server.route(api.WHOAMI, self.whoami)     # memory only: fine on the I/O thread
        for method, fn in {api.USER_CREATE: self.user_create, api.USER_REMOVE: self.user_remove,
                           api.USER_LIST: self.user_list, api.USER_SHOW: self.user_show,
                           api.USER_GRANT: self.user_grant, api.USER_REVOKE: self.user_revoke,
                           api.QUOTA_SET: self.quota_set, api.QUOTA_SHOW: self.quota_show,
                           api.USAGE: self.usage}.items():
            server.route(method, fn, blocking=True)
        self.pools.register(server)

    # ---- who ---------------------------------------------------------------------------------------
    def whoami(self, req: Request) -> dict[str, Any]:
        """Any key may ask who it is (also a component's, which has no grants)."""
        who = self.directory.principal(req.key_name)
        grants = who.user.grants if who.user is not None else {}
        return {"user": who.name, "kind": who.kind, "admin": who.is_admin,
                "grants": {pool: sorted(perms) for pool, perms in sorted(grants.items())}}

    def _subject(self, who: Principal, body: dict[str, Any]) -> str:
        """The user a self-or-admin call is about: the body's `user`, or the caller themself."""
        name = body.get("user")
        if name is None:
            if who.user is None:
                raise InvalidInput(f"key {who.name!r} is not a user; name one", field="user")
            return who.name
        name = check_user_name(name, "user")
        if name != who.name:
            require_admin(who, f"reading user {name!r}")
        return name

    # ---- users -------------------------------------------------------------------------------------
    def user_create(self, req: Request) -> dict[str, Any]:
        require_admin(caller(self.directory, req), "creating a user")
        body = _body(req)
        name = check_user_name(body.get("user"), "user")
        raw_key = body.get("key")
        key = check_key(raw_key if isinstance(raw_key, str) else repr(raw_key), "key")
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise InvalidInput(f"expected true or false, got {admin!r}", field="admin")
        with self._lock:
            if self.m.store.get(USERS, name) is not None:
                raise Conflict(f"user {name!r} exists", field="user")
            holder = self.m.keyring.name_of(key) or next(
                (u.name for u in self.directory.users().values() if u.key == key), None)
            if holder is not None:
                raise Conflict(f"that key already belongs to {holder!r}; each user needs a key of their own",
                               field="key")
            user = User.new(name, key, admin=admin)
            self._save(user)
        return user.to_dict()

    def user_remove(self, req: Request) -> dict[str, Any]:
        require_admin(caller(self.directory, req), "removing a user")
        name = check_user_name(_body(req).get("user"), "user")
        with self._lock:
            self._load(name)
            self.m.store.delete(USERS, name)
            self.directory.forget_user(name)     # the key is refused from here on, also on open connections
        return {"user": name, "removed": True}

    def user_list(self, req: Request) -> list[dict[str, Any]]:
        require_admin(caller(self.directory, req), "listing users")
        return [user.to_dict() for _, user in sorted(self.directory.users().items())]

    def user_show(self, req: Request) -> dict[str, Any]:
        name = self._subject(caller(self.directory, req), _body(req))
        user = self._load(name)
        return {**user.to_dict(), "used": self._used(name)}

    def user_grant(self, req: Request) -> dict[str, Any]:
        require_admin(caller(self.directory, req), "granting authority")
        body = _body(req)
        name = check_user_name(body.get("user"), "user")
        pool = check_pool_name(body.get("pool"))
        permissions = _permissions(body.get("permissions"))
        if not self.directory.has_pool(pool):
            raise NotFound(f"pool {pool!r} is not declared", field="pool")
        with self._lock:
            user = self._load(name).granted(pool, permissions)
            self._save(user)
        return user.to_dict()

    def user_revoke(self, req: Request) -> dict[str, Any]:
        """Without `permissions`, every grant on the pool goes (also on a pool deleted since)."""
        require_admin(caller(self.directory, req), "revoking authority")
        body = _body(req)
        name = check_user_name(body.get("user"), "user")
        pool = check_pool_name(body.get("pool"))
        raw = body.get("permissions")
        permissions = None if raw is None else _permissions(raw)
        with self._lock:
            user = self._load(name).revoked(pool, permissions)
            self._save(user)
        return user.to_dict()

    # ---- quota -------------------------------------------------------------------------------------
    def quota_set(self, req: Request) -> dict[str, Any]:
        require_admin(caller(self.directory, req), "setting a quota")
        body = _body(req)
        name = check_user_name(body.get("user"), "user")
        changes = Quota.from_dict(body.get("quota") or {}, "quota")
        cleared = _cleared(body.get("clear"))
        with self._lock:
            user = self._load(name)
            user = user.with_quota(user.quota.merged(changes, cleared))
            self._save(user)
        return {"user": name, "limit": user.quota.to_dict(), "used": self._used(name)}

    def quota_show(self, req: Request) -> dict[str, Any]:
        name = self._subject(caller(self.directory, req), _body(req))
        return {"user": name, "limit": self._load(name).quota.to_dict(), "used": self._used(name)}

    # ---- usage -------------------------------------------------------------------------------------
    def usage(self, req: Request) -> dict[str, Any]:
        """Accounting records of a user (also a removed one, for administrators) since a time."""
        from galaxy.tenancy.usage import read_usage

        body = _body(req)
        name = self._subject(caller(self.directory, req), body)
        now = time.time()
        since = _epoch(body.get("since"), "since", now - DEFAULT_USAGE_WINDOW)
        until = _epoch(body.get("until"), "until", now)
        if until < since:
            raise InvalidInput("must not be before since", field="until")
        pool = body.get("pool")
        if pool is not None:
            pool = check_pool_name(pool)
        return read_usage(self.m.store, name, since, pool=pool, until=until)

    # ---- records -----------------------------------------------------------------------------------
    def _load(self, name: str) -> User:
        record = self.m.store.get(USERS, name)
        if record is None:
            raise NotFound(f"no user {name!r}", field="user")
        return User.from_dict(record)

    def _save(self, user: User) -> None:
        """Fenced write, then this daemon applies it before anyone hears of it."""
        self.m.store.put(USERS, user.name, user.to_dict())
        self.directory.apply_user(user)

    def _used(self, name: str) -> dict[str, Any]:
        with self.m.lock:
            return used_by(self.m.jobs.values(), name).to_dict()


def _body(req: Request) -> dict[str, Any]:
    body = req.body if req.body is not None else {}
    if not isinstance(body, dict):
        raise InvalidInput("expected a mapping", field="body")
    return body


def _permissions(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("expected a non-empty list of permissions", field="permissions")
    return [check_permission(p, "permissions") for p in raw]


def _cleared(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise InvalidInput("expected a list of limits to lift", field="clear")
    for item in raw:
        if not isinstance(item, str) or not (item in QUOTA_FIELDS or (item.startswith("disk.") and len(item) > 5)):
            raise InvalidInput(f"expected one of {', '.join(QUOTA_FIELDS)} or disk.<medium>, got {item!r}",
                               field="clear")
    return frozenset(raw)


def _epoch(raw: Any, field: str, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < 1e11:
        raise InvalidInput(f"expected a time in epoch seconds, got {raw!r}", field=field)
    return float(raw)


__all__ = ["TenancyRoutes"]
