"""The leader's in-memory model of jobs and pods, the report path, and the reconcile loop.

Everything the master knows lives in two dicts guarded by one lock, rebuilt from `state/` when it
takes over. Worker reports are answered in the mesh I/O thread from memory alone; persistence (group
commit), naming and trace writes happen on their own threads. A reconcile thread ticks rollouts,
derives job states, compares pods with ResMan's containers, and asks ResMan for extra containers
when pods keep failing on one host.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from kazoo.client import KazooClient

from galaxy.appmaster import workerkeys
from galaxy.appmaster.jobs import JOBS_KIND, Job, summarise_state
from galaxy.appmaster.naming import NamingPublisher
from galaxy.appmaster.pods import BUSY_INTERVAL, PODS_KIND, Decision, PodRow, absorb, decide
from galaxy.appmaster.resman_link import ResManLink
from galaxy.appmaster.writer import StateWriter
from galaxy.coord import Naming, Paths, StateKey, StateStore, open_sealed
from galaxy.errors import GalaxyError, NotFound
from galaxy.mesh import KeyRing, Request
from galaxy.protocol import podtoken
from galaxy.protocol.pod import PodCommand, PodReport
from galaxy.spec import JobSpec, map_secrets
from galaxy.trace import Tracer

log = logging.getLogger(__name__)
SECRET_FIELDS = ("worker_secret", "pod_seed")  # sealed in job records (galaxy/coord/_sealed.py)

RECONCILE_INTERVAL = 0.5
GROUP_SYNC_INTERVAL = 2.0      # how often each job's containers are compared with ResMan's view
GONE_AFTER = 5.0               # a pod ResMan no longer lists and that stays silent this long is gone
MAX_OUTPUT = 64 * 1024         # bytes of exec stdout/stderr kept per pod


class Master:
    """Jobs, pods and the threads that keep them in ZooKeeper; owned by the leading AppMasterService."""

    def __init__(self, *, zk: KazooClient, paths: Paths, store: StateStore, keyring: KeyRing,
                 resman: ResManLink, zookeeper_hosts: str, worker_argv: list[str] | None = None,
                 state_key: StateKey | None = None, zookeeper_ca_pem: str = "") -> None:
        self.zk = zk
        self.paths = paths
        self.store = store
        self.keyring = keyring
        self.resman = resman
        self.zookeeper_hosts = zookeeper_hosts
        self.zookeeper_ca_pem = zookeeper_ca_pem    # AppWorkers check ZooKeeper's TLS port with it
        self.worker_argv = worker_argv or [sys.executable, "-m", "galaxy.appworker.main"]
        self.state_key = state_key  # seals worker keys and pod seeds at rest (galaxy/coord/_sealed.py)
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self.pods: dict[str, PodRow] = {}
        self.by_job: dict[str, set[str]] = {}
        self._awaiting: dict[str, int] = {}          # pod -> ticket its admission waits for
        self._published: dict[str, tuple[Any, ...]] = {}
        self._execs: dict[str, dict[str, Any]] = {}  # pod -> {"exec_id", "command", "timeout", "sent"}
        self._exec_results: dict[str, dict[str, Any]] = {}
        self._exec_cond = threading.Condition(self.lock)
        self._synced: dict[str, float] = {}
        self._stop = threading.Event()
        self.tracer = Tracer(zk, paths, "appmaster")
        self.naming = NamingPublisher(Naming(zk, paths))
        self.writer = StateWriter(store, self._snapshot)
        self.identities = workerkeys.PodIdentities()    # each pod's identity, bound to its proof
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild from `state/`: every job, every pod, every worker key."""
        jobs = self.store.list(JOBS_KIND)
        pods = self.store.list(PODS_KIND)
        with self.lock:
            for name, data in jobs.items():
                # A job whose secrets this AppMaster cannot open (another state key) stops the start,
                # loudly: skipped, it would look removed, and its containers would go with it.
                data = self._opened(data)
                try:
                    job = Job.from_state(data)
                except (KeyError, TypeError, ValueError, GalaxyError) as err:
                    log.error("skipping unreadable job record %s: %s", name, err)
                    continue
                self.jobs[name] = job
                self.by_job.setdefault(name, set())
                workerkeys.admit(self.keyring, name, job.worker_public)
            for pod, data in pods.items():
                try:
                    row = PodRow.from_state(data)
                except (KeyError, TypeError, ValueError) as err:
                    log.error("skipping unreadable pod record %s: %s", pod, err)
                    continue
                if row.job not in self.jobs:
                    continue
                row.reported_at = time.time()
                self.pods[pod] = row
                self.by_job[row.job].add(pod)
                self._published[pod] = row.naming_key()
        log.info("appmaster state loaded: %d jobs, %d pods", len(self.jobs), len(self.pods))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._reconcile_loop, name="appmaster-reconcile", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self.writer.close()
        self.naming.close()
        self.tracer.close()
        with self.lock:
            for job in self.jobs.values():
                workerkeys.revoke(self.keyring, job.worker_public)
            self._exec_cond.notify_all()

    # ---- persistence helpers ---------------------------------------------------------------------
    def _snapshot(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        out: dict[tuple[str, str], dict[str, Any] | None] = {}
        with self.lock:
            for kind, key in keys:
                if kind == JOBS_KIND:
                    job = self.jobs.get(key)
                    out[(kind, key)] = self._sealed(job.to_state()) if job is not None else None
                else:
                    row = self.pods.get(key)
                    out[(kind, key)] = row.to_state() if row is not None else None
        return out

    def _sealed(self, record: dict[str, Any]) -> dict[str, Any]:
        """A job record as written: its secrets (the worker key, the pod seed, every version's secret
        env values) sealed when this AppMaster has a state key."""
        key = self.state_key
        if key is None:
            return record
        versions = {label: map_secrets(spec, lambda name, value: key.seal(value, f"secret:{name}"))
                    for label, spec in record["versions"].items()}
        return {**record, "versions": versions, **{name: key.seal(record[name], name) for name in SECRET_FIELDS}}

    def _opened(self, record: Any) -> Any:
        """A job record as read: sealed secrets opened (a plain record from before sealing as it is)."""
        if not isinstance(record, dict):
            return record  # not a record at all: from_state says so
        opened = {**record, **{name: open_sealed(self.state_key, record.get(name, ""), name)
                               for name in SECRET_FIELDS}}
        versions = record.get("versions")
        if isinstance(versions, dict):
            opened["versions"] = {
                label: map_secrets(spec, lambda name, value: open_sealed(self.state_key, value, f"secret:{name}"))
                if isinstance(spec, dict) else spec for label, spec in versions.items()}
        return opened

    def _sealed_env(self, name: str, value: str) -> str:
        return self.state_key.seal(value, f"env:{name}") if self.state_key is not None else value

    def save_job(self, job: Job) -> int:
        job.updated_at = time.time()
        return self.writer.mark(JOBS_KIND, job.name)

    def job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None or job.removing:
            raise NotFound(f"no job {name!r}", field="job")
        return job

    def pod(self, name: str) -> PodRow:
        row = self.pods.get(name)
        if row is None:
            raise NotFound(f"no pod {name!r}", field="pod")
        return row

    def job_pods(self, name: str) -> list[PodRow]:
        return [self.pods[p] for p in sorted(self.by_job.get(name, ())) if p in self.pods]

    def trace_job(self, job: str, event: str, reason: str = "", **fields: Any) -> None:
        self.tracer.record("job", job, event, reason=reason, **fields)

    # ---- the pull path (mesh I/O thread: memory only) --------------------------------------------
    def handle_report(self, req: Request) -> dict[str, Any]:
        body = req.body
        if isinstance(body, dict) and podtoken.TOKEN_FIELD in body:  # checked below, not part of a report
            body = {k: v for k, v in body.items() if k != podtoken.TOKEN_FIELD}
        report = PodReport.from_wire(body)
        now = time.time()
        with self.lock:
            job = self.jobs.get(report.job)
            self.identities.admit(req, report.job, job.pod_seed if job is not None else None, report.pod)
            if job is None or job.removing:
                return PodCommand("stop", reason="the job is being removed").to_wire()
            row = self.pods.get(report.pod)
            if row is None:
                row = PodRow(pod=report.pod, job=report.job, created_at=now, updated_at=now)
                self.pods[report.pod] = row
                self.by_job.setdefault(report.job, set()).add(report.pod)
            before = row.to_state()
            events = absorb(row, report, now)
            ticket = self._awaiting.get(report.pod)
            if ticket is not None and not self.writer.committed(ticket):
                decision = Decision(PodCommand(interval=BUSY_INTERVAL))
            else:
                self._awaiting.pop(report.pod, None)
                decision = decide(job, row, report, now)
                if decision.admitted:
                    self.save_job(job)
                    self._awaiting[report.pod] = self.writer.mark(PODS_KIND, row.pod)
                elif job.rollout is not None and (row.pod in job.rollout.in_flight or decision.events):
                    self.save_job(job)
            command = decision.command
            if command.command == "none":
                command = self._attach_exec(row.pod, command)
            if row.to_state() != before:
                self.writer.mark(PODS_KIND, row.pod)
            self._publish(row)
        for event, reason, fields in events + decision.events:
            self.tracer.record("pod", row.pod, event, reason=reason, job=row.job, **fields)
        return command.to_wire()

    def _publish(self, row: PodRow) -> None:
        key = row.naming_key()
        if self._published.get(row.pod) != key:
            self._published[row.pod] = key
            self.naming.publish(row.job, row.pod, row.naming_record())

    def forget_pod(self, pod: str, why: str) -> None:
        """The pod's container is gone: drop the row, its naming record and its rollout slot."""
        with self.lock:
            row = self.pods.pop(pod, None)
            if row is None:
                return
            self.by_job.get(row.job, set()).discard(pod)
            self._published.pop(pod, None)
            self._awaiting.pop(pod, None)
            self.identities.forget(pod)
            job = self.jobs.get(row.job)
            if job is not None and job.rollout is not None and (pod in job.rollout.in_flight
                                                                or pod in job.rollout.done):
                job.rollout.forget(pod)
                self.save_job(job)
            self.writer.mark(PODS_KIND, pod)
            self.naming.remove(row.job, pod)
        self.tracer.record("pod", pod, "gone", reason=why, job=row.job)

    # ---- exec ------------------------------------------------------------------------------------
    def _attach_exec(self, pod: str, command: PodCommand) -> PodCommand:
        pending = self._execs.get(pod)
        if pending is None or pending["sent"]:
            return command
        pending["sent"] = True
        return PodCommand("exec", exec={"exec_id": pending["exec_id"], "command": pending["command"],
                                        "timeout": pending["timeout"]}, interval=command.interval)

    def exec_in_pods(self, job: str, command: str, timeout: float) -> dict[str, dict[str, Any]]:
        """Run `command` in every live pod of `job` (each on its next report); wait up to `timeout`."""
        exec_id = f"x{time.monotonic_ns():x}"
        with self.lock:
            pods = [r.pod for r in self.job_pods(job) if r.status in ("RUNNING", "STARTING") and not r.gave_up]
            for pod in pods:
                self._execs[pod] = {"exec_id": exec_id, "command": command, "timeout": timeout, "sent": False}
            deadline = time.monotonic() + timeout + 2 * BUSY_INTERVAL + 1.0
            while not self._stop.is_set():
                if all(p in self._exec_results and self._exec_results[p]["exec_id"] == exec_id for p in pods):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._exec_cond.wait(left)
            results = {}
            for pod in pods:
                got = self._exec_results.pop(pod, None)
                if self._execs.get(pod, {}).get("exec_id") == exec_id:
                    del self._execs[pod]
                if got is not None and got["exec_id"] == exec_id:
                    results[pod] = {k: got[k] for k in ("exit_code", "stdout", "stderr")}
                else:
                    results[pod] = {"exit_code": None, "stdout": "", "stderr": "", "error": "no result in time"}
        return results

    def handle_exec_result(self, req: Request) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        pod = body.get("pod")
        with self.lock:
            row = self.pods.get(pod) if isinstance(pod, str) else None
            if row is None:
                raise NotFound(f"no pod {pod!r}", field="pod")
            job = self.jobs.get(row.job)
            self.identities.admit(req, row.job, job.pod_seed if job is not None else "", row.pod)
            code = body.get("exit_code")
            self._exec_results[row.pod] = {
                "exec_id": str(body.get("exec_id", "")),
                "exit_code": code if isinstance(code, int) and not isinstance(code, bool) else None,
                "stdout": str(body.get("stdout", ""))[:MAX_OUTPUT],
                "stderr": str(body.get("stderr", ""))[:MAX_OUTPUT]}
            self._exec_cond.notify_all()
        return {"ok": True}

    # ---- ResMan ----------------------------------------------------------------------------------
    def group_body(self, job: Job, spec: JobSpec | None = None) -> dict[str, Any]:
        """`group.create` body: the job's container template, with the AppWorker as PID 1."""
        spec = spec or job.spec()
        res = spec.resources
        # The job's own env reaches the service with each command (program.env), never PID 1's environ:
        # a tenant's LD_PRELOAD or PYTHONPATH must not load code into the AppWorker, which holds caps.
        env = {"GALAXY_ZOOKEEPER": self.zookeeper_hosts, "GALAXY_CLUSTER": self.paths.cluster,
               "GALAXY_WORKER_KEY": self._sealed_env("GALAXY_WORKER_KEY", job.worker_secret),
               "GALAXY_WORKER_PUB": job.worker_public}
        if self.zookeeper_ca_pem:  # a public certificate; the container sees no host file
            env["GALAXY_ZOOKEEPER_CA_PEM"] = self.zookeeper_ca_pem
        if job.pod_seed:  # the Agent turns it into the pod's own token (galaxy/protocol/podtoken.py)
            env[podtoken.SEED_VAR] = self._sealed_env(podtoken.SEED_VAR, job.pod_seed)
        return {"group": job.name, "owner": job.owner, "pool": spec.pool, "replicas": job.replicas,
                "priority": spec.type, "max_per_host": spec.max_per_host, "labels": list(res.labels),
                "update_step": spec.update.pods_per_step(job.replicas),
                "container": {"cpu": res.cpu, "cpu_excess": res.cpu_excess, "memory": res.memory,
                              "user": spec.user, "init_as_root": True,
                              "disks": [d.to_dict() for d in res.disks],
                              "ports": [p.to_dict() for p in res.ports],
                              "mounts": [m.to_dict() for m in res.mounts],
                              "capabilities": list(spec.capabilities),
                              "argv": list(self.worker_argv), "env": env}}

    # ---- reconcile -------------------------------------------------------------------------------
    def _reconcile_loop(self) -> None:
        while not self._stop.wait(RECONCILE_INTERVAL):
            try:
                self.reconcile_once(time.time())
            except Exception:
                log.exception("reconcile pass failed")

    def reconcile_once(self, now: float) -> None:
        from galaxy.appmaster.groups import sync_group, tend_extras

        with self.lock:
            names = list(self.jobs)
        for name in names:
            self._tick_job(name, now)
            if self._stop.is_set():
                return
            if now - self._synced.get(name, 0.0) >= GROUP_SYNC_INTERVAL:
                self._synced[name] = now
                sync_group(self, name, now)
                tend_extras(self, name)

    def _tick_job(self, name: str, now: float) -> None:
        events: list[tuple[str, str, dict[str, Any]]] = []
        with self.lock:
            job = self.jobs.get(name)
            if job is None or job.removing:
                return
            rollout = job.rollout
            changed = False
            if rollout is not None:
                for event in rollout.tick(now):
                    changed = True
                    if event == "breakpoint":
                        events.append(("update_paused", "breakpoint reached", {"done": len(rollout.done)}))
                live = {r.pod: (r.version, r.status) for r in self.job_pods(name) if not r.gave_up}
                if rollout.complete(live, job.replicas):
                    events.append(("updated", "", {"version": rollout.target}))
                    job.rollout = None
                    changed = True
            pods = {r.pod: (r.version, r.status, r.gave_up, r.completed) for r in self.job_pods(name)}
            state = summarise_state(job, pods)
            if state != job.state:
                events.append(("state", job.reason, {"state": state, "was": job.state}))
                job.state = state
                changed = True
            if changed:
                self.save_job(job)
        for event, reason, fields in events:
            self.trace_job(name, event, reason, **fields)
