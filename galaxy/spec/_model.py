"""The validated job: frozen dataclasses, plain values (bytes as int, durations as float seconds).

Objects are built by `parse_job`, which checks every field; constructing them by hand skips those
checks. ``to_dict`` gives the normalised plain form (every field present, defaults filled in), which is
what goes into ZooKeeper and over the mesh, and ``parse_job(spec.to_dict()) == spec``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from galaxy.spec._rules import port_env_name

JobType = Literal["service", "batch", "best-effort"]
JOB_TYPES: tuple[str, ...] = ("service", "batch", "best-effort")
SECRET_KEY = "secret"      # env: {NAME: {secret: value}} marks a secret value
HIDDEN = "(hidden)"        # what is shown in place of a secret value


def map_secrets(spec: dict[str, Any], fn: Any) -> dict[str, Any]:
    """A copy of a spec's plain form (``JobSpec.to_dict``) with each secret env value ``v`` of name
    ``n`` replaced by ``fn(n, v)``: how a spec is sealed for ZooKeeper, opened, or shown."""
    env = spec.get("env")
    if not isinstance(env, dict) or not any(isinstance(v, dict) for v in env.values()):
        return spec
    return {**spec, "env": {name: {SECRET_KEY: fn(name, value[SECRET_KEY])}
                            if isinstance(value, dict) and SECRET_KEY in value else value
                            for name, value in env.items()}}


def redacted(spec: dict[str, Any]) -> dict[str, Any]:
    """The plain form as users see it (`job show`): every secret value hidden."""
    return map_secrets(spec, lambda _name, _value: HIDDEN)


@dataclass(frozen=True, kw_only=True)
class DiskRequest:
    """A disk of exactly ``size`` bytes on a host medium, mounted at ``path`` in the container."""

    medium: str
    size: int
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"medium": self.medium, "size": self.size, "path": self.path}


@dataclass(frozen=True, kw_only=True)
class PortRequest:
    """A named port: ``port`` None means the Agent picks one from its range."""

    name: str
    port: int | None = None

    @property
    def env_name(self) -> str:
        """The variable the service reads its port number from, e.g. ``GALAXY_PORT_HTTP``."""
        return port_env_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port}


@dataclass(frozen=True, kw_only=True)
class MountSpec:
    """A host directory bound at ``path`` in the container (read-only unless said otherwise)."""

    host: str
    path: str
    readonly: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "path": self.path, "readonly": self.readonly}


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one container of the job gets; ``labels`` are host labels it must run on (sorted)."""

    cpu: float
    cpu_excess: bool = False
    memory: int
    disks: tuple[DiskRequest, ...] = ()
    ports: tuple[PortRequest, ...] = ()
    labels: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()

    @property
    def millicores(self) -> int:
        return round(self.cpu * 1000)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu, "cpu_excess": self.cpu_excess, "memory": self.memory,
            "disks": [d.to_dict() for d in self.disks], "ports": [p.to_dict() for p in self.ports],
            "labels": list(self.labels), "mounts": [m.to_dict() for m in self.mounts],
        }


@dataclass(frozen=True, kw_only=True)
class HealthCheck:
    """Exactly one of ``tcp`` (a port name of the job: healthy when it accepts) or ``command`` (exit 0)."""

    tcp: str | None = None
    command: str | None = None
    interval: float = 5.0
    timeout: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return {"tcp": self.tcp, "command": self.command, "interval": self.interval, "timeout": self.timeout}


@dataclass(frozen=True, kw_only=True)
class DataPackage:
    """A data package deployed beside the program; ``reload`` (if any) tells the service to re-read it.
    ``sha256`` (lower-case hex), when given, is the digest the fetched package must have."""

    package: str
    reload: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"package": self.package, "reload": self.reload, "sha256": self.sha256}


@dataclass(frozen=True, kw_only=True)
class Program:
    """What the AppWorker runs: fetch ``package`` (checked against ``sha256`` when given), run ``deploy``
    once, then ``start`` (all via /bin/sh)."""

    version: str
    package: str | None = None
    sha256: str | None = None
    deploy: str | None = None
    start: str
    stop: str | None = None
    health: HealthCheck | None = None
    data: DataPackage | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "package": self.package, "sha256": self.sha256, "deploy": self.deploy,
            "start": self.start,
            "stop": self.stop, "health": self.health.to_dict() if self.health else None,
            "data": self.data.to_dict() if self.data else None,
        }


@dataclass(frozen=True, kw_only=True)
class UpdatePolicy:
    """Rolling update: ``step`` pods (or ``step`` percent of replicas) at a time."""

    step: int = 1
    step_is_percent: bool = False
    pause_between: float = 0.0
    max_failures: int = 0

    def pods_per_step(self, replicas: int) -> int:
        """How many pods one step updates: a percentage rounds up, and a step is never empty."""
        if not self.step_is_percent:
            return self.step
        return max(1, math.ceil(replicas * self.step / 100))

    def to_dict(self) -> dict[str, Any]:
        step: int | str = f"{self.step}%" if self.step_is_percent else self.step
        return {"step": step, "pause_between": self.pause_between, "max_failures": self.max_failures}


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """Restart a failed pod up to ``max_retries`` times, waiting an exponential backoff in a range."""

    max_retries: int = 10
    backoff_min: float = 1.0
    backoff_max: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): doubling from min, capped at max."""
        if attempt <= 0:
            return self.backoff_min
        return min(self.backoff_max, self.backoff_min * 2.0 ** min(attempt, 64))

    def to_dict(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries,
                "backoff": {"min": self.backoff_min, "max": self.backoff_max}}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One version of a job as the user wrote it, validated and normalised."""

    name: str
    type: JobType = "service"
    pool: str = "default"
    replicas: int = 1
    max_per_host: int | None = None
    resources: Resources
    program: Program
    user: str = "nobody"
    env: dict[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()  # env names whose values are secret: sealed at rest, never shown
    capabilities: tuple[str, ...] = ()   # Linux capabilities added to the service's empty set (sorted)
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a job file says it (``parse_job`` reads it back): a secret value as ``{secret: v}``."""
        env = {name: {SECRET_KEY: value} if name in self.secrets else value for name, value in self.env.items()}
        return {
            "name": self.name, "type": self.type, "pool": self.pool, "replicas": self.replicas,
            "max_per_host": self.max_per_host, "resources": self.resources.to_dict(),
            "program": self.program.to_dict(), "user": self.user, "env": env,
            "capabilities": list(self.capabilities),
            "update": self.update.to_dict(), "restart": self.restart.to_dict(),
        }

    def fingerprint(self) -> str:
        """A stable hex digest of the normalised spec: equal specs, equal fingerprints, in any process."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def __hash__(self) -> int:  # env is a dict, so the generated hash would fail
        return hash(self.fingerprint())
