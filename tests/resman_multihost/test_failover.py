"""The ResMan leader SIGKILLed in the middle of placing a large group: the standby ends with exactly
the desired count — none lost, none duplicated — in its own view and in the kernel of every host.

Two ResMan replicas, three Agents, one group of 90 small ``sleep`` containers (0.02 cores, 16 MiB).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.resman_multihost.conftest import (
    MiB,
    MultiHostCluster,
    all_real_containers,
    container,
    expect_real,
    group_body,
    holds,
    poll,
    show,
    wait_running,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

REPLICAS = 90


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., MultiHostCluster]) -> MultiHostCluster:
    return make_cluster(env={"GALAXY_RESMAN_POLL_INTERVAL": "0.5", "GALAXY_RESMAN_CREATES_PER_HOST": "2"},
                        agents=3, resman=2)


def test_leader_killed_mid_placement_standby_ends_with_exact_count(cluster: MultiHostCluster) -> None:
    leader = cluster.wait_leader("resman")
    with cluster.client("resman") as client:
        client.call("group.create", group_body("big", REPLICAS, container=container(cpu=0.02, memory=16 * MiB)))

        def some_running() -> int | None:
            shown = client.call("group.show", {"group": "big"})
            count = sum(c["state"] == "running" for c in shown["containers"])
            return count if count >= 10 else None
        running_at_kill = poll("the first containers running", some_running, timeout=60, interval=0.05)
    cluster.kill(leader.identity, signal.SIGKILL)
    assert running_at_kill < REPLICAS, "the placement finished before the leader was killed: nothing was tested"
    real_at_kill = len(all_real_containers(cluster, "big"))

    standby = cluster.wait_leader("resman", 60, not_identity=leader.identity)
    assert standby.identity != leader.identity
    shown = wait_running(cluster, "big", REPLICAS, timeout=120)
    placed = {c["id"]: cluster.agent_index(c["host"]) for c in shown["containers"]}
    assert len(placed) == REPLICAS
    expect_real(cluster, "big", placed, timeout=60)
    # and it stays exact over several more poll rounds (ResMan polls every 0.5 s): nothing added or taken
    holds("the group and the kernel unchanged", lambda: _unchanged(cluster, placed), seconds=3.0)
    print(f"killed the leader with {running_at_kill} running / {real_at_kill} in the kernel of {REPLICAS}")


def _unchanged(cluster: MultiHostCluster, placed: dict[str, int]) -> bool:
    now = {c["id"]: cluster.agent_index(c["host"]) for c in show(cluster, "big")["containers"]
           if c["state"] == "running"}
    return now == placed and all_real_containers(cluster, "big") == {cid: [i] for cid, i in placed.items()}
