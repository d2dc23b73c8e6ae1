"""The pull protocol between an AppWorker (in a container) and the AppMaster.

The worker calls `pod.report` on an interval and at once on every change of its own state; the reply
is the next command. The master never dials a worker: one request carries the worker's whole state and
the reply carries the master's whole intent, so a lost message costs one interval, a master failover
costs nothing but a few intervals, and the worker never depends on being reachable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from galaxy.errors import InvalidInput

REPORT = "pod.report"          # worker -> master: PodReport body, reply: PodCommand body
EXEC_RESULT = "pod.exec_result"  # worker -> master: {"pod", "exec_id", "exit_code", "stdout", "stderr"}

POD_STATES = (
    "PENDING", "DEPLOYING", "STARTING", "RUNNING", "STOPPING", "STOPPED",
    "DEPLOY_FAILED", "START_FAILED", "UPDATE_FAILED", "EXITED", "KILLED", "FAILED",
)
COMMANDS = ("none", "deploy", "start", "stop", "update", "restart", "reload", "give_up", "exec")


@dataclass
class PodReport:
    """What the worker knows of itself. `version` is what runs (or last ran); None before any deploy."""

    pod: str
    job: str
    status: str
    version: str | None = None
    host: str = ""
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom: bool = False
    core_dumped: bool = False
    restarts: int = 0
    healthy: bool | None = None
    endpoint: dict[str, Any] = field(default_factory=dict)   # {"address": str, "ports": {name: port}}
    data_version: str | None = None
    message: str = ""
    seq: int = 0                                              # increases with every state change

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, body: Any) -> PodReport:
        if not isinstance(body, dict):
            raise InvalidInput("expected a mapping", field="body")
        known = cls.__dataclass_fields__
        for key in body:
            if key not in known:
                raise InvalidInput("unknown field", field=str(key))
        for key in ("pod", "job", "status"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise InvalidInput("is required (a non-empty string)", field=key)
        if body["status"] not in POD_STATES:
            raise InvalidInput(f"expected one of {', '.join(POD_STATES)}", field="status")
        _opt(body, "version", str)
        _opt(body, "pid", int)
        _opt(body, "exit_code", int)
        _opt(body, "signal", int)
        _opt(body, "restarts", int)
        _opt(body, "seq", int)
        _opt(body, "endpoint", dict)
        _opt(body, "message", str)
        return cls(**body)


@dataclass
class PodCommand:
    """The master's answer. `program` is the job's program section (galaxy.spec Program.to_dict() shape)
    of `version`, sent with deploy/update/start so the worker needs nothing else."""

    command: str = "none"
    version: str | None = None
    program: dict[str, Any] | None = None
    delay: float = 0.0                       # wait this long before acting (restart backoff)
    exec: dict[str, Any] | None = None       # {"exec_id", "command", "timeout"}
    data: dict[str, Any] | None = None       # {"package", "reload", "version"} for reload
    interval: float = 1.0                    # next report in this many seconds (unless state changes)
    reason: str = ""

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, body: Any) -> PodCommand:
        if not isinstance(body, dict):
            raise InvalidInput("expected a mapping", field="body")
        known = cls.__dataclass_fields__
        unknown = [k for k in body if k not in known]
        if unknown:
            raise InvalidInput("unknown field", field=str(unknown[0]))
        if body.get("command", "none") not in COMMANDS:
            raise InvalidInput(f"expected one of {', '.join(COMMANDS)}", field="command")
        return cls(**body)


def _opt(body: dict[str, Any], key: str, kind: type) -> None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) and kind is int or not isinstance(value, kind)):
        raise InvalidInput(f"expected {kind.__name__}", field=key)
