"""Users, their grants and quotas, and pools: the records multi-tenancy keeps in ``state/``.

A user is a name bound to one CURVE public key: the identity behind a request is the key that
connected (``Request.key_name``), never a field of the request. Authority is a set of grants, each a
(pool, permission) pair; quota is a set of cluster-wide limits. Both live in the user's one record
(``state/users/<name>``) so a change to a user is one fenced write that every daemon sees whole.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from galaxy.errors import InvalidInput
from galaxy.mesh.keys import check_key

JOB_CREATE = "job.create"
JOB_UPDATE = "job.update"
JOB_DELETE = "job.delete"
JOB_READ = "job.read"
HOST_ADMIN = "host.admin"
PERMISSIONS = (JOB_CREATE, JOB_UPDATE, JOB_DELETE, JOB_READ, HOST_ADMIN)

USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
POOL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")   # a DNS label, as the job file's `pool`
DEFAULT_POOL = "default"

# Names a user may not take: they are the cluster's own components (see galaxy.tenancy.principal).
RESERVED_NAMES = frozenset({"admin", "root", "galaxy", "resman", "appmaster", "agent", "worker", "system"})
RESERVED_PREFIXES = ("resman-", "appmaster-", "agent-", "worker", "system")


def check_user_name(name: object, field_name: str = "user") -> str:
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise InvalidInput(f"expected a user name of 1-32 characters [a-z0-9_-] starting with a letter, got {name!r}",
                           field=field_name)
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise InvalidInput(f"{name!r} is reserved for the cluster's own components", field=field_name)
    return name


def check_pool_name(name: object, field_name: str = "pool") -> str:
    if not isinstance(name, str) or not POOL_NAME.match(name):
        raise InvalidInput(f"expected a pool name that is a DNS label (a-z, 0-9, '-', at most 63), got {name!r}",
                           field=field_name)
    return name


def check_permission(value: object, field_name: str = "permission") -> str:
    if value not in PERMISSIONS:
        raise InvalidInput(f"expected one of {', '.join(PERMISSIONS)}, got {value!r}", field=field_name)
    return str(value)


@dataclass(frozen=True)
class Quota:
    """Cluster-wide limits of one user; ``None`` (or a medium not named in ``disk``) means no limit.

    ``cpu`` in cores, ``memory`` and ``disk`` in bytes, ``jobs`` and ``replicas`` as counts — the same
    figures a job file asks for, so a limit reads like a job's request.
    """

    cpu: float | None = None
    memory: int | None = None
    disk: dict[str, int] = field(default_factory=dict)
    jobs: int | None = None
    replicas: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "memory": self.memory, "disk": dict(self.disk), "jobs": self.jobs,
                "replicas": self.replicas}

    @classmethod
    def from_dict(cls, raw: Any, where: str = "quota") -> Quota:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise InvalidInput("expected a map", field=where)
        unknown = set(raw) - {"cpu", "memory", "disk", "jobs", "replicas"}
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}", field=where)
        disk = raw.get("disk") or {}
        if not isinstance(disk, dict):
            raise InvalidInput("expected a map of medium to bytes", field=f"{where}.disk")
        return cls(cpu=_limit(raw.get("cpu"), f"{where}.cpu", float),
                   memory=_limit(raw.get("memory"), f"{where}.memory", int),
                   disk={str(_medium(m, f"{where}.disk")): int(_limit(v, f"{where}.disk.{m}", int) or 0)
                         for m, v in disk.items() if v is not None},
                   jobs=_limit(raw.get("jobs"), f"{where}.jobs", int),
                   replicas=_limit(raw.get("replicas"), f"{where}.replicas", int))

    def merged(self, changes: Quota, cleared: frozenset[str] = frozenset()) -> Quota:
        """This quota with the limits ``changes`` sets, and those named in ``cleared`` lifted."""
        def pick(name: str) -> Any:
            if name in cleared:
                return None
            new = getattr(changes, name)
            return getattr(self, name) if new is None else new
        disk = {m: v for m, v in {**self.disk, **changes.disk}.items() if f"disk.{m}" not in cleared}
        return Quota(cpu=pick("cpu"), memory=pick("memory"), disk=disk, jobs=pick("jobs"), replicas=pick("replicas"))


def _limit(value: Any, where: str, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidInput(f"expected a number >= 0 or null, got {value!r}", field=where)
    if kind is int and value != int(value):
        raise InvalidInput(f"expected a whole number, got {value!r}", field=where)
    return kind(value)


def _medium(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 32:
        raise InvalidInput(f"expected a disk medium name, got {value!r}", field=where)
    return value


@dataclass(frozen=True)
class User:
    """One user's record. ``grants`` maps a pool to the permissions held there."""

    name: str
    key: str
    admin: bool = False
    grants: dict[str, frozenset[str]] = field(default_factory=dict)
    quota: Quota = field(default_factory=Quota)
    created: float = 0.0

    def allows(self, permission: str, pool: str) -> bool:
        return self.admin or permission in self.grants.get(pool, ())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "admin": self.admin,
                "grants": {pool: sorted(perms) for pool, perms in sorted(self.grants.items())},
                "quota": self.quota.to_dict(), "created": self.created}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> User:
        grants = raw.get("grants") or {}
        return cls(name=check_user_name(raw.get("name"), "name"), key=check_key(str(raw.get("key")), "key"),
                   admin=bool(raw.get("admin", False)),
                   grants={str(pool): frozenset(map(str, perms)) for pool, perms in grants.items()},
                   quota=Quota.from_dict(raw.get("quota")), created=float(raw.get("created") or 0.0))

    @classmethod
    def new(cls, name: str, key: str, *, admin: bool = False) -> User:
        return cls(name=check_user_name(name, "name"), key=check_key(key, "key"), admin=admin, created=time.time())

    def granted(self, pool: str, permissions: list[str]) -> User:
        grants = dict(self.grants)
        grants[check_pool_name(pool)] = grants.get(pool, frozenset()) | {check_permission(p) for p in permissions}
        return User(self.name, self.key, self.admin, grants, self.quota, self.created)

    def revoked(self, pool: str, permissions: list[str] | None) -> User:
        """Without ``permissions`` every grant on ``pool`` goes."""
        grants = dict(self.grants)
        left = frozenset() if permissions is None else \
            grants.get(pool, frozenset()) - {check_permission(p) for p in permissions}
        if left:
            grants[pool] = left
        else:
            grants.pop(pool, None)
        return User(self.name, self.key, self.admin, grants, self.quota, self.created)

    def with_quota(self, quota: Quota) -> User:
        return User(self.name, self.key, self.admin, dict(self.grants), quota, self.created)
