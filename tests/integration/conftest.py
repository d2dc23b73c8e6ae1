"""One real cluster per test module: ZooKeeper, ResMan, two AppMaster replicas on the control host and
three Agents, each on its own test host (network namespace). After the module the cluster is taken
down and the test checks that nothing it made is left: namespaces, processes, loop devices, cgroups."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from galaxy.testing.cluster import LocalCluster
from tests.integration.helpers import agent_cgroup


def _leftovers(cluster: LocalCluster, cgroups: list[Path]) -> list[str]:
    left: list[str] = []
    for name in cluster.state.namespaces:
        if os.path.exists(f"/run/netns/{name}"):
            left.append(f"network namespace {name}")
    for comp in cluster.state.components.values():
        if comp.pid is not None and os.path.exists(f"/proc/{comp.pid}"):
            left.append(f"process {comp.name} ({comp.pid})")
    loops = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                           capture_output=True, text=True, check=False).stdout
    left += [f"loop device {line.split()[0]}" for line in loops.splitlines() if str(cluster.base) in line]
    left += [f"cgroup {path}" for path in cgroups if path.exists()]
    return left


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("galaxy-integration")
    local = LocalCluster(base, agents=3, appmaster=2, prefix=f"gxint{uuid.uuid4().hex[:4]}").start()
    agent_cgroups = [agent_cgroup(local, f"agent-{i}") for i in (1, 2, 3)]
    try:
        yield local
    finally:
        problems = local.stop()
        left = _leftovers(local, agent_cgroups)
        assert not problems, f"teardown problems: {problems}"
        assert not left, f"left behind by the cluster: {left}"
