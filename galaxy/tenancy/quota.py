"""What a user's jobs hold against their quota, and the one check every submit, scale and update makes.

Use is counted from the jobs themselves (replicas × what one replica asks), not from what happens to
be running: quota bounds what a user may *reserve*, so a job waiting for hosts counts as much as a
running one, and a check never races with placement. A job in the middle of a rollout that needs new
containers counts the larger of its two versions per replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from galaxy.errors import QuotaExceeded
from galaxy.spec import JobSpec
from galaxy.tenancy.model import Quota

GIB = 1 << 30


@dataclass
class Demand:
    cpu: float = 0.0
    memory: int = 0
    disk: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    replicas: int = 0

    def __add__(self, other: Demand) -> Demand:
        disk = dict(self.disk)
        for medium, size in other.disk.items():
            disk[medium] = disk.get(medium, 0) + size
        return Demand(self.cpu + other.cpu, self.memory + other.memory, disk, self.jobs + other.jobs,
                      self.replicas + other.replicas)

    def __sub__(self, other: Demand) -> Demand:
        disk = dict(self.disk)
        for medium, size in other.disk.items():
            disk[medium] = disk.get(medium, 0) - size
        return Demand(self.cpu - other.cpu, self.memory - other.memory, disk, self.jobs - other.jobs,
                      self.replicas - other.replicas)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": round(self.cpu, 6), "memory": self.memory, "disk": dict(self.disk), "jobs": self.jobs,
                "replicas": self.replicas}


def job_demand(spec: JobSpec, replicas: int | None = None, *, also: JobSpec | None = None) -> Demand:
    """What one job reserves: ``replicas`` (default the spec's) × the per-replica ask.

    ``also`` is a second version of the same job whose containers may exist at the same time (a
    recreate rollout): per replica the larger of the two is counted.
    """
    count = spec.replicas if replicas is None else replicas
    cpu, memory, disk = _per_replica(spec)
    if also is not None:
        cpu2, memory2, disk2 = _per_replica(also)
        cpu, memory = max(cpu, cpu2), max(memory, memory2)
        disk = {m: max(disk.get(m, 0), disk2.get(m, 0)) for m in disk.keys() | disk2.keys()}
    return Demand(cpu * count, memory * count, {m: size * count for m, size in disk.items()}, 1, count)


def _per_replica(spec: JobSpec) -> tuple[float, int, dict[str, int]]:
    disk: dict[str, int] = {}
    for d in spec.resources.disks:
        disk[d.medium] = disk.get(d.medium, 0) + d.size
    return spec.resources.cpu, spec.resources.memory, disk


def total(demands: Iterable[Demand]) -> Demand:
    out = Demand()
    for d in demands:
        out = out + d
    return out


def check_quota(user: str, quota: Quota, used: Demand, asked: Demand) -> None:
    """Raise QuotaExceeded naming the first limit ``used + asked`` would pass, with the figures.

    ``asked`` is the change the operation makes (a scale-up asks only its extra replicas); a change
    that asks nothing more of a limit passes even when the user is already over it (a limit lowered
    after the fact must not block scaling down).
    """
    checks: list[tuple[str, float, float, float | None, str]] = [
        ("jobs", asked.jobs, used.jobs, quota.jobs, "jobs"),
        ("replicas", asked.replicas, used.replicas, quota.replicas, "replicas"),
        ("cpu", asked.cpu, used.cpu, quota.cpu, "cores"),
        ("memory", asked.memory, used.memory, quota.memory, "bytes"),
    ]
    for medium, size in asked.disk.items():
        checks.append((f"disk.{medium}", size, used.disk.get(medium, 0), quota.disk.get(medium), "bytes"))
    for name, want, have, limit, unit in checks:
        if limit is None or want <= 0:
            continue
        if have + want > limit + 1e-9:
            raise QuotaExceeded(f"user {user!r} would pass the {name} quota: asked {_fmt(want, unit)}, "
                                f"used {_fmt(have, unit)}, limit {_fmt(limit, unit)}", field=f"quota.{name}",
                                details={"quota": name, "asked": want, "used": have, "limit": limit, "unit": unit})


def _fmt(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / GIB:.3g} GiB" if value >= GIB else f"{int(value)} B"
    if unit == "cores":
        return f"{value:g} cores"
    return f"{int(value)}"
