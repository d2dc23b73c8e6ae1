"""What each user's jobs hold against their quota, counted from the master's jobs in memory.

Called under the master's lock by every verb that can grow a job (submit, scale, update, a rollback
that recreates), so the use a check sees cannot change before the verb's own change is made: two
submits racing for the last core cannot both pass.

A job in a *recreate* rollout holds, per replica, the larger of its two versions (old and new
containers exist side by side while it moves); an in-place rollout holds only its current version.
"""

from __future__ import annotations

from collections.abc import Iterable

from galaxy.appmaster.jobs import Job
from galaxy.spec import JobSpec
from galaxy.tenancy import Demand, Directory, check_quota, job_demand, total


def other_version(job: Job) -> JobSpec | None:
    """The version whose containers coexist with the current one (a recreate rollout), if any."""
    rollout = job.rollout
    if rollout is None or rollout.mode != "recreate":
        return None
    other = rollout.source if job.version == rollout.target else rollout.target
    return job.spec(other) if other in job.versions and other != job.version else None


def holding(job: Job, replicas: int | None = None) -> Demand:
    """What `job` reserves now, or would reserve at `replicas`."""
    return job_demand(job.spec(), job.replicas if replicas is None else replicas, also=other_version(job))


def used_by(jobs: Iterable[Job], owner: str) -> Demand:
    """Sum over `owner`'s jobs that are not being removed (a removal gives its reservation back)."""
    return total(holding(job) for job in jobs if job.owner == owner and not job.removing)


def check(directory: Directory | None, jobs: Iterable[Job], owner: str, asked: Demand) -> None:
    """QuotaExceeded (with quota/asked/used/limit/unit) if `asked` more would pass `owner`'s quota.

    An owner without a user record — the root `admin` key, or a user removed since — has no quota.
    """
    user = directory.user(owner) if directory is not None else None
    if user is None:
        return
    check_quota(owner, user.quota, used_by(jobs, owner), asked)


__all__ = ["check", "holding", "other_version", "used_by"]
