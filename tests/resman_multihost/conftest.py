"""Real Agents on network-namespace test hosts, driven through ResMan's own API.

Each module starts one `MultiHostCluster` (ZooKeeper, ResMan replica(s), no AppMaster, three Agents
on their own test hosts) with the ResMan settings it needs in the environment (the daemons inherit
it), and tears it down afterwards, checking that nothing is left: namespaces, processes, loop devices,
the Agents' cgroups.

What a test looks at is what a user or operator would: `group.show`, `hosts.list`, and the real
containers — the cgroups each Agent made for them on its host.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from galaxy.errors import GalaxyError
from galaxy.testing.cluster import LocalCluster
from galaxy.testing.netns import TestHost

T = TypeVar("T")

MiB = 1 << 20
SLEEP = ["/bin/sleep", "3600"]


class MultiHostCluster(LocalCluster):
    """A `LocalCluster` whose Agents may differ: extra host disks and port ranges per Agent.

    ``agent_disks[i]`` is a list of ``(medium, capacity)`` host disks added to Agent ``i`` (each a
    directory under the Agent's home); ``agent_port_ranges[i]`` replaces the cluster's port range.
    """

    def __init__(self, base: str | os.PathLike[str], *,
                 agent_disks: dict[int, list[tuple[str, str]]] | None = None,
                 agent_port_ranges: dict[int, str] | None = None, **kw: Any) -> None:
        super().__init__(base, **kw)
        self.agent_disks = agent_disks or {}
        self.agent_port_ranges = agent_port_ranges or {}

    def config_for(self, role: str, index: int, host: TestHost, port: int) -> dict[str, Any]:
        config = super().config_for(role, index, host, port)
        if role == "agent":
            for medium, capacity in self.agent_disks.get(index, []):
                path = self.base / f"agent-{index}" / medium
                path.mkdir(parents=True, exist_ok=True)
                config["agent"]["disks"].append({"path": str(path), "medium": medium, "capacity": capacity})
            if index in self.agent_port_ranges:
                config["agent"]["port_range"] = self.agent_port_ranges[index]
        return config

    # -- naming --------------------------------------------------------------------------------
    def agent_id(self, index: int) -> str:
        assert self.network is not None
        return f"agent-{index}-{self.network.prefix}"

    def agent_index(self, agent_id: str) -> int:
        return int(agent_id.split("-")[1])

    # -- talking to the ResMan leader ----------------------------------------------------------
    def call(self, method: str, body: Any = None, timeout: float = 10.0) -> Any:
        with self.client("resman") as client:
            return client.call(method, body, timeout=timeout)


def container_cgroup_root(cluster: MultiHostCluster, index: int) -> Path:
    """The pids-controller cgroup under which Agent ``index`` puts its containers.

    The Agents are started from this process, so they sit in this process's cgroup; the Agent nests
    its containers under ``galaxy-<agent id>`` there.
    """
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return Path("/sys/fs/cgroup/pids") / path.lstrip("/") / f"galaxy-{cluster.agent_id(index)}"
    raise AssertionError("this process has no pids cgroup")


def real_containers(cluster: MultiHostCluster, index: int, group: str | None = None) -> set[str]:
    """The containers that exist in the kernel on Agent ``index``'s host: its container cgroups that
    hold a process (a container's id is ``<group>.<suffix>``)."""
    root = container_cgroup_root(cluster, index)
    found: set[str] = set()
    if not root.exists():
        return found
    for child in root.iterdir():
        if not child.is_dir() or (group is not None and not child.name.startswith(f"{group}.")):
            continue
        procs = child / "cgroup.procs"
        try:
            if procs.read_text().split() or any(
                    (d / "cgroup.procs").read_text().split() for d in child.iterdir() if d.is_dir()):
                found.add(child.name)
        except OSError:
            continue
    return found


def all_real_containers(cluster: MultiHostCluster, group: str) -> dict[str, list[int]]:
    """container id -> the Agents (indexes) whose host has it in the kernel."""
    where: dict[str, list[int]] = {}
    for index in range(1, cluster.counts["agent"] + 1):
        for cid in real_containers(cluster, index, group):
            where.setdefault(cid, []).append(index)
    return where


def expect_real(cluster: MultiHostCluster, group: str, placed: dict[str, int], timeout: float = 30.0) -> None:
    """Wait until the kernel holds exactly ``placed`` (container id -> agent index) of ``group``: each
    container on its host and on no other, and no other container of the group anywhere."""
    want = {cid: [index] for cid, index in placed.items()}
    last: dict[str, list[int]] = {}

    def matches() -> bool:
        nonlocal last
        last = all_real_containers(cluster, group)
        return last == want
    try:
        poll(f"the Agents' containers of {group} to be {want}", matches, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}; the kernel has {last}") from None


def poll(what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.3) -> T:
    """Call ``check`` until it returns something truthy (mesh errors while a leader changes are
    retried), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: str = ""
    while time.monotonic() < deadline:
        try:
            found = check()
        except GalaxyError as err:
            found, last = None, f" (last error: {err})"
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{last}")


def holds(what: str, check: Callable[[], bool], seconds: float, interval: float = 0.3) -> None:
    """``check`` stays true on every call for ``seconds`` (at least two calls)."""
    deadline = time.monotonic() + seconds
    calls = 0
    while calls < 2 or time.monotonic() < deadline:
        assert check(), f"{what}: no longer true after {calls} checks"
        calls += 1
        time.sleep(interval)


def container(cpu: float = 0.05, memory: int = 16 * MiB, **extra: Any) -> dict[str, Any]:
    return {"cpu": cpu, "memory": memory, "user": "nobody", "argv": list(SLEEP), **extra}


def group_body(name: str, replicas: int, **kw: Any) -> dict[str, Any]:
    return {"group": name, "owner": "tester", "pool": kw.pop("pool", "default"), "replicas": replicas,
            "container": kw.pop("container", None) or container(), **kw}


def show(cluster: MultiHostCluster, group: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.call("group.show", {"group": group})
    return result


def running_hosts(cluster: MultiHostCluster, group: str) -> dict[str, str]:
    """container id -> host id of the group's running containers."""
    return {c["id"]: c["host"] for c in show(cluster, group)["containers"] if c["state"] == "running"}


def wait_running(cluster: MultiHostCluster, group: str, count: int, timeout: float = 60.0,
                 total: int | None = None) -> dict[str, Any]:
    """Wait until ``count`` containers of ``group`` run (and ``total`` exist, default ``count``)."""
    def ready() -> dict[str, Any] | None:
        shown = show(cluster, group)
        ok = [c for c in shown["containers"] if c["state"] == "running"]
        want_total = count if total is None else total
        return shown if len(ok) == count and len(shown["containers"]) == want_total else None
    return poll(f"{count} running containers of {group}", ready, timeout)


def remove_group(cluster: MultiHostCluster, group: str, timeout: float = 60.0) -> None:
    """Remove ``group`` and wait until no Agent has any of its containers in the kernel."""
    cluster.call("group.remove", {"group": group})
    poll(f"{group}'s containers gone from every host", lambda: not all_real_containers(cluster, group), timeout)


def hosts_by_id(cluster: MultiHostCluster) -> dict[str, dict[str, Any]]:
    return {h["id"]: h for h in cluster.call("hosts.list", {})}


C = TypeVar("C", bound=MultiHostCluster)


@contextlib.contextmanager
def cluster_factory(tmp_path_factory: pytest.TempPathFactory, cls: type[C], prefix: str,
                    extra_failures: Callable[[C], list[str]] = lambda _: [],
                    **defaults: Any) -> Iterator[Callable[..., C]]:
    """``make(env={...}, **cls kwargs)`` starts a ``cls`` cluster; at exit every one made is stopped
    and must leave nothing (``extra_failures`` adds a module's own checks, made before the stop).
    ``env`` holds ``GALAXY_RESMAN_*`` settings the daemons inherit."""
    made: list[tuple[C, list[Path]]] = []
    patch = pytest.MonkeyPatch()

    def make(env: dict[str, str] | None = None, **kw: Any) -> C:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        base = tmp_path_factory.mktemp(f"galaxy-{prefix}")
        kw = {**defaults, "prefix": f"{prefix}{uuid.uuid4().hex[:4]}", **kw}
        local = cls(base, **kw)
        made.append((local, []))
        local.start()
        made[-1][1].extend(container_cgroup_root(local, i) for i in range(1, local.counts["agent"] + 1))
        return local

    try:
        yield make
    finally:
        patch.undo()
        failures: list[str] = []
        for local, cgroups in made:
            failures += extra_failures(local)
            failures += [f"teardown: {p}" for p in local.stop()]
            failures += [f"left behind: {x}" for x in local.leftovers(cgroups)]
        assert not failures, failures


@pytest.fixture(scope="module")
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MultiHostCluster]]:
    """``make_cluster(env={...}, **LocalCluster kwargs)``: one started cluster (call it once per module)."""
    with cluster_factory(tmp_path_factory, MultiHostCluster, "gxrm", appmaster=0) as make:
        yield make
