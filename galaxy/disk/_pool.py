"""Capacity accounting of one host's disks, per medium.

The pool is bookkeeping only (no kernel work): the Agent reserves before it calls ``ensure_disk``
and frees after ``release_disk``, so an image is never made on a disk that has no room for it. Images
are sparse, so the kernel would happily overcommit a host disk; counting apparent sizes here is what
keeps a full container disk from filling the host disk under its neighbours.

Placement picks, per request, the host disk of the asked medium with the most free bytes (ties go
to the order of the configuration). That spreads a container's disks and the host's load over the
spindles, and it is deterministic, so the same requests on the same state place the same way.
``tmpfs`` without a configured ``HostDisk`` is unlimited here: its budget is host memory, which the
caller accounts for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from galaxy.errors import Conflict, InvalidInput, ResourceUnavailable

TMPFS = "tmpfs"


def _check_bytes(value: object, field: str, *, positive: bool) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (1 if positive else 0):
        raise InvalidInput(f"must be an integer {'> 0' if positive else '>= 0'}, got {value!r}",
                           field=field)


def _check_name(value: object, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"must be a non-empty string, got {value!r}", field=field)


@dataclass(frozen=True)
class HostDisk:
    """A host filesystem that holds images: where it is mounted, its medium, bytes Galaxy may use."""

    path: str
    medium: str
    capacity: int

    def __post_init__(self) -> None:
        _check_name(self.path, "path")
        _check_name(self.medium, "medium")
        _check_bytes(self.capacity, "capacity", positive=False)


@dataclass(frozen=True)
class DiskRequest:
    """One disk a container asks for."""

    medium: str
    size: int

    def __post_init__(self) -> None:
        _check_name(self.medium, "medium")
        _check_bytes(self.size, "size", positive=True)


@dataclass(frozen=True)
class Placement:
    """Where one requested disk went: ``host_disk`` is None for an unlimited tmpfs."""

    owner: str
    index: int
    host_disk: HostDisk | None
    medium: str
    size: int


def _bytes(n: int) -> str:
    """Bytes as the error messages show them: exact count, then a readable size."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n} bytes ({n / scale:.1f} {unit})"
    return f"{n} bytes"


class DiskPool:
    """Reservations of disk bytes by (owner, index) on a fixed list of host disks. Thread-safe."""

    def __init__(self, disks: list[HostDisk]) -> None:
        seen: set[str] = set()
        for i, disk in enumerate(disks):
            if not isinstance(disk, HostDisk):
                raise InvalidInput(f"must be a HostDisk, got {disk!r}", field=f"disks[{i}]")
            if disk.path in seen:
                raise InvalidInput(f"lists {disk.path} twice", field=f"disks[{i}].path")
            seen.add(disk.path)
        self._disks = list(disks)
        self._by_path = {d.path: d for d in disks}
        self._used: dict[str, int] = {d.path: 0 for d in disks}
        self._held: dict[str, list[Placement]] = {}
        self._lock = threading.Lock()

    @property
    def disks(self) -> list[HostDisk]:
        return list(self._disks)

    def _place(self, owner: str, requests: list[DiskRequest]) -> list[Placement]:
        used = dict(self._used)
        placements = []
        for i, req in enumerate(requests):
            candidates = [d for d in self._disks if d.medium == req.medium]
            if not candidates and req.medium == TMPFS:
                placements.append(Placement(owner, i, None, req.medium, req.size))
                continue
            if not candidates:
                media = ", ".join(sorted({d.medium for d in self._disks} | {TMPFS}))
                raise ResourceUnavailable(
                    f"no {req.medium} disk on this host for {_bytes(req.size)} (free 0 bytes; "
                    f"media here: {media})", field=f"disks[{i}].medium")
            best = max(candidates, key=lambda d: d.capacity - used[d.path])
            free = best.capacity - used[best.path]
            if free < req.size:
                total = sum(max(0, d.capacity - used[d.path]) for d in candidates)
                raise ResourceUnavailable(
                    f"{req.medium} disk asked {_bytes(req.size)}, free {_bytes(max(0, free))} on the "
                    f"emptiest {req.medium} disk ({_bytes(total)} on all {len(candidates)})",
                    field=f"disks[{i}].size")
            used[best.path] += req.size
            placements.append(Placement(owner, i, best, req.medium, req.size))
        return placements

    def reserve(self, owner: str, requests: list[DiskRequest]) -> list[Placement]:
        """Place every request or none: on failure nothing is reserved and the error names the
        medium, the bytes asked and the bytes free."""
        _check_name(owner, "owner")
        for i, req in enumerate(requests):
            if not isinstance(req, DiskRequest):
                raise InvalidInput(f"must be a DiskRequest, got {req!r}", field=f"disks[{i}]")
        with self._lock:
            if owner in self._held:
                raise Conflict(f"{owner} already holds disks; free them first", field="owner")
            placements = self._place(owner, list(requests))
            for p in placements:
                if p.host_disk is not None:
                    self._used[p.host_disk.path] += p.size
            self._held[owner] = placements
            return list(placements)

    def free(self, owner: str) -> list[Placement]:
        """Give back everything the owner holds; returns what was freed (empty if nothing)."""
        with self._lock:
            placements = self._held.pop(owner, [])
            for p in placements:
                if p.host_disk is not None:
                    self._used[p.host_disk.path] -= p.size
            return placements

    def placements(self, owner: str | None = None) -> list[Placement]:
        """What is held, by one owner or by all, in (owner, index) order."""
        with self._lock:
            if owner is not None:
                return list(self._held.get(owner, []))
            return [p for o in sorted(self._held) for p in self._held[o]]

    def free_bytes(self) -> dict[str, int]:
        """Free bytes per configured medium (an unconfigured, unlimited tmpfs is not listed)."""
        with self._lock:
            free: dict[str, int] = {}
            for d in self._disks:
                free[d.medium] = free.get(d.medium, 0) + max(0, d.capacity - self._used[d.path])
            return free

    def used_bytes(self) -> dict[str, int]:
        """Reserved bytes per medium, every configured medium listed, plus tmpfs when any is held."""
        with self._lock:
            used = {d.medium: 0 for d in self._disks}
            for placements in self._held.values():
                for p in placements:
                    used[p.medium] = used.get(p.medium, 0) + p.size
            return used

    def rebuild(self, placements: Iterable[Placement]) -> None:
        """Replace all reservations with those found after a restart.

        Disks that exist are counted even past capacity (the configuration may have shrunk): free
        bytes then read 0 and new reservations fail until enough is released. A placement on a host
        disk this pool does not list is refused, with nothing changed.
        """
        held: dict[str, list[Placement]] = {}
        used = {d.path: 0 for d in self._disks}
        seen: set[tuple[str, int]] = set()
        for i, p in enumerate(placements):
            if not isinstance(p, Placement):
                raise InvalidInput(f"must be a Placement, got {p!r}", field=f"placements[{i}]")
            if (p.owner, p.index) in seen:
                raise InvalidInput(f"{p.owner} disk {p.index} listed twice", field=f"placements[{i}]")
            seen.add((p.owner, p.index))
            if p.host_disk is not None:
                if self._by_path.get(p.host_disk.path) is None:
                    raise InvalidInput(f"host disk {p.host_disk.path} is not in this pool",
                                       field=f"placements[{i}].host_disk")
                disk = self._by_path[p.host_disk.path]
                p = Placement(p.owner, p.index, disk, p.medium, p.size)
                used[disk.path] += p.size
            held.setdefault(p.owner, []).append(p)
        with self._lock:
            self._held = {o: sorted(ps, key=lambda p: p.index) for o, ps in held.items()}
            self._used = used


__all__ = ["TMPFS", "DiskPool", "DiskRequest", "HostDisk", "Placement"]
