"""What this host can give containers, and what it has given: cpu cores and memory bytes.

Disk space is accounted by `galaxy.disk.DiskPool` and ports by `galaxy.ports.PortTable`; this ledger
holds the rest. Capacity is the host's minus what the config holds back for the system, so the
Agent never promises the cores and memory its own host needs.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import psutil

from galaxy.errors import ResourceUnavailable


@dataclass(frozen=True)
class Capacity:
    cpu: float
    memory: int


def host_address(configured: str = "") -> str:
    """The address other hosts reach this one by: the configured one, else the first non-loopback IPv4."""
    if configured:
        return configured
    for _name, addrs in sorted(psutil.net_if_addrs().items()):
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return str(addr.address)
    return "127.0.0.1"


def host_capacity(reserved_cpu: float, reserved_memory: int) -> Capacity:
    cpu = float(psutil.cpu_count(logical=True) or 1) - reserved_cpu
    memory = int(psutil.virtual_memory().total) - reserved_memory
    return Capacity(max(cpu, 0.0), max(memory, 0))


class Ledger:
    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._held: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def used(self) -> Capacity:
        with self._lock:
            return Capacity(sum(c for c, _ in self._held.values()), sum(m for _, m in self._held.values()))

    def free(self) -> Capacity:
        used = self.used()
        return Capacity(round(self.capacity.cpu - used.cpu, 6), self.capacity.memory - used.memory)

    def reserve(self, owner: str, cpu: float, memory: int) -> None:
        """All or nothing; the error names what is short, asked and free."""
        with self._lock:
            if owner in self._held:
                return
            used_cpu = sum(c for c, _ in self._held.values())
            used_mem = sum(m for _, m in self._held.values())
            if used_cpu + cpu > self.capacity.cpu + 1e-9:
                raise ResourceUnavailable(
                    f"not enough cpu: asked {cpu:g}, free {self.capacity.cpu - used_cpu:g} cores", field="cpu")
            if used_mem + memory > self.capacity.memory:
                raise ResourceUnavailable(
                    f"not enough memory: asked {memory}, free {self.capacity.memory - used_mem} bytes",
                    field="memory")
            self._held[owner] = (cpu, memory)

    def adopt(self, owner: str, cpu: float, memory: int) -> None:
        """Re-hold what a running container already has, even past capacity (config may shrink)."""
        with self._lock:
            self._held[owner] = (cpu, memory)

    def release(self, owner: str) -> None:
        with self._lock:
            self._held.pop(owner, None)
