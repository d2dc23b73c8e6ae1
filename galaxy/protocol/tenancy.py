"""The multi-tenancy API on the mesh (served by the AppMaster leader): users, grants, quotas, pools, usage.

Users meet Galaxy at the AppMaster, so that is where users are made and removed: the leader that
removes a user drops their key from its own KeyRing before it answers (see galaxy.tenancy.directory),
so "removed" means refused at once where users connect. ResMan and the standbys follow by watch.

The caller is always the key that connected; ``user`` in a body names the user acted *upon*
(administrators only, except that anyone may read their own record, quota and usage).
"""

from __future__ import annotations


class TenancyApi:
    WHOAMI = "user.whoami"          # {} -> {"user", "kind", "admin", "grants": {pool: [perm]}}
    USER_CREATE = "user.create"     # {"user", "key", "admin": bool} -> user record       (admin)
    USER_REMOVE = "user.remove"     # {"user"} -> {"user", "removed": true}               (admin)
    USER_LIST = "user.list"         # {} -> [user record]                                 (admin)
    USER_SHOW = "user.show"         # {"user"?} -> user record + {"used": demand}         (self or admin)
    USER_GRANT = "user.grant"       # {"user", "pool", "permissions": [perm]} -> record   (admin)
    USER_REVOKE = "user.revoke"     # {"user", "pool", "permissions"?: [perm]} -> record  (admin; no list = all)
    QUOTA_SET = "quota.set"         # {"user", "quota": {cpu, memory, disk: {medium}, jobs, replicas},
                                    #  "clear": ["cpu" | "disk.<medium>" | …]} -> {"user", "limit", "used"} (admin)
    QUOTA_SHOW = "quota.show"       # {"user"?} -> {"user", "limit", "used"}                (self or admin)
    USAGE = "user.usage"            # {"user"?, "since"?: epoch s, "pool"?} -> usage report (self or admin)
    POOL_CREATE = "pool.create"     # {"pool", "description"?} -> pool row                 (admin)
    POOL_LIST = "pool.list"         # {} -> [{"pool", "description", "hosts", "jobs", "declared"}]
    POOL_DELETE = "pool.delete"     # {"pool"} -> {"pool", "deleted": true}; refused while hosts or jobs are in it
    POOL_POLICY_SHOW = "pool.policy.show"   # {"pool"} -> policy reply                (any grant on the pool)
    POOL_POLICY_SET = "pool.policy.set"     # {"pool", "policy": {root_users, host_paths: [{path, writable}],
                                            #  package_sources, capabilities}} -> policy reply (admin; replaces)

# A user record on the wire: {"name", "key", "admin", "grants": {pool: [perm]}, "quota": {...}, "created"}.
# A demand ("used"): {"cpu": cores, "memory": bytes, "disk": {medium: bytes}, "jobs", "replicas"}.
# A usage report: {"user", "since", "until", "pools": {pool: figures}, "total": figures} where figures =
#   {"cpu_used": core-seconds, "cpu_reserved": core-seconds, "memory_used": GiB-seconds,
#    "memory_reserved": GiB-seconds, "disk_reserved": {medium: GiB-seconds}}.
# A policy reply: {"pool", "root_users": [user], "host_paths": [{"path", "writable"}], "package_sources": [url],
#   "capabilities": [name], "updated": epoch s | null, "by": user | null, "denied": [built-in denied host paths]}.
