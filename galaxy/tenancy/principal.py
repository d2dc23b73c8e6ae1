"""Who is behind a connection: the kind of principal a key name stands for.

Component keys come from each daemon's trusted-keys directory and are recognised by name
(``resman``/``resman-<host>``, ``appmaster``/``appmaster-<host>``, ``agent``/``agent-<host>``); the
AppMaster's per-job worker keys are ``worker:<job>``; the trusted-keys file ``admin.pub`` is the
cluster's root administrator (the key Ansible makes; revoked by deleting that file). Every other name
is a user, whose authority is their record in ``state/users`` — a name with no record holds none.
User names can never take a component's name (``galaxy.tenancy.model.check_user_name``).
"""

from __future__ import annotations

from dataclasses import dataclass

from galaxy.tenancy.model import User

USER = "user"
ADMIN = "admin"          # the root administrator key (trusted-keys admin.pub)
RESMAN = "resman"
APPMASTER = "appmaster"
AGENT = "agent"
WORKER = "worker"
UNKNOWN = "unknown"
COMPONENTS = (RESMAN, APPMASTER, AGENT)


@dataclass(frozen=True)
class Principal:
    name: str
    kind: str
    user: User | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN or (self.user is not None and self.user.admin)

    @property
    def is_user(self) -> bool:
        """A person (or their tool) rather than a Galaxy component."""
        return self.kind in (USER, ADMIN)

    def allows(self, permission: str, pool: str) -> bool:
        if self.is_admin:
            return True
        return self.user is not None and self.user.allows(permission, pool)

    def pools_with(self, permission: str) -> frozenset[str] | None:
        """Pools where this principal holds ``permission``; None means every pool (an administrator)."""
        if self.is_admin:
            return None
        if self.user is None:
            return frozenset()
        return frozenset(pool for pool, perms in self.user.grants.items() if permission in perms)


def kind_of(name: str | None) -> str:
    if not name:
        return UNKNOWN
    if name == "admin":
        return ADMIN
    if name.startswith("worker:"):
        return WORKER
    for component in COMPONENTS:
        if name == component or name.startswith(component + "-"):
            return component
    return USER


def speaks_for_host(name: str | None, host: str) -> bool:
    """May the Agent key ``name`` act as host ``host``?

    A per-host key ``agent-<host>`` (what the playbook hands out) speaks only for its own host, so a
    stolen or misconfigured Agent key cannot pose as another machine. The shared ``agent`` key (one-box
    and test clusters) may speak for any host of its cluster.
    """
    if name == AGENT:
        return True
    return bool(name) and name == f"{AGENT}-{host}"


def resolve(name: str | None, users: dict[str, User]) -> Principal:
    kind = kind_of(name)
    return Principal(name or "", kind, users.get(name or "") if kind == USER else None)


def require(principal: Principal, permission: str, pool: str) -> None:
    """Raise PermissionDenied unless ``principal`` holds ``permission`` on ``pool``."""
    from galaxy.errors import PermissionDenied

    if not principal.is_user:
        raise PermissionDenied(f"key {principal.name!r} ({principal.kind}) may not use the user API", field="key")
    if not principal.allows(permission, pool):
        raise PermissionDenied(f"user {principal.name!r} holds no {permission} grant on pool {pool!r}", field="pool")


def require_admin(principal: Principal, what: str) -> None:
    from galaxy.errors import PermissionDenied

    if not principal.is_admin:
        raise PermissionDenied(f"{what} needs an administrator; {principal.name!r} is not one", field="key")
