"""A job as the AppMaster keeps it: its versions, its state, its rollout, its worker key.

One record per job under `state/jobs/<job>` (CBOR), holding every kept version's normalised spec, so
update and rollback move between versions a new leader can read back whole. Versions are labelled
"1", "2", … in submit/update order; a pod's `version` is such a label (the program's own version
string travels inside the program the worker receives).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from galaxy.appmaster.rollout import Rollout
from galaxy.errors import Conflict
from galaxy.protocol.podtoken import new_pod_seed
from galaxy.spec import JobSpec, parse_job

JOBS_KIND = "jobs"
MAX_VERSIONS = 20          # oldest versions beyond this are dropped (never the current or the source)

# What differs between two specs decides how an update is rolled out: a program (or env) change is
# done in place by the workers; anything the container is made of needs new containers from ResMan.
_CONTAINER_FIELDS = ("resources", "user", "pool", "max_per_host", "capabilities")


@dataclass
class Job:
    name: str
    owner: str
    version: str                               # the version the job is moving to / running
    versions: dict[str, dict[str, Any]]        # label -> JobSpec.to_dict()
    state: str = "PENDING"
    replicas: int = 1
    next_version: int = 2
    worker_public: str = ""
    worker_secret: str = ""
    pod_seed: str = ""                         # hex; the Agent derives each pod's token from it (podtoken)
    rollout: Rollout | None = None
    reason: str = ""
    removing: bool = False                     # remove in progress: the group is being given back
    extra: dict[str, Any] = field(default_factory=dict)   # "asked": n, "bad": {pod: host}
    created_at: float = 0.0
    updated_at: float = 0.0
    _parsed: dict[str, JobSpec] = field(default_factory=dict, repr=False, compare=False)

    # ---- versions --------------------------------------------------------------------------------
    def spec(self, label: str | None = None) -> JobSpec:
        """The validated spec of a version (the current one by default); parsed once per process."""
        key = label or self.version
        cached = self._parsed.get(key)
        if cached is None:
            if key not in self.versions:
                raise Conflict(f"job {self.name} has no version {key}", field="version")
            cached = self._parsed[key] = parse_job(self.versions[key])
        return cached

    @property
    def type(self) -> str:
        return self.spec().type

    @property
    def pool(self) -> str:
        return self.spec().pool

    def add_version(self, spec: JobSpec) -> str:
        label = str(self.next_version)
        self.next_version += 1
        self.versions[label] = spec.to_dict()
        self._parsed[label] = spec
        keep = {self.version, label}
        if self.rollout is not None:
            keep |= {self.rollout.source, self.rollout.target}
        for old in sorted(self.versions, key=int):
            if len(self.versions) <= MAX_VERSIONS:
                break
            if old not in keep:
                del self.versions[old]
                self._parsed.pop(old, None)
        return label

    def previous_version(self) -> str | None:
        """The version before the current one (what a rollback without a rollout returns to)."""
        older = [v for v in self.versions if int(v) < int(self.version)]
        return max(older, key=int) if older else None

    def program(self, label: str) -> dict[str, Any]:
        """What a worker needs to run `label`: the program, its restart policy, the job's env."""
        spec = self.spec(label)
        return {**spec.program.to_dict(), "restart": spec.restart.to_dict(), "env": dict(spec.env)}

    # ---- persistence -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "owner": self.owner, "version": self.version, "versions": self.versions,
                "state": self.state, "replicas": self.replicas, "next_version": self.next_version,
                "worker_public": self.worker_public, "worker_secret": self.worker_secret,
                "pod_seed": self.pod_seed,
                "rollout": self.rollout.to_dict() if self.rollout else None, "reason": self.reason,
                "removing": self.removing, "extra": self.extra, "created_at": self.created_at, "updated_at": self.updated_at}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Job:
        rollout = data.get("rollout")
        return cls(name=data["name"], owner=data["owner"], version=str(data["version"]),
                   versions={str(k): v for k, v in data["versions"].items()}, state=data.get("state", "PENDING"),
                   replicas=int(data.get("replicas", 1)), next_version=int(data.get("next_version", 2)),
                   worker_public=data.get("worker_public", ""), worker_secret=data.get("worker_secret", ""),
                   pod_seed=data.get("pod_seed", ""),
                   rollout=Rollout.from_dict(rollout) if rollout else None, reason=data.get("reason", ""),
                   removing=bool(data.get("removing", False)), extra=dict(data.get("extra") or {}), created_at=float(data.get("created_at", 0.0)),
                   updated_at=float(data.get("updated_at", 0.0)))


def new_job(spec: JobSpec, owner: str, worker_public: str, worker_secret: str, now: float | None = None) -> Job:
    now = time.time() if now is None else now
    return Job(name=spec.name, owner=owner, version="1", versions={"1": spec.to_dict()}, replicas=spec.replicas,
               worker_public=worker_public, worker_secret=worker_secret, pod_seed=new_pod_seed(),
               created_at=now, updated_at=now,
               _parsed={"1": spec})


def needs_new_containers(old: JobSpec, new: JobSpec) -> bool:
    """True when an update changes what the container is (resources, user, pool, placement)."""
    a, b = old.to_dict(), new.to_dict()
    return any(a[k] != b[k] for k in _CONTAINER_FIELDS)


def same_program(old: JobSpec, new: JobSpec) -> bool:
    """Nothing but replicas / policies changed: no new version is needed."""
    a, b = old.to_dict(), new.to_dict()
    return all(a[k] == b[k] for k in a if k not in ("replicas", "update", "restart"))


def summarise_state(job: Job, pods: dict[str, tuple[str | None, str, bool, bool]]) -> str:
    """The job's state from its pods: pods maps pod -> (version, status, gave_up, completed).

    Terminal and operator-driven states (STOPPING/STOPPED, an active rollout) are decided elsewhere;
    this covers the life of a job between them.
    """
    if job.state in ("STOPPING", "STOPPED", "COMPLETED"):
        if job.state == "STOPPING" and all(s not in ("DEPLOYING", "STARTING", "RUNNING", "STOPPING")
                                           for _, s, _, _ in pods.values()):
            return "STOPPED"
        return job.state
    if job.rollout is not None:
        return "PAUSED" if (job.rollout.paused or job.rollout.failed) else "UPDATING"
    given_up = sum(1 for _, _, g, _ in pods.values() if g)
    if job.type == "batch":
        completed = sum(1 for _, _, _, c in pods.values() if c)
        if given_up:
            return "FAILED"
        if completed >= job.replicas:
            return "COMPLETED"
    elif pods and given_up == len(pods):
        return "FAILED"
    running = sum(1 for v, s, g, _ in pods.values() if s == "RUNNING" and not g)
    if job.state in ("PENDING", "DEPLOYING", "FAILED"):
        if running >= job.replicas:
            return "RUNNING"
        return "DEPLOYING" if pods else "PENDING"
    return "RUNNING"
