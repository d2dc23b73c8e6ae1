"""ResMan's view of one host's resources, debited at once by its own placements.

The Agent is the authority: each report (registration or poll) replaces `reported_*`. Placements the
Agent has not reported yet are kept in `unreported` and subtracted on top, so a report that was on
its way while we placed never makes the host look emptier than it is (optimistic debit, corrected
by the next report).
"""

from __future__ import annotations

from typing import Any

from galaxy.resman.scheduler.ask import TMPFS, Ask

ONLINE, OFFLINE, DRAINING = "online", "offline", "draining"
ADMIN_STATES = (ONLINE, OFFLINE, DRAINING)


class HostView:
    __slots__ = (
        "id", "pool", "labels", "admin", "alive", "address", "cap_cpu", "cap_memory", "cap_disks",
        "rep_cpu", "rep_memory", "rep_disks", "rep_ports", "rep_used_ports", "unreported",
        "free_cpu", "free_memory", "free_disks", "free_ports", "used_ports", "group_count", "containers",
    )

    def __init__(self, host_id: str, pool: str = "default", labels: frozenset[str] = frozenset()) -> None:
        self.id = host_id
        self.pool = pool
        self.labels = labels
        self.admin = ONLINE
        self.alive = False
        self.address = ""
        self.cap_cpu = 0.0
        self.cap_memory = 0
        self.cap_disks: dict[str, int] = {}
        self.rep_cpu = 0.0
        self.rep_memory = 0
        self.rep_disks: dict[str, int] = {}
        self.rep_ports = 0
        self.rep_used_ports: set[int] = set()
        self.unreported: dict[str, Ask] = {}      # container id -> ask, placed but not yet reported
        self.free_cpu = 0.0
        self.free_memory = 0
        self.free_disks: dict[str, int] = {}
        self.free_ports = 0
        self.used_ports: set[int] = set()
        self.group_count: dict[str, int] = {}     # group -> containers of it assigned here
        self.containers: set[str] = set()         # container ids assigned here (by ResMan's records)

    def __repr__(self) -> str:
        return f"HostView({self.id!r}, pool={self.pool!r}, free_cpu={self.free_cpu:g})"

    @property
    def schedulable(self) -> bool:
        return self.alive and self.admin == ONLINE

    # ---- reports ------------------------------------------------------------------------------
    def set_capacity(self, capacity: dict[str, Any], disks: list[dict[str, Any]] | None) -> None:
        self.cap_cpu = float(capacity.get("cpu", 0.0))
        self.cap_memory = int(capacity.get("memory", 0))
        if disks is not None:
            per: dict[str, int] = {}
            for d in disks:
                per[d["medium"]] = per.get(d["medium"], 0) + int(d.get("capacity", 0))
            self.cap_disks = per

    def report(self, free: dict[str, Any], reported_ids: set[str], used_ports: set[int]) -> None:
        """A fresh Agent report: its free figures, the containers it has, the ports they hold."""
        self.rep_cpu = float(free.get("cpu", 0.0))
        self.rep_memory = int(free.get("memory", 0))
        self.rep_disks = {str(k): int(v) for k, v in (free.get("disks") or {}).items()}
        self.rep_ports = int(free.get("ports", 0))
        self.rep_used_ports = used_ports
        for cid in [c for c in self.unreported if c in reported_ids]:
            del self.unreported[cid]
        self.recompute()

    def recompute(self) -> None:
        cpu, memory, ports = self.rep_cpu, self.rep_memory, self.rep_ports
        disks = dict(self.rep_disks)
        used = set(self.rep_used_ports)
        for ask in self.unreported.values():
            cpu -= ask.cpu
            memory -= ask.memory
            ports -= ask.ports
            for medium, size in ask.disks:
                if medium in disks:
                    disks[medium] -= size
            used.update(ask.fixed_ports)
        self.free_cpu, self.free_memory, self.free_ports = cpu, memory, ports
        self.free_disks = disks
        self.used_ports = used

    # ---- placements ---------------------------------------------------------------------------
    def fits(self, ask: Ask) -> str | None:
        """None if the ask fits in what is free, else the reason (a short, countable phrase)."""
        if ask.cpu > self.free_cpu + 1e-9:
            return "not enough cpu"
        if ask.memory > self.free_memory:
            return "not enough memory"
        for medium, size in ask.disks:
            free = self.free_disks.get(medium)
            if free is None:
                if medium != TMPFS:
                    return f"no {medium} disk"
            elif size > free:
                return f"not enough {medium} disk"
        if ask.ports > self.free_ports:
            return "not enough free ports"
        for port in ask.fixed_ports:
            if port in self.used_ports:
                return f"port {port} taken"
        return None

    def debit(self, container_id: str, group: str, ask: Ask) -> None:
        self.unreported[container_id] = ask
        self.free_cpu -= ask.cpu
        self.free_memory -= ask.memory
        self.free_ports -= ask.ports
        for medium, size in ask.disks:
            if medium in self.free_disks:
                self.free_disks[medium] -= size
        self.used_ports.update(ask.fixed_ports)
        self.assign(container_id, group)

    def assign(self, container_id: str, group: str) -> None:
        if container_id not in self.containers:
            self.containers.add(container_id)
            self.group_count[group] = self.group_count.get(group, 0) + 1

    def release(self, container_id: str, group: str) -> None:
        """The container left this host (destroyed, failed, moved): its share is free again."""
        if self.unreported.pop(container_id, None) is not None:
            self.recompute()
        if container_id in self.containers:
            self.containers.discard(container_id)
            left = self.group_count.get(group, 0) - 1
            if left > 0:
                self.group_count[group] = left
            else:
                self.group_count.pop(group, None)

    def utilisation(self, ask: Ask | None = None) -> float:
        """Mean share of cpu and memory in use, after placing `ask` when given (0..1)."""
        cpu_used = self.cap_cpu - self.free_cpu + (ask.cpu if ask else 0.0)
        mem_used = self.cap_memory - self.free_memory + (ask.memory if ask else 0)
        cpu = cpu_used / self.cap_cpu if self.cap_cpu > 0 else 1.0
        mem = mem_used / self.cap_memory if self.cap_memory > 0 else 1.0
        return (cpu + mem) / 2

    def free_wire(self) -> dict[str, Any]:
        return {"cpu": round(self.free_cpu, 6), "memory": self.free_memory, "disks": dict(self.free_disks),
                "ports": self.free_ports}

    def capacity_wire(self) -> dict[str, Any]:
        return {"cpu": self.cap_cpu, "memory": self.cap_memory, "disks": dict(self.cap_disks)}
