"""What one container of a group needs from a host, precomputed once per group version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TMPFS = "tmpfs"


@dataclass(frozen=True, slots=True)
class Ask:
    cpu: float
    memory: int
    disks: tuple[tuple[str, int], ...] = ()     # (medium, bytes), summed per medium
    ports: int = 0                              # how many ports, dynamic and fixed
    fixed_ports: tuple[int, ...] = ()

    @classmethod
    def of(cls, template: dict[str, Any]) -> Ask:
        """From a normalised container template (galaxy.protocol.resman.template)."""
        per_medium: dict[str, int] = {}
        for disk in template.get("disks", ()):
            per_medium[disk["medium"]] = per_medium.get(disk["medium"], 0) + int(disk["size"])
        ports = template.get("ports", ())
        fixed = tuple(sorted(int(p["port"]) for p in ports if p.get("port") is not None))
        return cls(float(template["cpu"]), int(template["memory"]), tuple(sorted(per_medium.items())),
                   len(ports), fixed)
