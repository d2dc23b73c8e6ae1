"""One real cluster per test module: ZooKeeper, ResMan, two AppMaster replicas on the control host and
three Agents, each on its own test host (network namespace). After the module the cluster is taken
down and the test checks that nothing it made is left: namespaces, processes, loop devices, cgroups."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from galaxy.testing.cluster import LocalCluster
from tests.integration.helpers import agent_cgroup


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("galaxy-integration")
    local = LocalCluster(base, agents=3, appmaster=2, prefix=f"gxint{uuid.uuid4().hex[:4]}").start()
    agent_cgroups = [agent_cgroup(local, f"agent-{i}") for i in (1, 2, 3)]
    try:
        yield local
    finally:
        problems = local.stop()
        left = local.leftovers(agent_cgroups)
        assert not problems, f"teardown problems: {problems}"
        assert not left, f"left behind by the cluster: {left}"
