"""Who may do what to which job: the AppMaster's half of the multi-tenancy rules (docs/appmaster.md).

The caller is the key that connected (`Request.key_name`, resolved by the daemon's Directory), never
a field of the body. Grants are per pool, so every check names the pool it is made on; acting on a job
also needs ownership unless the caller is an administrator. Each check raises before anything is
changed, so a denial leaves no trace but the error.
"""

from __future__ import annotations

from galaxy.appmaster.jobs import Job
from galaxy.errors import NotLeader, PermissionDenied
from galaxy.mesh import Request
from galaxy.tenancy import JOB_READ, Directory, Principal, require


def caller(directory: Directory | None, req: Request) -> Principal:
    """The person behind `req`; components and job workers may not use the user API."""
    if directory is None:   # only a role not started by ReplicatedDaemon lacks one; it must not serve users
        raise NotLeader("this AppMaster has no user directory; it cannot authorise users")
    principal = directory.principal(req.key_name)
    if not principal.is_user:
        raise PermissionDenied(f"key {principal.name!r} ({principal.kind}) may not use the user API", field="key")
    return principal


def check_job(principal: Principal, job: Job, permission: str) -> None:
    """`permission` on the job's pool, and the job is the caller's own (or the caller administers)."""
    require(principal, permission, job.pool)
    if not principal.is_admin and principal.name != job.owner:
        raise PermissionDenied(f"user {principal.name!r} may not change job {job.name!r}: it belongs to "
                               f"{job.owner!r}", field="job")


def check_read(principal: Principal, job: Job) -> None:
    """Reading a job needs job.read on its pool; jobs of other users in that pool are readable too."""
    require(principal, JOB_READ, job.pool)


def readable(principal: Principal, pool: str) -> bool:
    return principal.allows(JOB_READ, pool)


__all__ = ["caller", "check_job", "check_read", "readable"]
