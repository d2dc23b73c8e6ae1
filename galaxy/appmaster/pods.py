"""Pods as the master tracks them, and the decision it answers each worker report with.

`decide` is the whole of the master's judgement on one pod: a function of the job (its state, target
version, rollout, restart policy), the pod's row and the worker's report, at time `now`. It changes
only the row and the job's rollout in memory and returns the command; the caller persists and
traces. Keeping it free of I/O is what lets a new leader, fed the same state and reports, make the
same decisions, and lets the rules be tested one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from galaxy.appmaster.jobs import Job
from galaxy.appmaster.restart import describe_failure, is_failure, judge_failure, stable
from galaxy.protocol.pod import PodCommand, PodReport

PODS_KIND = "pods"
ACTIVE = frozenset({"DEPLOYING", "STARTING", "RUNNING", "STOPPING"})
IN_PROGRESS = frozenset({"DEPLOYING", "STARTING", "STOPPING"})
REPORT_INTERVAL = 1.0
BUSY_INTERVAL = 0.25       # while a rollout moves or a decision waits for ZooKeeper: report sooner


@dataclass
class PodRow:
    pod: str
    job: str
    host: str = ""
    address: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    status: str = "PENDING"
    version: str | None = None        # what the worker runs (or last ran)
    target: str | None = None         # the version the master assigned to this pod
    restarts: int = 0
    exit_code: int | None = None
    reason: str = ""
    failures: int = 0                 # consecutive, for the restart policy
    failure_seq: int = -1
    retry_at: float = 0.0
    gave_up: bool = False
    completed: bool = False
    running_since: float | None = None
    seq: int = -1
    created_at: float = 0.0
    updated_at: float = 0.0
    reported_at: float = 0.0          # in memory only: when the worker was last heard

    @property
    def shown_status(self) -> str:
        return "FAILED" if self.gave_up else self.status

    def endpoint(self) -> dict[str, Any]:
        return {"address": self.address, "ports": dict(self.ports)}

    def row(self) -> dict[str, Any]:
        """The `pod.list` row of the API."""
        return {"pod": self.pod, "job": self.job, "host": self.host, "address": self.address,
                "status": self.shown_status, "version": self.version, "target": self.target,
                "restarts": self.restarts, "ports": dict(self.ports), "endpoint": self.endpoint(),
                "reason": self.reason, "exit_code": self.exit_code, "completed": self.completed,
                "updated_at": self.updated_at}

    def naming_record(self) -> dict[str, Any]:
        """What `naming/<job>/<pod>` says (read by any ZooKeeper client)."""
        return {"pod": self.pod, "job": self.job, "host": self.host, "address": self.address,
                "ports": dict(self.ports), "status": self.shown_status, "version": self.version,
                "updated_at": self.updated_at}

    def naming_key(self) -> tuple[Any, ...]:
        return (self.host, self.address, tuple(sorted(self.ports.items())), self.shown_status, self.version)

    def to_state(self) -> dict[str, Any]:
        return {"pod": self.pod, "job": self.job, "host": self.host, "address": self.address,
                "ports": dict(self.ports), "status": self.status, "version": self.version, "target": self.target,
                "restarts": self.restarts, "exit_code": self.exit_code, "reason": self.reason,
                "failures": self.failures, "failure_seq": self.failure_seq, "retry_at": self.retry_at,
                "gave_up": self.gave_up, "completed": self.completed, "running_since": self.running_since,
                "seq": self.seq, "created_at": self.created_at, "updated_at": self.updated_at}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> PodRow:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known and k != "reported_at"})


@dataclass
class Decision:
    command: PodCommand
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)   # (event, reason, fields)
    admitted: bool = False            # the rollout took this pod: persist before the command goes out


def absorb(row: PodRow, report: PodReport, now: float) -> list[tuple[str, str, dict[str, Any]]]:
    """Take the worker's facts into the row; returns the transitions worth tracing."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    if report.status != row.status or report.version != row.version:
        events.append(("status", report.message, {"status": report.status, "version": report.version,
                                                  "was": row.status, "exit_code": report.exit_code,
                                                  "signal": report.signal}))
        row.updated_at = now
    row.status = report.status
    row.version = report.version
    row.exit_code = report.exit_code
    row.restarts = max(row.restarts, report.restarts)
    if report.host:
        row.host = report.host
    endpoint = report.endpoint or {}
    address = endpoint.get("address")
    ports = endpoint.get("ports")
    if isinstance(address, str) and address and address != row.address:
        row.address = address
        row.updated_at = now
    if isinstance(ports, dict) and ports != row.ports:
        row.ports = {str(k): int(v) for k, v in ports.items() if isinstance(v, int)}
        row.updated_at = now
    row.reported_at = now
    return events


def decide(job: Job, row: PodRow, report: PodReport, now: float) -> Decision:
    """The next command for `row`'s worker, which just sent `report` (already absorbed)."""
    batch = job.type == "batch"
    rollout = job.rollout
    interval = BUSY_INTERVAL if rollout is not None and rollout.moving else REPORT_INTERVAL
    status = report.status
    decision = Decision(PodCommand(interval=interval))

    if batch and status == "EXITED" and report.exit_code == 0:
        if not row.completed:
            row.completed = True
            decision.events.append(("completed", "exit code 0", {}))
        return decision
    if job.state in ("STOPPING", "STOPPED"):
        if status in ACTIVE and status != "STOPPING":
            decision.command = PodCommand("stop", reason=f"job {job.state.lower()}", interval=interval)
        return decision
    if row.gave_up:
        if status != "FAILED":
            decision.command = PodCommand("give_up", reason=row.reason, interval=REPORT_INTERVAL)
        return decision

    if row.target is None:
        row.target = job.version
    if rollout is not None and row.target != rollout.target:
        if report.version is None or report.version == rollout.target:
            row.target = rollout.target
        elif rollout.admit(row.pod, now):
            row.target = rollout.target
            decision.admitted = True
            decision.events.append(("admitted", "", {"from": report.version, "to": rollout.target}))
            return decision          # the command follows once the admission is in ZooKeeper
    desired = row.target
    program = job.program(desired)

    if is_failure(status, report.exit_code, batch):
        row.running_since = None
        if report.seq != row.failure_seq:
            verdict = judge_failure(job.spec(desired).restart, row.failures, now)
            row.failures, row.failure_seq, row.retry_at = verdict.failures, report.seq, verdict.retry_at
            row.reason = describe_failure(status, report.exit_code, report.signal, report.oom, report.message)
            if rollout is not None and rollout.observe_failure(row.pod):
                decision.events.append(("update_failed", rollout.reason, {}))
            if verdict.give_up:
                row.gave_up = True
                row.updated_at = now
                decision.events.append(("gave_up", row.reason, {"failures": verdict.failures}))
                decision.command = PodCommand("give_up", reason=row.reason, interval=REPORT_INTERVAL)
                return decision
            decision.events.append(("retry", row.reason, {"failures": verdict.failures,
                                                          "delay": round(verdict.retry_at - now, 3)}))
        if status == "DEPLOY_FAILED" or report.version is None:
            verb = "deploy"
        elif status == "UPDATE_FAILED" or report.version != desired:
            verb = "update"
        else:
            verb = "restart"
        decision.command = PodCommand(verb, version=desired, program=program, delay=max(0.0, row.retry_at - now),
                                      reason=row.reason, interval=interval)
        return decision

    if status == "RUNNING":
        if row.running_since is None:
            row.running_since = now
        if row.failures and stable(row.running_since, now):
            row.failures = 0
        if rollout is not None:
            rollout.observe_running(row.pod, report.version, now)
    else:
        row.running_since = None

    if report.version is None:
        # A fresh pod (nothing deployed yet) is told to start at once: the worker deploys first when the
        # version is not in its workspace, so a separate `deploy` would only add a report round trip
        # (DEPLOYING → STOPPED → report → `start`) and one more naming write per pod.
        if status not in IN_PROGRESS:
            decision.command = PodCommand("start", version=desired, program=program, interval=interval)
    elif report.version != desired:
        if status not in IN_PROGRESS:
            decision.command = PodCommand("update", version=desired, program=program, interval=interval)
    elif status in ("PENDING", "STOPPED"):
        decision.command = PodCommand("start", version=desired, program=program, interval=interval)
    return decision
