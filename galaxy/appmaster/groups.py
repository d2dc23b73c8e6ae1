"""Keeping a job's pods and ResMan's container group in agreement (called by the reconcile loop).

Pods are known first from ResMan (`group.show`: pending and allocating containers that no worker
reports yet) and then from their workers; a container ResMan no longer lists, whose worker has gone
quiet, is gone. When pods keep failing on one host while the job runs fine elsewhere, the master asks
ResMan for a bounded number of extra containers away from that host, and gives the failed ones back
once enough pods run.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from galaxy.appmaster.pods import PODS_KIND, PodRow
from galaxy.errors import GalaxyError, NotFound

if TYPE_CHECKING:
    from galaxy.appmaster.master import Master

log = logging.getLogger(__name__)

GONE_AFTER = 5.0
SYNC_DEADLINE = 2.0


def extra_limit(replicas: int) -> int:
    """At most a quarter of the job (and at least one) in extra containers at any time."""
    return max(1, math.ceil(replicas / 4))


def sync_group(master: Master, name: str, now: float) -> None:
    with master.lock:
        job = master.jobs.get(name)
        if job is None:
            return
        removing = job.removing
    if removing:
        finish_remove(master, name)
        return
    try:
        shown = master.resman.call("group.show", {"group": name}, deadline=SYNC_DEADLINE)
    except NotFound:
        _recreate_group(master, name)
        return
    except GalaxyError as err:
        log.debug("group.show %s: %s", name, err)
        return
    containers = shown.get("containers", []) if isinstance(shown, dict) else []
    listed: dict[str, dict[str, Any]] = {c["id"]: c for c in containers
                                         if isinstance(c, dict) and isinstance(c.get("id"), str)}
    gone = []
    with master.lock:
        for cid, info in listed.items():
            row = master.pods.get(cid)
            if row is None:
                row = PodRow(pod=cid, job=name, created_at=now, updated_at=now, reported_at=now)
                master.pods[cid] = row
                master.by_job.setdefault(name, set()).add(cid)
            before = row.to_state()
            if isinstance(info.get("host"), str) and info["host"]:
                row.host = info["host"]
            if isinstance(info.get("address"), str) and info["address"] and not row.address:
                row.address = info["address"]
            if isinstance(info.get("ports"), dict) and not row.ports:
                row.ports = {str(k): int(v) for k, v in info["ports"].items() if isinstance(v, int)}
            if row.to_state() != before:
                master.writer.mark(PODS_KIND, cid)
                master._publish(row)
        for row in master.job_pods(name):
            if row.pod not in listed and now - row.reported_at > GONE_AFTER:
                gone.append(row.pod)
    for pod in gone:
        master.forget_pod(pod, "container no longer in the group")


def _recreate_group(master: Master, name: str) -> None:
    """ResMan does not know the group (lost, or create failed earlier): create it again (idempotent)."""
    with master.lock:
        job = master.jobs.get(name)
        if job is None or job.removing:
            return
        body = master.group_body(job)
    try:
        master.resman.call("group.create", body, deadline=SYNC_DEADLINE)
        master.trace_job(name, "group_created", "ResMan did not know the group")
    except GalaxyError as err:
        log.warning("group.create %s failed: %s", name, err)


def finish_remove(master: Master, name: str) -> None:
    """Second half of `job.remove`: give the group back, then forget the job everywhere."""
    from galaxy.appmaster import workerkeys
    from galaxy.appmaster.jobs import JOBS_KIND

    try:
        master.resman.call("group.remove", {"group": name}, deadline=SYNC_DEADLINE)
    except NotFound:
        pass
    except GalaxyError as err:
        log.warning("group.remove %s failed, will retry: %s", name, err)
        return
    with master.lock:
        job = master.jobs.pop(name, None)
        if job is None:
            return
        for pod in master.by_job.pop(name, set()):
            master.pods.pop(pod, None)
            master._published.pop(pod, None)
            master.writer.mark(PODS_KIND, pod)
        master.writer.mark(JOBS_KIND, name)
        workerkeys.revoke(master.keyring, job.worker_public)
        master.naming.remove_job(name)
    master.trace_job(name, "removed")


def tend_extras(master: Master, name: str) -> None:
    """Ask for extra containers away from hosts where pods failed; give failed pods back afterwards."""
    asks: list[tuple[str, str]] = []
    releases: list[str] = []
    with master.lock:
        job = master.jobs.get(name)
        if job is None or job.removing or job.type == "batch" or job.state in ("STOPPING", "STOPPED"):
            return
        rows = master.job_pods(name)
        bad: dict[str, str] = dict(job.extra.get("bad", {}))
        healthy = [r for r in rows if r.status == "RUNNING" and not r.gave_up]
        for row in rows:
            if not row.gave_up or not row.host or row.pod in bad:
                continue
            works_elsewhere = any(h.host != row.host for h in healthy)
            if works_elsewhere and len(bad) < extra_limit(job.replicas):
                bad[row.pod] = row.host
                asks.append((row.pod, row.host))
        if len(healthy) >= job.replicas:
            releases = [pod for pod in bad if pod in master.pods]
        for pod in list(bad):
            if pod not in master.pods and pod not in releases:
                del bad[pod]      # given back earlier and now gone
        if bad != job.extra.get("bad", {}):
            job.extra["bad"] = bad
            master.save_job(job)
    if asks:
        avoid = sorted({host for _, host in asks} | set(bad.values()))
        try:
            master.resman.call("group.extra", {"group": name, "count": len(asks), "avoid_hosts": avoid},
                               deadline=SYNC_DEADLINE)
            master.trace_job(name, "extra_asked", f"pods keep failing on {', '.join(avoid)}", count=len(asks))
        except GalaxyError as err:
            log.warning("group.extra %s failed: %s", name, err)
            with master.lock:
                for pod, _ in asks:
                    job.extra.get("bad", {}).pop(pod, None)
    for pod in releases:
        try:
            master.resman.call("group.release", {"group": name, "container": pod}, deadline=SYNC_DEADLINE)
            master.trace_job(name, "extra_released", f"failed pod {pod} given back", pod=pod)
            master.forget_pod(pod, "given back to ResMan after an extra container took its place")
        except GalaxyError as err:
            log.warning("group.release %s/%s failed: %s", name, pod, err)

