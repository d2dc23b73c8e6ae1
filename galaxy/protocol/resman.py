"""ResMan's mesh API: method names and the validation of every request body it accepts.

Callers are the AppMaster (groups), administrators (hosts, safe mode) and Agents (registration and
container events). Validation lives here, beside the names, so a client can check a body before it
sends it and the server refuses a bad one with `InvalidInput(field=...)` before anything changes.

A group's container template is validated by building the `ContainerRequest` an Agent would get
(with a placeholder id), so ResMan never accepts a template the Agent would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from galaxy.errors import InvalidInput
from galaxy.protocol.container import ContainerRequest

GROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
POOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PRIORITIES = ("service", "batch", "best-effort")
CONTAINER_STATES = ("pending", "allocating", "running", "exited", "destroying")
LOG_STREAMS = ("stdout", "stderr")
MAX_REPLICAS = 100_000
MAX_EXTRA = 16


class ResManApi:
    """Methods served by the ResMan leader."""

    # Agents
    REGISTER = "agent.register"            # host facts + containers, on every (re)connection
    CONTAINER_STATE = "container.state"    # event: a container changed state on an Agent
    # AppMaster and administrators: container groups
    GROUP_CREATE = "group.create"
    GROUP_UPDATE = "group.update"
    GROUP_SCALE = "group.scale"
    GROUP_REMOVE = "group.remove"
    GROUP_LIST = "group.list"
    GROUP_SHOW = "group.show"
    GROUP_EXTRA = "group.extra"
    GROUP_RELEASE = "group.release"
    CONTAINER_LOGS = "container.logs"
    # administrators: machines
    HOSTS_LIST = "hosts.list"
    HOST_TRACE = "host.trace"              # {"host", "limit"} -> [event]; trace/ is daemons-only in ZooKeeper
    HOST_OFFLINE = "host.offline"
    HOST_ONLINE = "host.online"
    HOST_DRAIN = "host.drain"
    HOST_LABEL = "host.label"
    HOST_UNLABEL = "host.unlabel"
    HOST_MOVE = "host.move"
    SAFEMODE_ENTER = "safemode.enter"
    SAFEMODE_LEAVE = "safemode.leave"
    SAFEMODE_STATUS = "safemode.status"


# ---- small typed readers ----------------------------------------------------------------------

def body_map(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidInput("expected a mapping", field="body")
    return body


def want_str(body: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None,
             default: str | None = None) -> str:
    value = body.get(key, default)
    if value is None:
        raise InvalidInput("is required", field=key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"expected a non-empty string, got {value!r:.60}", field=key)
    if pattern is not None and not pattern.match(value):
        raise InvalidInput(f"{value!r:.60} is not a valid name", field=key)
    return value


def want_int(body: dict[str, Any], key: str, lo: int, hi: int, default: int | None = None) -> int:
    value = body.get(key, default)
    if value is None:
        raise InvalidInput("is required", field=key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"expected an integer in {lo}..{hi}, got {value!r:.60}", field=key)
    return value


def want_labels(body: dict[str, Any], key: str = "labels") -> list[str]:
    value = body.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("expected a list of labels", field=key)
    for i, label in enumerate(value):
        if not isinstance(label, str) or not LABEL.match(label):
            raise InvalidInput(f"{label!r:.60} is not a label (letters, digits, '_', '.', '-')",
                               field=f"{key}[{i}]")
    return sorted(set(value))


def group_name(body: dict[str, Any]) -> str:
    return want_str(body, "group", GROUP_NAME)


def template(group: str, value: Any) -> dict[str, Any]:
    """The normalised container template (every default filled in), so equal specs compare equal."""
    if not isinstance(value, dict):
        raise InvalidInput("expected a mapping", field="container")
    for forbidden in ("id", "group", "owner"):   # owner: the group's, added to each create by ResMan
        if forbidden in value:
            raise InvalidInput("is set by ResMan, not by the caller", field=f"container.{forbidden}")
    try:
        req = ContainerRequest.from_wire({**value, "id": f"{group}.00000000", "group": group})
    except InvalidInput as err:
        raise InvalidInput(err.message, field=f"container.{err.field}" if err.field else "container") from None
    wire = req.to_wire()
    del wire["id"], wire["group"], wire["owner"]
    return wire


def max_per_host(body: dict[str, Any]) -> int | None:
    value = body.get("max_per_host")
    if value is None:
        return None
    return want_int(body, "max_per_host", 1, MAX_REPLICAS)


@dataclass(frozen=True)
class GroupSpec:
    """A validated `group.create` body."""

    group: str
    owner: str
    pool: str
    replicas: int
    priority: str
    max_per_host: int | None
    labels: list[str]
    update_step: int
    container: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, body: Any) -> GroupSpec:
        b = body_map(body)
        known = set(cls.__dataclass_fields__)
        for key in b:
            if key not in known:
                raise InvalidInput("unknown field", field=str(key))
        name = group_name(b)
        priority = b.get("priority", "service")
        if priority not in PRIORITIES:
            raise InvalidInput(f"expected one of {', '.join(PRIORITIES)}", field="priority")
        return cls(
            group=name, owner=want_str(b, "owner"), pool=want_str(b, "pool", POOL, "default"),
            replicas=want_int(b, "replicas", 0, MAX_REPLICAS), priority=priority,
            max_per_host=max_per_host(b), labels=want_labels(b),
            update_step=want_int(b, "update_step", 1, MAX_REPLICAS, 1),
            container=template(name, b.get("container")),
        )


UPDATABLE = ("container", "replicas", "labels", "max_per_host", "update_step")


def group_update(body: Any) -> tuple[str, dict[str, Any]]:
    """A validated `group.update` body: the group and the fields it changes (normalised)."""
    b = body_map(body)
    name = group_name(b)
    changes: dict[str, Any] = {}
    for key in b:
        if key != "group" and key not in UPDATABLE:
            raise InvalidInput("unknown field (updatable: " + ", ".join(UPDATABLE) + ")", field=str(key))
    if "container" in b:
        changes["container"] = template(name, b["container"])
    if "replicas" in b:
        changes["replicas"] = want_int(b, "replicas", 0, MAX_REPLICAS)
    if "labels" in b:
        changes["labels"] = want_labels(b)
    if "max_per_host" in b:
        changes["max_per_host"] = max_per_host(b)
    if "update_step" in b:
        changes["update_step"] = want_int(b, "update_step", 1, MAX_REPLICAS)
    return name, changes


def logs_request(body: Any) -> dict[str, Any]:
    b = body_map(body)
    container = want_str(b, "container")
    stream = b.get("stream", "stdout")
    if stream not in LOG_STREAMS:
        raise InvalidInput("expected stdout or stderr", field="stream")
    tail = want_int(b, "tail", 0, 1 << 20, 100)
    offset = b.get("offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise InvalidInput("expected a byte offset >= 0 or null", field="offset")
    return {"container": container, "stream": stream, "tail": tail, "offset": offset}


__all__ = [
    "CONTAINER_STATES", "GROUP_NAME", "GroupSpec", "LABEL", "LOG_STREAMS", "MAX_EXTRA", "MAX_REPLICAS", "POOL",
    "PRIORITIES", "ResManApi", "UPDATABLE", "body_map", "group_name", "group_update", "logs_request",
    "max_per_host", "template", "want_int", "want_labels", "want_str",
]
