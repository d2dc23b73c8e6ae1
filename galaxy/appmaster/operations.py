"""The user's verbs on jobs: each is authorised, policy- and quota-checked, records its decision in
ZooKeeper first, then acts on ResMan.

Every verb checks the caller's authority (galaxy.appmaster.authority), the job against its pool's
policy when the spec changes or new containers are asked for (galaxy.tenancy.policy: root, host
paths, packages, capabilities) and, when it can grow a job, the owner's quota
(galaxy.appmaster.quotas) under the master's lock *before* it changes anything, so a refusal writes
nothing and asks nothing of ResMan. It then changes the in-memory job under the same
lock, waits for the writer to commit it (fenced: a deposed leader's verb fails with NotLeader and
nothing happened), and only then asks ResMan to do anything, so a new leader always finds at least
what the old one had started.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from galaxy.appmaster import quotas, workerkeys
from galaxy.appmaster.authority import check_job
from galaxy.appmaster.jobs import Job, needs_new_containers, new_job, same_program
from galaxy.appmaster.master import Master
from galaxy.appmaster.rollout import Rollout
from galaxy.errors import Conflict, GalaxyError, InvalidInput, NotFound, RetryableError
from galaxy.spec import JobSpec, parse_job
from galaxy.tenancy import (
    JOB_CREATE,
    JOB_DELETE,
    JOB_UPDATE,
    Directory,
    Principal,
    check_policy,
    job_demand,
    require,
)

log = logging.getLogger(__name__)

RESMAN_DEADLINE = 15.0


class Operations:
    def __init__(self, master: Master, directory: Directory) -> None:
        self.m = master
        self.directory = directory

    # ---- submit / update ---------------------------------------------------------------------------
    def _parse(self, raw: dict[str, Any]) -> JobSpec:
        spec = parse_job(raw)
        if spec.secrets and self.m.state_key is None:
            raise InvalidInput(f"{', '.join(sorted(spec.secrets))}: this AppMaster has no state key (config "
                               "state_key), so a secret value would be stored in plain text", field="env")
        return spec

    def submit(self, who: Principal, raw: dict[str, Any]) -> dict[str, Any]:
        spec = self._parse(raw)
        require(who, JOB_CREATE, spec.pool)
        keys = workerkeys.new_worker_keys()
        with self.m.lock:
            self._declared(spec.pool)
            if spec.name in self.m.jobs:
                raise Conflict(f"job {spec.name!r} exists; use update", field="name")
            self._allowed(spec, who.name)
            quotas.check(self.directory, self.m.jobs.values(), who.name, job_demand(spec))
            job = new_job(spec, who.name, keys.public, keys.secret)
            # Trusted before the job is visible: the group sync may create its group (and a pod dial
            # in) before this thread gets there, and libzmq does not redial a connection its
            # handshake refused (seen: a pod stuck PENDING, 1 submit in ~10).
            workerkeys.admit(self.m.keyring, job.name, job.worker_public)
            self.m.jobs[spec.name] = job
            self.m.by_job[spec.name] = set()
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(job.name, "submitted", owner=who.name, version=job.version, replicas=job.replicas)
        try:
            self.m.resman.call("group.create", self.m.group_body(job), deadline=RESMAN_DEADLINE)
        except RetryableError as err:   # kept: the reconcile loop creates the group when ResMan is back
            job.reason = f"waiting for ResMan: {err}"
            self.m.trace_job(job.name, "group_deferred", str(err))
        except GalaxyError:
            self._drop(job)
            raise
        return {"job": job.name, "version": job.version, "state": job.state}

    def _allowed(self, spec: JobSpec, owner: str) -> None:
        """PermissionDenied naming the field and the rule if `spec` asks what its pool's policy does not
        allow (run as root, bind a host path, fetch a package, add a capability)."""
        check_policy(spec.pool, self.directory.policy(spec.pool), spec, owner)

    def _declared(self, pool: str) -> None:
        if not self.directory.has_pool(pool):
            raise NotFound(f"pool {pool!r} is not declared (an administrator declares it with pool.create)",
                           field="pool")

    def _drop(self, job: Job) -> None:
        """Undo a submit ResMan refused after it was recorded (authority, pool and quota refusals never get
        this far: they write nothing). The job never existed for the user."""
        with self.m.lock:
            self.m.jobs.pop(job.name, None)
            self.m.by_job.pop(job.name, None)
            ticket = self.m.writer.mark("jobs", job.name)
        workerkeys.revoke(self.m.keyring, job.worker_public)
        self.m.writer.wait(ticket)

    def update(self, who: Principal, name: str, raw: dict[str, Any], breakpoint: int | None) -> dict[str, Any]:
        new = self._parse(raw)
        if new.name != name:
            raise InvalidInput(f"the spec names job {new.name!r}, not {name!r}", field="spec.name")
        now = time.time()
        with self.m.lock:
            job = self.mutable(who, name, JOB_UPDATE)
            if job.state in ("STOPPING", "STOPPED"):
                raise Conflict(f"job {name} is {job.state.lower()}; resume it first", field="job")
            if job.rollout is not None:
                raise Conflict(f"job {name} is updating to version {job.rollout.target}; "
                               "cancel or roll back first", field="job")
            old = job.spec()
            if new.pool != old.pool:    # moving to another pool is creating there
                require(who, JOB_CREATE, new.pool)
                self._declared(new.pool)
            self._allowed(new, job.owner)
            recreate = needs_new_containers(old, new)
            after = job_demand(new, new.replicas, also=old if recreate else None)
            quotas.check(self.directory, self.m.jobs.values(), job.owner, after - quotas.holding(job))
            rescale = new.replicas != job.replicas
            job.replicas = new.replicas
            if same_program(old, new):
                job.versions[job.version] = new.to_dict()
                job._parsed[job.version] = new
            else:
                label = job.add_version(new)
                job.rollout = Rollout(target=label, source=job.version, step=new.update.pods_per_step(new.replicas),
                                      pause_between=new.update.pause_between, max_failures=new.update.max_failures,
                                      breakpoint=breakpoint, mode="recreate" if recreate else "inplace",
                                      started_at=now)
                job.version = label
                job.state = "UPDATING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "update", caller=who.name, version=job.version, recreate=recreate,
                         breakpoint=breakpoint)
        if recreate or rescale:
            self._group_update(job, new)
        return {"job": name, "version": job.version, "state": job.state}

    def _group_update(self, job: Job, spec: JobSpec) -> None:
        body = self.m.group_body(job, spec)
        update = {"group": job.name, "container": body["container"], "replicas": job.replicas,
                  "labels": body["labels"], "max_per_host": body["max_per_host"], "update_step": body["update_step"]}
        self.m.resman.call("group.update", update, deadline=RESMAN_DEADLINE)

    # ---- rollout control ---------------------------------------------------------------------------
    def pause(self, who: Principal, name: str) -> dict[str, Any]:
        return self._control(who, name, "pause")

    def resume(self, who: Principal, name: str) -> dict[str, Any]:
        return self._control(who, name, "resume")

    def cancel(self, who: Principal, name: str) -> dict[str, Any]:
        return self._control(who, name, "cancel")

    def _control(self, who: Principal, name: str, verb: str) -> dict[str, Any]:
        with self.m.lock:
            job = self.mutable(who, name, JOB_UPDATE)
            rollout = job.rollout
            if verb == "resume" and job.state in ("STOPPED", "STOPPING"):
                job.state = "DEPLOYING"
            elif rollout is None:
                raise Conflict(f"job {name} has no update in progress", field="job")
            elif verb == "pause":
                rollout.pause()
                job.state = "PAUSED"
            elif verb == "resume":
                rollout.resume()
                job.state = "UPDATING"
            else:
                job.version = rollout.source
                job.rollout = None
                job.state = "RUNNING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, verb, caller=who.name, version=job.version)
        return {"job": name, "state": job.state, "version": job.version}

    def rollback(self, who: Principal, name: str) -> dict[str, Any]:
        now = time.time()
        with self.m.lock:
            job = self.mutable(who, name, JOB_UPDATE)
            current = job.spec()
            if job.rollout is not None:
                rollout = job.rollout.reversed(now)
            else:
                previous = job.previous_version()
                if previous is None:
                    raise Conflict(f"job {name} has no earlier version to roll back to", field="job")
                spec = job.spec(previous)
                rollout = Rollout(target=previous, source=job.version, step=spec.update.pods_per_step(job.replicas),
                                  pause_between=spec.update.pause_between, max_failures=spec.update.max_failures,
                                  started_at=now)
            target = job.spec(rollout.target)
            self._allowed(target, job.owner)     # the policy may have narrowed since that version ran
            recreate = needs_new_containers(current, target)
            after = job_demand(target, job.replicas, also=current if recreate else None)
            quotas.check(self.directory, self.m.jobs.values(), job.owner, after - quotas.holding(job))
            rollout.mode = "recreate" if recreate else "inplace"
            job.rollout = rollout
            job.version = rollout.target
            job.state = "UPDATING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "rollback", caller=who.name, version=job.version)
        if recreate:
            self._group_update(job, target)
        return {"job": name, "state": job.state, "version": job.version}

    # ---- size and life -----------------------------------------------------------------------------
    def scale(self, who: Principal, name: str, replicas: int) -> dict[str, Any]:
        with self.m.lock:
            job = self.mutable(who, name, JOB_UPDATE)
            if replicas > job.replicas:      # new containers: the Agents would refuse what the policy does not allow
                self._allowed(job.spec(), job.owner)
            asked = quotas.holding(job, replicas) - quotas.holding(job)
            quotas.check(self.directory, self.m.jobs.values(), job.owner, asked)
            job.replicas = replicas
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "scale", caller=who.name, replicas=replicas)
        self.m.resman.call("group.scale", {"group": name, "replicas": replicas}, deadline=RESMAN_DEADLINE)
        return {"job": name, "replicas": replicas}

    def stop(self, who: Principal, name: str) -> dict[str, Any]:
        with self.m.lock:
            job = self.mutable(who, name, JOB_UPDATE)
            if job.state != "STOPPED":
                job.state = "STOPPING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "stop", caller=who.name)
        return {"job": name, "state": job.state}

    def remove(self, who: Principal, name: str) -> dict[str, Any]:
        from galaxy.appmaster.groups import finish_remove

        with self.m.lock:
            job = self.mutable(who, name, JOB_DELETE)
            job.removing = True
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "remove", caller=who.name)
        finish_remove(self.m, name)
        return {"job": name, "removed": True}

    def recover(self, who: Principal, pod: str) -> dict[str, Any]:
        with self.m.lock:
            row = self.m.pod(pod)
            self.mutable(who, row.job, JOB_UPDATE)
            if not row.gave_up:
                raise Conflict(f"pod {pod} is {row.status}, not FAILED", field="pod")
            row.gave_up = False
            row.failures = 0
            row.retry_at = 0.0
            row.reason = ""
            ticket = self.m.writer.mark("pods", pod)
            self.m._publish(row)
        self.m.writer.wait(ticket)
        self.m.tracer.record("pod", pod, "recover", job=row.job, caller=who.name)
        return {"pod": pod, "status": row.shown_status}

    # ---- authority ---------------------------------------------------------------------------------
    def mutable(self, who: Principal, name: str, permission: str) -> Job:
        """The job `who` may act on with `permission` (call under the master's lock)."""
        job = self.m.job(name)
        check_job(who, job, permission)
        return job
