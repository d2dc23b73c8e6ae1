"""The user's verbs on jobs: each records its decision in ZooKeeper first, then acts on ResMan.

Every verb changes the in-memory job under the master's lock, waits for the writer to commit it
(fenced: a deposed leader's verb fails with NotLeader and nothing happened), and only then asks ResMan
to do anything, so a new leader always finds at least what the old one had started.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from galaxy.appmaster import workerkeys
from galaxy.appmaster.jobs import Job, needs_new_containers, new_job, same_program
from galaxy.appmaster.master import Master
from galaxy.appmaster.rollout import Rollout
from galaxy.errors import Conflict, GalaxyError, InvalidInput, RetryableError
from galaxy.spec import JobSpec, parse_job

log = logging.getLogger(__name__)

RESMAN_DEADLINE = 15.0


class Operations:
    def __init__(self, master: Master) -> None:
        self.m = master

    # ---- submit / update ---------------------------------------------------------------------------
    def submit(self, owner: str, raw: dict[str, Any]) -> dict[str, Any]:
        spec = parse_job(raw)
        keys = workerkeys.new_worker_keys()
        with self.m.lock:
            if spec.name in self.m.jobs:
                raise Conflict(f"job {spec.name!r} exists; use update", field="name")
            job = new_job(spec, owner, keys.public, keys.secret)
            self.m.jobs[spec.name] = job
            self.m.by_job[spec.name] = set()
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        workerkeys.admit(self.m.keyring, job.name, job.worker_public)
        self.m.trace_job(job.name, "submitted", owner=owner, version=job.version, replicas=job.replicas)
        try:
            self.m.resman.call("group.create", self.m.group_body(job), deadline=RESMAN_DEADLINE)
        except RetryableError as err:   # kept: the reconcile loop creates the group when ResMan is back
            job.reason = f"waiting for ResMan: {err}"
            self.m.trace_job(job.name, "group_deferred", str(err))
        except GalaxyError:
            self._drop(job)
            raise
        return {"job": job.name, "version": job.version, "state": job.state}

    def _drop(self, job: Job) -> None:
        """Undo a submit ResMan refused (bad pool, quota …): the job never existed for the user."""
        with self.m.lock:
            self.m.jobs.pop(job.name, None)
            self.m.by_job.pop(job.name, None)
            ticket = self.m.writer.mark("jobs", job.name)
        workerkeys.revoke(self.m.keyring, job.worker_public)
        self.m.writer.wait(ticket)

    def update(self, caller: str, name: str, raw: dict[str, Any], breakpoint: int | None) -> dict[str, Any]:
        new = parse_job(raw)
        if new.name != name:
            raise InvalidInput(f"the spec names job {new.name!r}, not {name!r}", field="spec.name")
        now = time.time()
        with self.m.lock:
            job = self._mutable(caller, name)
            if job.state in ("STOPPING", "STOPPED"):
                raise Conflict(f"job {name} is {job.state.lower()}; resume it first", field="job")
            if job.rollout is not None:
                raise Conflict(f"job {name} is updating to version {job.rollout.target}; "
                               "cancel or roll back first", field="job")
            old = job.spec()
            recreate = needs_new_containers(old, new)
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
        self.m.trace_job(name, "update", caller=caller, version=job.version, recreate=recreate,
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
    def pause(self, caller: str, name: str) -> dict[str, Any]:
        return self._control(caller, name, "pause")

    def resume(self, caller: str, name: str) -> dict[str, Any]:
        return self._control(caller, name, "resume")

    def cancel(self, caller: str, name: str) -> dict[str, Any]:
        return self._control(caller, name, "cancel")

    def _control(self, caller: str, name: str, verb: str) -> dict[str, Any]:
        with self.m.lock:
            job = self._mutable(caller, name)
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
        self.m.trace_job(name, verb, caller=caller, version=job.version)
        return {"job": name, "state": job.state, "version": job.version}

    def rollback(self, caller: str, name: str) -> dict[str, Any]:
        now = time.time()
        with self.m.lock:
            job = self._mutable(caller, name)
            current = job.spec()
            if job.rollout is not None:
                job.rollout = job.rollout.reversed(now)
            else:
                previous = job.previous_version()
                if previous is None:
                    raise Conflict(f"job {name} has no earlier version to roll back to", field="job")
                spec = job.spec(previous)
                job.rollout = Rollout(target=previous, source=job.version,
                                      step=spec.update.pods_per_step(job.replicas),
                                      pause_between=spec.update.pause_between,
                                      max_failures=spec.update.max_failures, started_at=now)
            target = job.spec(job.rollout.target)
            recreate = needs_new_containers(current, target)
            job.rollout.mode = "recreate" if recreate else "inplace"
            job.version = job.rollout.target
            job.state = "UPDATING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "rollback", caller=caller, version=job.version)
        if recreate:
            self._group_update(job, target)
        return {"job": name, "state": job.state, "version": job.version}

    # ---- size and life -----------------------------------------------------------------------------
    def scale(self, caller: str, name: str, replicas: int) -> dict[str, Any]:
        with self.m.lock:
            job = self._mutable(caller, name)
            job.replicas = replicas
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "scale", caller=caller, replicas=replicas)
        self.m.resman.call("group.scale", {"group": name, "replicas": replicas}, deadline=RESMAN_DEADLINE)
        return {"job": name, "replicas": replicas}

    def stop(self, caller: str, name: str) -> dict[str, Any]:
        with self.m.lock:
            job = self._mutable(caller, name)
            if job.state != "STOPPED":
                job.state = "STOPPING"
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "stop", caller=caller)
        return {"job": name, "state": job.state}

    def remove(self, caller: str, name: str) -> dict[str, Any]:
        from galaxy.appmaster.groups import finish_remove

        with self.m.lock:
            job = self._mutable(caller, name)
            job.removing = True
            ticket = self.m.save_job(job)
        self.m.writer.wait(ticket)
        self.m.trace_job(name, "remove", caller=caller)
        finish_remove(self.m, name)
        return {"job": name, "removed": True}

    def recover(self, caller: str, pod: str) -> dict[str, Any]:
        with self.m.lock:
            row = self.m.pod(pod)
            self._mutable(caller, row.job)
            if not row.gave_up:
                raise Conflict(f"pod {pod} is {row.status}, not FAILED", field="pod")
            row.gave_up = False
            row.failures = 0
            row.retry_at = 0.0
            row.reason = ""
            ticket = self.m.writer.mark("pods", pod)
            self.m._publish(row)
        self.m.writer.wait(ticket)
        self.m.tracer.record("pod", pod, "recover", job=row.job, caller=caller)
        return {"pod": pod, "status": row.shown_status}

    # ---- authority ---------------------------------------------------------------------------------
    def _mutable(self, caller: str, name: str) -> Job:
        job = self.m.job(name)
        check_owner(caller, job)
        return job


ADMINS = frozenset({"admin"})


def check_owner(caller: str, job: Job) -> None:
    from galaxy.errors import PermissionDenied

    if caller != job.owner and caller not in ADMINS:
        raise PermissionDenied(f"{caller!r} may not change job {job.name!r} (owner {job.owner!r})", field="job")
