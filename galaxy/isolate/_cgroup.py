"""What every cgroup driver shares: the limit and usage values, the file-system seam, the contract.

Both drivers (v1 in ``_cgroup_v1``, v2 in ``_cgroup_v2``) speak plain values — cores, bytes, a pid
count — and name every cgroup by a relative path under a caller-given parent (``galaxy-<agent>/<id>``),
so several Agents on one machine never touch each other's groups. Every mutating call is an idempotent
``ensure`` / ``release`` step: adopting a container after a crash runs the very code that created it.

The file-system seam (:class:`CgroupFs`) is the only place that touches cgroupfs, so the v2 paths can be
unit-tested against a temporary tree that mimics cgroupfs file names on a v1-only host.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass

from galaxy.errors import InvalidInput
from galaxy.isolate._errors import IsolateError

CFS_PERIOD_US = 100_000
"""The CFS period both drivers use: 100 ms, the kernel default, so quota = cores × 100 ms."""

MIN_QUOTA_US = 1_000
"""The kernel refuses a CFS quota below 1 ms."""

MIN_MEMORY_BYTES = 4 << 20
"""Below ~4 MiB not even a shell starts; a smaller limit is a mistake, not a wish."""

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")


@dataclass(frozen=True)
class CgroupLimits:
    """Limits from plain values. ``cpu_excess=True`` means shares/weight only: the container may use
    idle cpu beyond ``cpu_cores``; otherwise the cores are also a hard CFS quota."""

    cpu_cores: float
    _: KW_ONLY
    cpu_excess: bool = False
    memory_bytes: int
    pids_max: int = 4096

    def __post_init__(self) -> None:
        if isinstance(self.cpu_cores, bool) or not isinstance(self.cpu_cores, (int, float)) \
                or not self.cpu_cores > 0 or self.cpu_cores != self.cpu_cores or self.cpu_cores > 4096:
            raise InvalidInput(f"cpu cores must be a number in (0, 4096], got {self.cpu_cores!r}",
                               field="cpu_cores")
        if not isinstance(self.cpu_excess, bool):
            raise InvalidInput(f"cpu_excess must be a bool, got {self.cpu_excess!r}", field="cpu_excess")
        if isinstance(self.memory_bytes, bool) or not isinstance(self.memory_bytes, int) \
                or self.memory_bytes < MIN_MEMORY_BYTES:
            raise InvalidInput(f"memory must be an int of at least {MIN_MEMORY_BYTES} bytes, "
                               f"got {self.memory_bytes!r}", field="memory_bytes")
        if isinstance(self.pids_max, bool) or not isinstance(self.pids_max, int) or self.pids_max < 1:
            raise InvalidInput(f"pids_max must be a positive int, got {self.pids_max!r}", field="pids_max")

    @property
    def cfs_quota_us(self) -> int | None:
        """The hard quota per :data:`CFS_PERIOD_US`, or None when the container may use idle cpu."""
        if self.cpu_excess:
            return None
        return max(MIN_QUOTA_US, round(self.cpu_cores * CFS_PERIOD_US))

    @property
    def cpu_shares(self) -> int:
        """v1 ``cpu.shares``: 1024 per core (the kernel's own unit), clamped to its range."""
        return cpu_shares_of(self.cpu_cores)

    @property
    def cpu_weight(self) -> int:
        """v2 ``cpu.weight`` from the same shares, by the mapping runc and Kubernetes use, so one core
        weighs the same against a neighbour whichever cgroup version the host runs."""
        return cpu_weight_of(self.cpu_shares)


def cpu_shares_of(cores: float) -> int:
    """v1 ``cpu.shares`` for ``cores``: 1024 per core, clamped to the kernel's range."""
    return min(262_144, max(2, round(cores * 1024)))


def cpu_weight_of(shares: int) -> int:
    """v2 ``cpu.weight`` for v1 ``shares`` (the runc / Kubernetes mapping)."""
    return 1 + ((shares - 2) * 9999) // 262_142


@dataclass(frozen=True)
class CgroupUsage:
    """What a container has used. ``memory_peak_bytes`` is None where the kernel keeps no peak."""

    cpu_seconds: float
    memory_bytes: int
    memory_peak_bytes: int | None
    oom_kills: int


class CgroupFs:
    """The only code that touches cgroupfs. Tests of the v2 driver on a v1 host substitute a subclass
    that mimics what the kernel does on mkdir / rmdir (knob files appear and vanish)."""

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def write(self, path: str, value: str) -> None:
        # One write() per value: cgroupfs parses each write on its own.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def subdirs(self, path: str) -> list[str]:
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []


def check_name(name: str, *, field: str = "cgroup") -> list[str]:
    """Split a relative cgroup name into segments, refusing anything that could leave the parent."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("a cgroup name must be a non-empty string", field=field)
    parts = name.split("/")
    for part in parts:
        if not _SEGMENT.match(part):
            raise InvalidInput(f"bad cgroup name {name!r}: each segment must match {_SEGMENT.pattern}",
                               field=field)
    return parts


def parse_keyed(text: str) -> dict[str, int]:
    """Parse the ``key value`` lines of cpu.stat, memory.events, memory.oom_control."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def parse_pids(text: str) -> list[int]:
    return [int(tok) for tok in text.split()]


def host_error(action: str, path: str, err: OSError) -> IsolateError:
    return IsolateError(f"{action} {path}: {os.strerror(err.errno) if err.errno else err}", field="cgroup")


def collect_pids(fs: CgroupFs, path: str, into: set[int]) -> None:
    """Add the processes of the cgroup at ``path`` and of every cgroup below it (gone = none)."""
    try:
        into.update(parse_pids(fs.read(f"{path}/cgroup.procs")))
    except FileNotFoundError:
        return
    except OSError as err:
        raise host_error("cannot list processes of cgroup", path, err) from err
    for child in fs.subdirs(path):
        collect_pids(fs, os.path.join(path, child), into)


def rmdir_until_gone(fs: CgroupFs, path: str, deadline_s: float = 5.0) -> None:
    """rmdir a cgroup, retrying while the kernel still counts exiting tasks (EBUSY)."""
    deadline = time.monotonic() + deadline_s
    delay = 0.0005
    while True:
        try:
            fs.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > deadline:
                raise host_error("cannot remove cgroup", path, err) from err
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class CgroupDriver(ABC):
    """One host's cgroups, v1 or v2. Names are relative to the driver's base (see ``detect_cgroups``)."""

    version: int

    @abstractmethod
    def ensure(self, name: str, limits: CgroupLimits) -> None:
        """Create the cgroup (and its parents) if missing and apply the limits; safe to repeat."""

    @abstractmethod
    def weigh(self, name: str, cpu_cores: float) -> None:
        """Create the (parent) cgroup if missing and give it the CPU weight of ``cpu_cores`` cores
        against its siblings, no limit: an Agent's root, so that its containers together weigh what
        the host gave them rather than one process's default share; safe to repeat."""

    @abstractmethod
    def usage(self, name: str) -> CgroupUsage:
        """Cpu seconds, memory now and at peak, OOM kills; NotFound-free: raises IsolateError if gone."""

    @abstractmethod
    def pids(self, name: str) -> list[int]:
        """Host pids of every process in the cgroup."""

    @abstractmethod
    def kill_all(self, name: str) -> None:
        """SIGKILL every process in the cgroup without a fork race, and wait until it is empty."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the cgroup exists (in every hierarchy the driver uses)."""

    @abstractmethod
    def list(self, parent: str) -> builtins.list[str]:
        """Full names (``parent/child``) of the cgroups directly under ``parent``."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """rmdir the (empty) cgroup and any sub-cgroups; no-op if already gone."""

    @abstractmethod
    def join_files(self, name: str) -> builtins.list[str]:
        """The ``cgroup.procs`` files a process writes ``0`` into to enter the cgroup everywhere."""

    @abstractmethod
    def oom_counter_file(self, name: str) -> str | None:
        """A ``key value`` file whose ``oom_kill`` line counts OOM kills in the cgroup."""

    @abstractmethod
    def network_path(self, name: str) -> str | None:
        """The cgroup's path in the v2 hierarchy, as iptables' ``-m cgroup --path`` names it: the
        container's sockets belong to it (galaxy.ports matches its replies); None without one."""

    def release(self, name: str) -> None:
        """Kill everything inside, then remove the cgroup. Idempotent: a missing cgroup is fine."""
        check_name(name)
        if not self.exists(name) and not self._exists_anywhere(name):
            return
        self.kill_all(name)
        self.remove(name)

    def _exists_anywhere(self, name: str) -> bool:
        """Whether any part of the cgroup is left (v1: in some hierarchy); v2 has just one."""
        return self.exists(name)


__all__ = ["CgroupLimits", "CgroupUsage", "CgroupDriver", "CgroupFs", "CFS_PERIOD_US"]
