"""cgroup v1: one directory per controller hierarchy (cpu, cpuacct, memory, pids, freezer).

A container's cgroup is the same relative name in every hierarchy; co-mounted hierarchies (Debian's
``cpu,cpuacct``) are written once. Killing uses the freezer so nothing can fork while we SIGKILL: freeze,
kill every pid, thaw (the kills land on thaw), repeat until every hierarchy is empty.
"""

from __future__ import annotations

import builtins
import os
import signal
import time

from galaxy.isolate._cgroup import (
    CFS_PERIOD_US,
    CgroupDriver,
    CgroupFs,
    CgroupLimits,
    CgroupUsage,
    check_name,
    collect_pids,
    cpu_shares_of,
    host_error,
    parse_keyed,
    rmdir_until_gone,
)
from galaxy.isolate._errors import IsolateError

REQUIRED = ("cpu", "memory", "pids")
OPTIONAL = ("cpuacct", "freezer", "devices", "unified")
"""``unified``: the v2 hierarchy a hybrid host mounts beside v1 (no controllers in it). A container is a
member there too, only so that iptables can tell its sockets apart (``network_path``)."""

DEVICES_ALLOWED = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                   "c 5:2 rwm", "c 136:* rwm")
"""The devices a container may open (null, zero, full, random, urandom, tty, ptmx, its ptys): what its
/dev holds, and runc's default allow-list less the console. v2 has no devices files (runc loads a BPF
program there); on v2 the same /dev, nodev mounts and no CAP_MKNOD stand in for it."""

KILL_DEADLINE_S = 10.0


class CgroupV1Driver(CgroupDriver):
    """cgroup v1. ``hierarchies`` maps a controller to its mount directory, ``bases`` maps it to the
    path inside that hierarchy under which every name lives (e.g. the Agent's own cgroup)."""

    version = 1

    def __init__(self, hierarchies: dict[str, str], bases: dict[str, str], fs: CgroupFs | None = None):
        missing = [c for c in REQUIRED if c not in hierarchies]
        if missing:
            raise IsolateError(f"cgroup v1 controllers not mounted: {', '.join(missing)}", field="cgroup")
        self.fs = fs or CgroupFs()
        self._dirs = {c: os.path.join(hierarchies[c], bases.get(c, "/").strip("/"))
                      for c in (*REQUIRED, *OPTIONAL) if c in hierarchies}
        unified_base = bases.get("unified", "/").strip("/")
        self._unified_base = f"/{unified_base}" if unified_base else ""
        self._real = {c: os.path.realpath(d) for c, d in self._dirs.items()}

    def __repr__(self) -> str:
        return f"CgroupV1Driver({self._dirs!r})"

    # -- paths ---------------------------------------------------------------------------------------
    def path(self, controller: str, name: str) -> str:
        return os.path.join(self._dirs[controller], name)

    def _unique_paths(self, name: str) -> list[str]:
        """One leaf path per distinct hierarchy (co-mounted controllers share one)."""
        seen: set[str] = set()
        out = []
        for controller, real in self._real.items():
            if real not in seen:
                seen.add(real)
                out.append(self.path(controller, name))
        return out

    # -- contract ------------------------------------------------------------------------------------
    def ensure(self, name: str, limits: CgroupLimits) -> None:
        parts = check_name(name)
        for controller in self._dirs:
            self._makedirs(self._dirs[controller], parts)
        try:
            cpu = self.path("cpu", name)
            self.fs.write(f"{cpu}/cpu.cfs_period_us", str(CFS_PERIOD_US))
            quota = limits.cfs_quota_us
            self.fs.write(f"{cpu}/cpu.cfs_quota_us", str(quota if quota is not None else -1))
            self.fs.write(f"{cpu}/cpu.shares", str(limits.cpu_shares))
            self._set_memory(self.path("memory", name), limits.memory_bytes)
            self.fs.write(f"{self.path('pids', name)}/pids.max", str(limits.pids_max))
            if "devices" in self._dirs:
                devices = self.path("devices", name)
                self.fs.write(f"{devices}/devices.deny", "a")
                for rule in DEVICES_ALLOWED:
                    self.fs.write(f"{devices}/devices.allow", rule)
        except OSError as err:
            raise host_error("cannot set limits of cgroup", name, err) from err

    def weigh(self, name: str, cpu_cores: float) -> None:
        parts = check_name(name)
        for controller in self._dirs:
            self._makedirs(self._dirs[controller], parts)
        try:
            self.fs.write(f"{self.path('cpu', name)}/cpu.shares", str(cpu_shares_of(cpu_cores)))
        except OSError as err:
            raise host_error("cannot set the cpu weight of cgroup", name, err) from err

    def _makedirs(self, top: str, parts: list[str]) -> None:
        path = top
        for part in parts:
            path = os.path.join(path, part)
            if self.fs.exists(path):
                continue
            try:
                self.fs.mkdir(path)
            except FileExistsError:
                continue
            except OSError as err:
                raise host_error("cannot create cgroup", path, err) from err

    def _set_memory(self, mem: str, limit: int) -> None:
        """Set the limit and, where swap accounting exists, memsw to the same value (no swap).

        The kernel insists memsw >= limit at every moment, so raise memsw first when growing and
        lower the limit first when shrinking."""
        memsw = f"{mem}/memory.memsw.limit_in_bytes"
        has_memsw = self.fs.exists(memsw)
        current = int(self.fs.read(f"{mem}/memory.limit_in_bytes").strip())
        if has_memsw and limit > current:
            self.fs.write(memsw, str(limit))
            self.fs.write(f"{mem}/memory.limit_in_bytes", str(limit))
            return
        self.fs.write(f"{mem}/memory.limit_in_bytes", str(limit))
        if has_memsw:
            self.fs.write(memsw, str(limit))

    def usage(self, name: str) -> CgroupUsage:
        check_name(name)
        mem = self.path("memory", name)
        try:
            if "cpuacct" in self._dirs:
                cpu_seconds = int(self.fs.read(f"{self.path('cpuacct', name)}/cpuacct.usage")) / 1e9
            else:
                stat = parse_keyed(self.fs.read(f"{self.path('cpu', name)}/cpu.stat"))
                cpu_seconds = stat.get("usage_usec", 0) / 1e6
            current = int(self.fs.read(f"{mem}/memory.usage_in_bytes"))
            peak = int(self.fs.read(f"{mem}/memory.max_usage_in_bytes"))
            oom = parse_keyed(self.fs.read(f"{mem}/memory.oom_control")).get("oom_kill", 0)
        except OSError as err:
            raise host_error("cannot read usage of cgroup", name, err) from err
        return CgroupUsage(cpu_seconds=cpu_seconds, memory_bytes=current, memory_peak_bytes=peak,
                           oom_kills=oom)

    def pids(self, name: str) -> list[int]:
        check_name(name)
        found: set[int] = set()
        for path in self._unique_paths(name):
            collect_pids(self.fs, path, found)
        return sorted(found)

    def kill_all(self, name: str) -> None:
        check_name(name)
        freezer = self.path("freezer", name) if "freezer" in self._dirs else None
        if freezer is not None and not self.fs.exists(f"{freezer}/freezer.state"):
            freezer = None
        deadline = time.monotonic() + KILL_DEADLINE_S
        while True:
            pids = self.pids(name)
            if not pids:
                return
            if os.getpid() in pids:
                raise IsolateError(f"refusing to kill cgroup {name}: the calling process is inside",
                                   field="cgroup")
            if time.monotonic() > deadline:
                raise IsolateError(f"cgroup {name} still has processes {pids[:10]} after SIGKILL",
                                   field="cgroup")
            if freezer is not None:
                self._freeze(freezer, deadline)
                pids = self.pids(name)  # nothing can fork now: this list is complete
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if freezer is not None:
                self.fs.write(f"{freezer}/freezer.state", "THAWED")
            self._wait_empty(name, min(deadline, time.monotonic() + 1.0))

    def _freeze(self, freezer: str, deadline: float) -> None:
        self.fs.write(f"{freezer}/freezer.state", "FROZEN")
        limit = min(deadline, time.monotonic() + 1.0)
        while self.fs.read(f"{freezer}/freezer.state").strip() != "FROZEN" and time.monotonic() < limit:
            time.sleep(0.001)

    def _wait_empty(self, name: str, until: float) -> None:
        delay = 0.0005
        while self.pids(name) and time.monotonic() < until:
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def exists(self, name: str) -> bool:
        check_name(name)
        return all(self.fs.exists(p) for p in self._unique_paths(name))

    def _exists_anywhere(self, name: str) -> bool:
        return any(self.fs.exists(p) for p in self._unique_paths(name))

    def list(self, parent: str) -> builtins.list[str]:
        check_name(parent)
        names: set[str] = set()
        for path in self._unique_paths(parent):
            names.update(self.fs.subdirs(path))
        return [f"{parent}/{child}" for child in sorted(names)]

    def remove(self, name: str) -> None:
        check_name(name)
        for path in self._unique_paths(name):
            self._remove_tree(path)

    def _remove_tree(self, path: str) -> None:
        for child in self.fs.subdirs(path):
            self._remove_tree(os.path.join(path, child))
        rmdir_until_gone(self.fs, path)

    def join_files(self, name: str) -> builtins.list[str]:
        check_name(name)
        return [f"{p}/cgroup.procs" for p in self._unique_paths(name)]

    def network_path(self, name: str) -> str | None:
        check_name(name)
        return f"{self._unified_base}/{name}" if "unified" in self._dirs else None

    def oom_counter_file(self, name: str) -> str | None:
        check_name(name)
        return f"{self.path('memory', name)}/memory.oom_control"


__all__ = ["CgroupV1Driver"]
