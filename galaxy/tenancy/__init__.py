"""Multi-tenancy: users bound to keys, pools, grants of authority, quotas (docs/tenancy.md).

The records live in ZooKeeper (``state/users/<name>``, ``state/pools/<name>``); every daemon keeps a
:class:`Directory` of them, which also admits and revokes users' keys in its KeyRing. A request's
:class:`Principal` comes from the key that connected; :func:`require` checks one grant.
"""

from __future__ import annotations

from galaxy.tenancy.directory import POOLS, USERS, Directory
from galaxy.tenancy.model import (
    DEFAULT_POOL,
    HOST_ADMIN,
    JOB_CREATE,
    JOB_DELETE,
    JOB_READ,
    JOB_UPDATE,
    PERMISSIONS,
    Quota,
    User,
    check_permission,
    check_pool_name,
    check_user_name,
)
from galaxy.tenancy.principal import (
    ADMIN,
    AGENT,
    APPMASTER,
    RESMAN,
    USER,
    WORKER,
    Principal,
    kind_of,
    require,
    require_admin,
    resolve,
    speaks_for_host,
)
from galaxy.tenancy.quota import Demand, check_quota, job_demand, total
from galaxy.tenancy.usage import USAGE, read_usage

__all__ = [
    "ADMIN", "AGENT", "APPMASTER", "DEFAULT_POOL", "HOST_ADMIN", "JOB_CREATE", "JOB_DELETE", "JOB_READ", "JOB_UPDATE",
    "PERMISSIONS", "POOLS", "RESMAN", "USAGE", "USER", "USERS", "WORKER", "Demand", "Directory", "Principal", "Quota", "User",
    "check_permission", "check_pool_name", "check_quota", "check_user_name", "job_demand", "kind_of", "require",
    "read_usage", "require_admin", "resolve", "speaks_for_host", "total",
]
