"""What users read: job rows, job details, and `job.plan`'s feasibility estimate.

Rows are built under the master's lock from memory (no ZooKeeper round trip), so `job.list` over
thousands of pods stays cheap.
"""

from __future__ import annotations

from typing import Any

from galaxy.appmaster.jobs import Job
from galaxy.appmaster.pods import PodRow
from galaxy.spec import JobSpec, redacted


def job_row(job: Job, pods: list[PodRow]) -> dict[str, Any]:
    spec = job.spec()
    running = sum(1 for p in pods if p.status == "RUNNING" and not p.gave_up)
    failed = sum(1 for p in pods if p.gave_up)
    return {"job": job.name, "pool": spec.pool, "owner": job.owner, "type": spec.type, "state": job.state,
            "version": job.version, "replicas": job.replicas, "running": running,
            "pending": max(0, len(pods) - running - failed) if pods else job.replicas, "failed": failed,
            "completed": sum(1 for p in pods if p.completed), "reason": job.reason, "updated_at": job.updated_at}


def job_detail(job: Job, pods: list[PodRow]) -> dict[str, Any]:
    return {**job_row(job, pods), "spec": redacted(job.versions[job.version]),
            "versions": sorted(job.versions, key=int),
            "update": job.rollout.summary() if job.rollout is not None else None,
            "pods": [p.row() for p in pods]}


def plan(spec: JobSpec, hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of the job's containers the pool's free resources could hold, and why not more.

    An estimate from ResMan's `hosts.list` (free cpu, memory, disk per medium, labels, admin state);
    ResMan's scheduler has the last word.
    """
    res = spec.resources
    reasons: dict[str, int] = {}
    placements = 0
    considered = 0
    for host in hosts:
        if host.get("pool", spec.pool) != spec.pool:
            continue
        considered += 1
        why = _unfit(spec, host)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
            continue
        free = host.get("free") or {}
        fits = [int(free.get("cpu", 0) // res.cpu) if res.cpu else 1 << 30,
                int(free.get("memory", 0) // res.memory) if res.memory else 1 << 30]
        disks = free.get("disks") or {}
        for medium in {d.medium for d in res.disks}:
            need = sum(d.size for d in res.disks if d.medium == medium)
            if medium != "tmpfs":
                fits.append(int(disks.get(medium, 0) // need) if need else 1 << 30)
        count = min(fits)
        if spec.max_per_host is not None:
            count = min(count, spec.max_per_host)
        if count <= 0:
            reasons["not enough free cpu, memory or disk"] = reasons.get("not enough free cpu, memory or disk", 0) + 1
        placements += max(0, count)
    text = [f"{why} ({n} host{'s' if n != 1 else ''})" for why, n in sorted(reasons.items())]
    if considered == 0:
        text.append(f"no host in pool {spec.pool}")
    return {"job": spec.name, "feasible": placements >= spec.replicas, "placements": min(placements, 1 << 31),
            "reasons": text}


def _unfit(spec: JobSpec, host: dict[str, Any]) -> str:
    if host.get("status", "alive") != "alive":
        return "host lost"
    if host.get("admin", "online") != "online":
        return f"host {host.get('admin')}"
    labels = set(host.get("labels") or [])
    missing = [label for label in spec.resources.labels if label not in labels]
    if missing:
        return f"missing label {', '.join(missing)}"
    return ""
