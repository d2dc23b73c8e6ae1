"""The master's ``program`` dict, checked once and turned into typed values the worker acts on.

The master sends ``Program.to_dict()`` of a version plus ``"restart"`` (RestartPolicy dict) and
``"env"``. The worker never trusts it blindly: a malformed program becomes DEPLOY_FAILED naming the
field, not a crash of PID 1.

Like HealthPlan and DataPlan, the restart policy has its own small worker-side type instead of
``galaxy.spec.RestartPolicy``: importing ``galaxy.spec`` pulls in the job-file loader and yaml, about
15 ms of CPU in every one of a host's hundreds of worker start-ups, for three numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from galaxy.errors import InvalidInput

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class HealthPlan:
    """``tcp`` is a port name of the job; ``command`` runs through /bin/sh; exit 0 is healthy."""

    tcp: str | None = None
    command: str | None = None
    interval: float = 5.0
    timeout: float = 2.0


@dataclass(frozen=True)
class RestartPlan:
    """The job's restart policy as the worker applies it when no master answers (same rule as
    ``galaxy.spec.RestartPolicy.delay``: doubling from ``backoff_min``, capped at ``backoff_max``)."""

    max_retries: int = 10
    backoff_min: float = 1.0
    backoff_max: float = 60.0

    def delay(self, attempt: int) -> float:
        if attempt <= 0:
            return self.backoff_min
        return min(self.backoff_max, self.backoff_min * 2.0 ** min(attempt, 64))


@dataclass(frozen=True)
class DataPlan:
    package: str
    reload: str | None = None
    version: str | None = None
    sha256: str | None = None   # 64 lowercase hex digits, checked before the package is unpacked


@dataclass(frozen=True)
class ProgramPlan:
    version: str
    start: str
    package: str | None = None
    sha256: str | None = None   # of the package: 64 lowercase hex digits, checked before unpacking
    deploy: str | None = None
    stop: str | None = None
    health: HealthPlan | None = None
    data: DataPlan | None = None
    restart: RestartPlan = field(default_factory=RestartPlan)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float | None = None

    @classmethod
    def parse(cls, version: str | None, program: Any) -> ProgramPlan:
        if not isinstance(program, dict):
            raise InvalidInput("expected the program mapping with the command", field="program")
        version = version if version is not None else program.get("version")
        check_version(version, "version")
        assert isinstance(version, str)
        health = program.get("health")
        restart = program.get("restart") or {}
        backoff = restart.get("backoff") if isinstance(restart, dict) else None
        if not isinstance(restart, dict) or not isinstance(backoff or {}, dict):
            raise InvalidInput("expected {max_retries, backoff: {min, max}}", field="program.restart")
        env = program.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidInput("expected a mapping of strings", field="program.env")
        return cls(
            version=version,
            start=_text(program, "start", required=True) or "",
            package=_text(program, "package"), sha256=_sha256(program, "program"),
            deploy=_text(program, "deploy"), stop=_text(program, "stop"),
            health=_health(health) if health else None,
            data=_data(program.get("data"), "program.data") if program.get("data") else None,
            restart=RestartPlan(
                max_retries=int(_number(restart, "max_retries", 10, "program.restart")),
                backoff_min=_number(backoff or {}, "min", 1.0, "program.restart.backoff"),
                backoff_max=_number(backoff or {}, "max", 60.0, "program.restart.backoff")),
            env=dict(env),
            start_timeout=(_number(program, "start_timeout", 0.0, "program") or None),
        )


def parse_data(data: Any, version: str | None) -> DataPlan:
    """The ``data`` of a reload command: ``{"package", "reload", "version"}``."""
    plan = _data(data, "data")
    chosen = plan.version or version
    check_version(chosen, "data.version")
    return replace(plan, version=chosen)


def check_version(version: Any, field_name: str) -> None:
    """A version becomes a directory name: one plain path segment."""
    if not isinstance(version, str) or not version or len(version) > 128:
        raise InvalidInput("expected a non-empty string of at most 128 characters", field=field_name)
    if "/" in version or "\0" in version or version in (".", "..") or version.startswith("."):
        raise InvalidInput(f"must be usable as a directory name, got {version!r}", field=field_name)


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=f"program.{key}")
        return None
    if not isinstance(value, str):
        raise InvalidInput("expected a string", field=f"program.{key}")
    return value


def _number(body: dict[str, Any], key: str, default: float, where: str) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput("expected a number >= 0", field=f"{where}.{key}")
    return float(value)


def _health(body: Any) -> HealthPlan:
    if not isinstance(body, dict):
        raise InvalidInput("expected {tcp: port} or {command: ...}", field="program.health")
    tcp, command = body.get("tcp"), body.get("command")
    if (tcp is None) == (command is None):
        raise InvalidInput("expected exactly one of tcp or command", field="program.health")
    for key, value in (("tcp", tcp), ("command", command)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidInput("expected a non-empty string", field=f"program.health.{key}")
    return HealthPlan(tcp, command, max(0.05, _number(body, "interval", 5.0, "program.health")),
                      max(0.05, _number(body, "timeout", 2.0, "program.health")))


def _data(body: Any, where: str) -> DataPlan:
    if not isinstance(body, dict) or not isinstance(body.get("package"), str) or not body["package"]:
        raise InvalidInput("expected {package, reload}", field=where)
    reload, version = body.get("reload"), body.get("version")
    if reload is not None and not isinstance(reload, str):
        raise InvalidInput("expected a string", field=f"{where}.reload")
    if version is not None and not isinstance(version, str):
        raise InvalidInput("expected a string", field=f"{where}.version")
    return DataPlan(body["package"], reload or None, version or None, _sha256(body, where))


def _sha256(body: dict[str, Any], where: str) -> str | None:
    """The package's optional ``sha256``: absent (or empty) is None, anything but 64 lowercase hex
    digits is refused."""
    value = body.get("sha256")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise InvalidInput("expected 64 lowercase hex digits (the package's sha256)", field=f"{where}.sha256")
    return value
