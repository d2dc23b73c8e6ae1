"""Multi-tenancy: users bound to keys, pools, grants of authority, quotas, pool policies (docs/tenancy.md).

The records live in ZooKeeper (``state/users/<name>``, ``state/pools/<name>``,
``state/policies/<pool>``); every daemon keeps a :class:`Directory` of them, which also admits and
revokes users' keys in its KeyRing. A request's :class:`Principal` comes from the key that connected;
:func:`require` checks one grant; :func:`check_policy` checks a job against its pool's :class:`PoolPolicy`
(the Agent checks each container again with :func:`check_container`, through a :class:`HostPolicy`).
"""

from __future__ import annotations

from galaxy.tenancy.directory import POOLS, USERS, Directory
from galaxy.tenancy.host_policy import HostPolicy
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
from galaxy.tenancy.policy import (
    DENIED_HOST_PATHS,
    POLICIES,
    HostPathRule,
    PoolPolicy,
    check_container,
    check_policy,
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
    "ADMIN", "AGENT", "APPMASTER", "DEFAULT_POOL", "DENIED_HOST_PATHS", "HOST_ADMIN", "JOB_CREATE", "JOB_DELETE",
    "JOB_READ", "JOB_UPDATE", "PERMISSIONS", "POLICIES", "POOLS", "RESMAN", "USAGE", "USER", "USERS", "WORKER", "Demand",
    "Directory", "HostPathRule", "HostPolicy", "PoolPolicy", "Principal", "Quota", "User", "check_container",
    "check_policy", "check_permission", "check_pool_name", "check_quota", "check_user_name", "job_demand", "kind_of",
    "require", "read_usage", "require_admin", "resolve", "speaks_for_host", "total",
]
