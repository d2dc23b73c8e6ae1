"""cgroup v2: every controller in one tree; all v2 controller writes of Galaxy live in this module.

A v2 cgroup gets a controller only if its parent lists it in ``cgroup.subtree_control``, and a cgroup
that has processes (other than the root) may not delegate controllers ("no internal processes"). So
``ensure`` walks from the base down, enabling ``cpu memory pids`` at each level before creating the next,
and the base must be a cgroup without processes of its own (the root, or a delegated slice). A daemon
whose containers live under its own cgroup (the default base) therefore first moves itself into a leaf
child of that cgroup, :data:`SELF_LEAF`, as systemd's delegation guide asks of a delegated service.
Killing is one write to ``cgroup.kill`` (kernel 5.14+); older kernels freeze, SIGKILL, thaw.
"""

from __future__ import annotations

import builtins
import errno
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
    cpu_weight_of,
    host_error,
    parse_keyed,
    rmdir_until_gone,
)
from galaxy.isolate._errors import IsolateError

CONTROLLERS = ("cpu", "memory", "pids")
KILL_DEADLINE_S = 10.0
SELF_LEAF = "galaxy-self"
"""The leaf a daemon moves itself into, so its own cgroup can delegate controllers to containers."""


def settle_in_own_cgroup(mount: str, own: str, fs: CgroupFs) -> str:
    """Move every process of the cgroup ``own`` (this process's) into ``own/SELF_LEAF`` and return
    ``own``: the base under which containers can then get controllers.

    Every process, not just this one: whatever it forked before (a zygote, a helper) or whatever
    shares its unit is in that cgroup too, and one left behind blocks delegation. The root cgroup is
    exempt from "no internal processes" and is returned as is; a process already in the leaf (a
    restarted daemon, a child of the first) gets the leaf's parent back, so all agree on one base.
    """
    if own.strip("/") == "":
        return "/"
    if os.path.basename(own.rstrip("/")) == SELF_LEAF:
        return os.path.dirname(own.rstrip("/"))
    cgroup = os.path.join(mount, own.strip("/"))
    leaf = os.path.join(cgroup, SELF_LEAF)
    try:
        if not fs.exists(leaf):
            try:
                fs.mkdir(leaf)
            except FileExistsError:
                pass  # another process of this cgroup made it first
        for pid in fs.read(f"{cgroup}/cgroup.procs").split():
            try:
                fs.write(f"{leaf}/cgroup.procs", pid)
            except ProcessLookupError:
                pass  # it exited meanwhile
    except OSError as err:
        raise host_error("cannot move this cgroup's processes into the leaf cgroup", leaf, err) from err
    return own


class CgroupV2Driver(CgroupDriver):
    """cgroup v2 mounted at ``mount``; every name lives under ``base`` inside it."""

    version = 2

    def __init__(self, mount: str, base: str = "/", fs: CgroupFs | None = None) -> None:
        self.fs = fs or CgroupFs()
        self.top = os.path.join(mount, base.strip("/")).rstrip("/")
        self.base = "/" + base.strip("/") if base.strip("/") else ""

    def __repr__(self) -> str:
        return f"CgroupV2Driver({self.top!r})"

    def path(self, name: str) -> str:
        return os.path.join(self.top, name)

    def network_path(self, name: str) -> str | None:
        check_name(name)
        return os.path.join(self.base, name)

    # -- ensure --------------------------------------------------------------------------------------
    def _make(self, name: str) -> str:
        """Create the cgroup and its parents, delegating controllers at each level; returns its path."""
        parts = check_name(name)
        level = self.top
        for part in parts:
            self._delegate(level)
            level = os.path.join(level, part)
            if not self.fs.exists(level):
                try:
                    self.fs.mkdir(level)
                except FileExistsError:
                    pass
                except OSError as err:
                    raise host_error("cannot create cgroup", level, err) from err
        return level

    def ensure(self, name: str, limits: CgroupLimits) -> None:
        self._apply(self._make(name), limits)

    def weigh(self, name: str, cpu_cores: float) -> None:
        level = self._make(name)
        try:
            self.fs.write(f"{level}/cpu.weight", str(cpu_weight_of(cpu_shares_of(cpu_cores))))
        except OSError as err:
            raise host_error("cannot set the cpu weight of cgroup", level, err) from err

    def _delegate(self, level: str) -> None:
        """Make sure ``level``'s children get cpu, memory and pids."""
        try:
            available = set(self.fs.read(f"{level}/cgroup.controllers").split())
            enabled = set(self.fs.read(f"{level}/cgroup.subtree_control").split())
        except OSError as err:
            raise host_error("cannot read controllers of cgroup", level, err) from err
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise IsolateError(f"cgroup v2 at {level} lacks controllers {', '.join(missing)} "
                               f"(held by a v1 hierarchy, or not delegated to this cgroup)", field="cgroup")
        wanted = [c for c in CONTROLLERS if c not in enabled]
        if not wanted:
            return
        try:
            self.fs.write(f"{level}/cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise IsolateError(f"cannot enable {' '.join(wanted)} below {level}: it has processes of "
                                   f"its own; use a base cgroup without processes", field="cgroup") from err
            raise host_error("cannot enable controllers below", level, err) from err

    def _apply(self, leaf: str, limits: CgroupLimits) -> None:
        quota = limits.cfs_quota_us
        try:
            self.fs.write(f"{leaf}/cpu.max", f"{quota if quota is not None else 'max'} {CFS_PERIOD_US}")
            self.fs.write(f"{leaf}/cpu.weight", str(limits.cpu_weight))
            self.fs.write(f"{leaf}/memory.max", str(limits.memory_bytes))
            if self.fs.exists(f"{leaf}/memory.swap.max"):
                self.fs.write(f"{leaf}/memory.swap.max", "0")
            self.fs.write(f"{leaf}/pids.max", str(limits.pids_max))
        except OSError as err:
            raise host_error("cannot set limits of cgroup", leaf, err) from err

    # -- read ----------------------------------------------------------------------------------------
    def usage(self, name: str) -> CgroupUsage:
        check_name(name)
        leaf = self.path(name)
        try:
            cpu = parse_keyed(self.fs.read(f"{leaf}/cpu.stat")).get("usage_usec", 0) / 1e6
            current = int(self.fs.read(f"{leaf}/memory.current"))
            peak_file = f"{leaf}/memory.peak"  # kernel 5.19+
            peak = int(self.fs.read(peak_file)) if self.fs.exists(peak_file) else None
            oom = parse_keyed(self.fs.read(f"{leaf}/memory.events")).get("oom_kill", 0)
        except OSError as err:
            raise host_error("cannot read usage of cgroup", name, err) from err
        return CgroupUsage(cpu_seconds=cpu, memory_bytes=current, memory_peak_bytes=peak, oom_kills=oom)

    def pids(self, name: str) -> list[int]:
        check_name(name)
        found: set[int] = set()
        collect_pids(self.fs, self.path(name), found)
        return sorted(found)

    # -- kill / remove -------------------------------------------------------------------------------
    def kill_all(self, name: str) -> None:
        check_name(name)
        leaf = self.path(name)
        if not self.fs.exists(leaf):
            return
        deadline = time.monotonic() + KILL_DEADLINE_S
        use_kill_file = self.fs.exists(f"{leaf}/cgroup.kill")
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
            try:
                if use_kill_file:
                    self.fs.write(f"{leaf}/cgroup.kill", "1")
                else:
                    self._freeze_and_kill(leaf, name)
            except OSError as err:
                raise host_error("cannot kill processes of cgroup", leaf, err) from err
            self._wait_empty(name, min(deadline, time.monotonic() + 1.0))

    def _freeze_and_kill(self, leaf: str, name: str) -> None:
        self.fs.write(f"{leaf}/cgroup.freeze", "1")
        until = time.monotonic() + 1.0
        while parse_keyed(self.fs.read(f"{leaf}/cgroup.events")).get("frozen") != 1 \
                and time.monotonic() < until:
            time.sleep(0.001)
        for pid in self.pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.fs.write(f"{leaf}/cgroup.freeze", "0")

    def _wait_empty(self, name: str, until: float) -> None:
        delay = 0.0005
        while self.pids(name) and time.monotonic() < until:
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def remove(self, name: str) -> None:
        check_name(name)
        self._remove_tree(self.path(name))

    def _remove_tree(self, path: str) -> None:
        for child in self.fs.subdirs(path):
            self._remove_tree(os.path.join(path, child))
        rmdir_until_gone(self.fs, path)

    def exists(self, name: str) -> bool:
        check_name(name)
        return self.fs.exists(self.path(name))

    def list(self, parent: str) -> builtins.list[str]:
        check_name(parent)
        return [f"{parent}/{child}" for child in self.fs.subdirs(self.path(parent))]

    def join_files(self, name: str) -> builtins.list[str]:
        check_name(name)
        return [f"{self.path(name)}/cgroup.procs"]

    def oom_counter_file(self, name: str) -> str | None:
        check_name(name)
        return f"{self.path(name)}/memory.events"


__all__ = ["CgroupV2Driver"]
