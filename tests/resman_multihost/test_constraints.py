"""Every placement constraint against real Agents, table-driven.

Hosts: Agents 1 and 2 in pool ``default``, Agent 3 in pool ``batch``. Agent 1 has label ``gpu``, an
extra 512 MiB ``hdd`` host disk and 50 ports; Agent 2 has 10 ports; each has a 2 GiB ``ssd`` disk,
2 cores and all host memory. Each case creates one group of ``sleep`` containers and checks that it
runs where it may and nowhere else — in ResMan's view and in the kernel (the Agents' cgroups) —
and that what cannot be placed waits with a reason in `group.show` that names the constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.resman_multihost.conftest import (
    MiB,
    MultiHostCluster,
    container,
    expect_real,
    group_body,
    hosts_by_id,
    poll,
    remove_group,
    show,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

FIXED_PORT = 23456


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., MultiHostCluster]) -> MultiHostCluster:
    return make_cluster(
        env={"GALAXY_RESMAN_POLL_INTERVAL": "0.5", "GALAXY_RESMAN_BACKOFF_MIN": "0.2",
             "GALAXY_RESMAN_BACKOFF_MAX": "1"},
        agents=3, agent_pools={3: "batch"}, agent_labels={1: ["gpu"]},
        agent_disks={1: [("hdd", "512Mi")]},
        agent_port_ranges={1: "21000-21049", 2: "21100-21109"})


@dataclass
class Case:
    """One constraint: the group's body (``replicas`` and fields), where its containers may run
    (agent indexes), how many run, and the phrases the reason of the rest must contain."""

    name: str
    replicas: int
    allowed: set[int]
    running: int
    reason: list[str] = field(default_factory=list)
    body: Callable[[MultiHostCluster], dict[str, Any]] = lambda _c: {}
    per_host: int | None = None            # every used host runs exactly this many
    setup: Callable[[MultiHostCluster], None] = lambda _c: None
    undo: Callable[[MultiHostCluster], None] = lambda _c: None


def _half_memory_and_more(cluster: MultiHostCluster) -> dict[str, Any]:
    capacity = min(h["capacity"]["memory"] for h in hosts_by_id(cluster).values())
    return {"container": container(memory=int(capacity * 0.6))}


def _offline(cluster: MultiHostCluster) -> None:
    cluster.call("host.offline", {"host": cluster.agent_id(1)})


def _online(cluster: MultiHostCluster) -> None:
    cluster.call("host.online", {"host": cluster.agent_id(1)})


def _ports(count: int) -> list[dict[str, Any]]:
    return [{"name": f"p{i}"} for i in range(count)]


CASES = [
    Case("pool", 3, {3}, 3, body=lambda _c: {"pool": "batch"}),
    Case("pool-missing", 1, set(), 0, ["no host in pool nowhere"], body=lambda _c: {"pool": "nowhere"}),
    Case("labels", 2, {1}, 2, body=lambda _c: {"labels": ["gpu"]}),
    Case("labels-missing", 1, set(), 0, ["no host in pool default has label tpu"],
         body=lambda _c: {"labels": ["tpu"]}),
    Case("host-offline", 2, {2}, 1, ["1 host offline", "1 already 1 of the group"],
         body=lambda _c: {"max_per_host": 1}, setup=_offline, undo=_online),
    Case("cpu", 3, {1, 2}, 2, ["2 hosts checked", "2 not enough cpu"], per_host=1,
         body=lambda _c: {"container": container(cpu=1.5)}),
    Case("memory", 3, {1, 2}, 2, ["2 not enough memory"], per_host=1, body=_half_memory_and_more),
    Case("disk-medium", 2, {1}, 1, ["1 no hdd disk", "1 not enough hdd disk"],
         body=lambda _c: {"container": container(disks=[{"medium": "hdd", "size": 300 * MiB, "path": "/data"}])}),
    Case("disk-size", 3, {1, 2}, 2, ["2 not enough ssd disk"], per_host=1,
         body=lambda _c: {"container": container(disks=[{"medium": "ssd", "size": 1536 * MiB, "path": "/data"}])}),
    Case("fixed-port", 3, {1, 2}, 2, [f"2 port {FIXED_PORT} taken"], per_host=1,
         body=lambda _c: {"container": container(ports=[{"name": "web", "port": FIXED_PORT}])}),
    Case("free-ports", 3, {1}, 2, ["2 not enough free ports"],
         body=lambda _c: {"container": container(ports=_ports(20))}),
    Case("max-per-host", 3, {1, 2}, 2, ["2 already 1 of the group"], per_host=1,
         body=lambda _c: {"max_per_host": 1}),
]


@pytest.fixture
def placed_case(cluster: MultiHostCluster, request: pytest.FixtureRequest) -> Iterator[tuple[Case, str]]:
    """Set the case's hosts up, yield (case, group name); remove the group and undo afterwards, so
    the cases are independent of each other and of their order."""
    case: Case = request.param
    group = f"c-{case.name}"
    case.setup(cluster)
    try:
        yield case, group
    finally:
        try:
            remove_group(cluster, group)
        finally:
            case.undo(cluster)


@pytest.mark.parametrize("placed_case", CASES, ids=[c.name for c in CASES], indirect=True)
def test_group_places_where_it_may_and_says_why_not_elsewhere(cluster: MultiHostCluster,
                                                              placed_case: tuple[Case, str]) -> None:
    case, group = placed_case
    cluster.call("group.create", group_body(group, case.replicas, **case.body(cluster)))

    def settled() -> dict[str, Any] | None:
        shown = show(cluster, group)
        states = [c["state"] for c in shown["containers"]]
        done = (states.count("running") == case.running and states.count("pending") == case.replicas - case.running
                and len(states) == case.replicas)
        return shown if done and (case.running == case.replicas or shown["reason"]) else None
    shown = poll(f"{group}: {case.running} running, the rest pending with a reason", settled)

    running = {c["id"]: cluster.agent_index(c["host"]) for c in shown["containers"] if c["state"] == "running"}
    assert set(running.values()) <= case.allowed, f"placed outside {case.allowed}: {running}"
    if case.per_host is not None:
        used = list(running.values())
        assert all(used.count(i) == case.per_host for i in used), running
    for phrase in case.reason:
        assert phrase in shown["reason"], shown["reason"]
    if case.running == case.replicas:
        assert shown["reason"] == ""
    # the kernel agrees: exactly these containers exist, each on the host ResMan names
    expect_real(cluster, group, running)
