"""ResMan's objects in memory: container groups and containers.

Only what a new leader cannot learn from the Agents is persisted (see `state.py`): a group's spec,
and for each container whether it is placed (and where) or being destroyed. `pending` containers
are never written: a new leader recreates them from the group's desired count. `running` is what
the Agent says, so it is not written either: a placement is written once, before its creation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from galaxy.protocol.resman import GroupSpec
from galaxy.resman.scheduler import Ask, GroupAsk

PENDING, ALLOCATING, RUNNING, EXITED, DESTROYING = "pending", "allocating", "running", "exited", "destroying"
PRIORITY_ORDER = {"service": 0, "batch": 1, "best-effort": 2}


@dataclass
class Group:
    name: str
    owner: str
    pool: str
    replicas: int
    priority: str
    max_per_host: int | None
    labels: list[str]
    update_step: int
    template: dict[str, Any]
    version: int = 1
    extra: int = 0
    avoid_hosts: list[str] = field(default_factory=list)
    created_at: float = 0.0
    # runtime only
    containers: set[str] = field(default_factory=set)
    pending: dict[str, None] = field(default_factory=dict)   # ordered set of pending container ids
    failures: int = 0
    not_before: float = 0.0                                   # monotonic: no placement before
    avoid: dict[str, float] = field(default_factory=dict)     # host -> monotonic until
    reason: str = ""
    _ask: Ask | None = None

    @classmethod
    def from_spec(cls, spec: GroupSpec, now: float) -> Group:
        return cls(spec.group, spec.owner, spec.pool, spec.replicas, spec.priority, spec.max_per_host,
                   list(spec.labels), spec.update_step, dict(spec.container), created_at=now)

    def same_spec(self, spec: GroupSpec) -> bool:
        return (self.owner, self.pool, self.replicas, self.priority, self.max_per_host, self.labels,
                self.update_step, self.template) == (spec.owner, spec.pool, spec.replicas, spec.priority,
                                                     spec.max_per_host, list(spec.labels), spec.update_step,
                                                     spec.container)

    @property
    def ask(self) -> Ask:
        if self._ask is None:
            self._ask = Ask.of(self.template)
        return self._ask

    def set_template(self, template: dict[str, Any]) -> None:
        self.template = template
        self._ask = None

    @property
    def target(self) -> int:
        return self.replicas + self.extra

    def group_ask(self, now: float) -> GroupAsk:
        avoid = {h for h, until in self.avoid.items() if until > now} | set(self.avoid_hosts)
        return GroupAsk(self.name, self.pool, self.ask, tuple(self.labels), self.max_per_host, frozenset(avoid))

    def record(self) -> dict[str, Any]:
        return {"owner": self.owner, "pool": self.pool, "replicas": self.replicas, "priority": self.priority,
                "max_per_host": self.max_per_host, "labels": self.labels, "update_step": self.update_step,
                "container": self.template, "version": self.version, "extra": self.extra,
                "avoid_hosts": self.avoid_hosts, "created_at": self.created_at}

    @classmethod
    def from_record(cls, name: str, rec: dict[str, Any]) -> Group:
        return cls(name, rec["owner"], rec["pool"], rec["replicas"], rec.get("priority", "service"),
                   rec.get("max_per_host"), list(rec.get("labels", [])), rec.get("update_step", 1),
                   rec["container"], rec.get("version", 1), rec.get("extra", 0),
                   list(rec.get("avoid_hosts", [])), rec.get("created_at", 0.0))

    def summary(self) -> dict[str, Any]:
        return {"group": self.name, "pool": self.pool, "owner": self.owner, "replicas": self.replicas,
                "version": self.version}


class Container:
    __slots__ = ("id", "group", "version", "host", "state", "ports", "exit", "reason", "placed_at",
                 "confirmed_at", "missing", "create_sent", "destroy_sent")

    def __init__(self, container_id: str, group: str, version: int) -> None:
        self.id = container_id
        self.group = group
        self.version = version
        self.host: str | None = None
        self.state = PENDING
        self.ports: dict[str, int] = {}
        self.exit: Any = None
        self.reason = ""
        self.placed_at = 0.0
        self.confirmed_at = 0.0
        self.missing = 0              # consecutive Agent reports that did not list it
        self.create_sent = False
        self.destroy_sent = False

    def __repr__(self) -> str:
        return f"Container({self.id!r}, {self.state}, host={self.host!r}, v{self.version})"

    @property
    def live(self) -> bool:
        return self.state in (PENDING, ALLOCATING, RUNNING)

    def record(self) -> dict[str, Any] | None:
        """What ZooKeeper holds for it; None = no record (pending, or gone)."""
        if self.host is None or self.state == PENDING:
            return None
        state = "destroying" if self.state in (DESTROYING, EXITED) else "placed"
        return {"group": self.group, "version": self.version, "host": self.host, "state": state}

    @staticmethod
    def new_id(group: str, taken: dict[str, Container]) -> str:
        while True:
            cid = f"{group}.{secrets.token_hex(4)}"
            if cid not in taken:
                return cid
