"""Hosts going wrong under real Agents: a creation one host refuses, a host lost and back, a drain.

One cluster for the module: three Agents in pool ``default``; Agent 1 has label ``filler`` (so a
small filler group makes it the fullest host, the one bin-packing tries first), and Agents 1 and 2
each have a 512 MiB ``nvme`` host disk. ResMan polls every 0.5 s and declares a host lost after 4
silent polls (2 s). Every test removes its groups and puts the hosts back as they were.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy.coord import Paths
from galaxy.errors import GalaxyError
from galaxy.mesh import Client
from galaxy.trace import read_trace
from tests.resman_multihost.conftest import (
    MiB,
    MultiHostCluster,
    all_real_containers,
    container,
    expect_real,
    group_body,
    hosts_by_id,
    poll,
    real_containers,
    remove_group,
    wait_running,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

HELD_PORT = 23457


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., MultiHostCluster]) -> MultiHostCluster:
    return make_cluster(
        env={"GALAXY_RESMAN_POLL_INTERVAL": "0.5", "GALAXY_RESMAN_LOST_AFTER": "4",
             "GALAXY_RESMAN_BACKOFF_MIN": "0.2", "GALAXY_RESMAN_BACKOFF_MAX": "1"},
        agents=3, agent_labels={1: ["filler"]}, agent_disks={1: [("nvme", "512Mi")], 2: [("nvme", "512Mi")]})


@pytest.fixture
def resman(cluster: MultiHostCluster) -> Iterator[Client]:
    """One mesh client to the ResMan leader, for tests that watch closely."""
    with cluster.client("resman") as client:
        yield client


@pytest.fixture
def filler(cluster: MultiHostCluster) -> Iterator[str]:
    """A small group on Agent 1 only, making it the host bin-packing tries first."""
    cluster.call("group.create", group_body("filler", 1, labels=["filler"], container=container(cpu=0.5)))
    shown = wait_running(cluster, "filler", 1)
    assert cluster.agent_index(shown["containers"][0]["host"]) == 1
    try:
        yield "filler"
    finally:
        remove_group(cluster, "filler")


def _hold_port(cluster: MultiHostCluster) -> Callable[[], None]:
    sock = cluster.agent_host(1).listen_tcp(HELD_PORT)      # not a Galaxy container: the Agent's bind test fails
    return sock.close


def _break_nvme(cluster: MultiHostCluster) -> Callable[[], None]:
    disk = cluster.base / "agent-1" / "nvme"
    shutil.rmtree(disk)
    disk.write_text("not a directory: the host disk is broken\n")

    def repair() -> None:
        disk.unlink()
        disk.mkdir()
    return repair


FAILURES: dict[str, tuple[Callable[[MultiHostCluster], Callable[[], None]], dict[str, Any]]] = {
    "fixed-port-held-outside-galaxy": (_hold_port, container(cpu=0.25, ports=[{"name": "web", "port": HELD_PORT}])),
    "host-disk-broken": (_break_nvme, container(cpu=0.25, disks=[{"medium": "nvme", "size": 64 * MiB,
                                                                   "path": "/data"}])),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_creation_is_requeued_on_another_host(cluster: MultiHostCluster, filler: str, failure: str) -> None:
    break_host, template = FAILURES[failure]
    repair = break_host(cluster)
    group = f"f-{failure[:30]}"
    try:
        cluster.call("group.create", group_body(group, 1, container=template))
        shown = wait_running(cluster, group, 1)
        (cid, host), = ((c["id"], c["host"]) for c in shown["containers"])
        assert cluster.agent_index(host) != 1
        # it was tried on Agent 1 first, refused there, and the same container went elsewhere
        with cluster.zk() as zk:
            events = read_trace(zk, Paths(cluster.cluster), "container", cid)
        assert [e for e in events if e["event"] == "create_failed" and e.get("host") == cluster.agent_id(1)], events
        expect_real(cluster, group, {cid: cluster.agent_index(host)})
        # the refusing Agent gave back what it had reserved for the failed container (only the filler holds)
        poll("Agent 1 to offer all but the filler's cpu", lambda: abs(
            (h := hosts_by_id(cluster)[cluster.agent_id(1)])["capacity"]["cpu"] - h["free"]["cpu"] - 0.5) < 1e-6,
            timeout=15)
    finally:
        repair()
        remove_group(cluster, group)


@pytest.mark.parametrize("how", ["sigkill-and-restart", "sigstop-and-cont"])
def test_lost_host_is_rescheduled_and_its_return_never_doubles(cluster: MultiHostCluster, resman: Client,
                                                                how: str) -> None:
    group = f"lost-{how.split('-')[0]}"
    resman.call("group.create", group_body(group, 6, max_per_host=3))
    before = {c["id"]: cluster.agent_index(c["host"]) for c in wait_running(cluster, group, 6)["containers"]}
    expect_real(cluster, group, before)
    victim = max(set(before.values()), key=list(before.values()).count)
    victim_id, agent = cluster.agent_id(victim), f"agent-{victim}"
    old = {cid for cid, i in before.items() if i == victim}
    pid = cluster.state.components[agent].pid
    assert pid is not None
    try:
        if how == "sigkill-and-restart":
            cluster.kill(agent, signal.SIGKILL)
        else:
            cluster.kill(agent, signal.SIGSTOP)
            # a paused Agent is still the cluster's, and still paused (not waited for as if it had ended)
            assert cluster.state.components[agent].pid == pid
            poll("the Agent stopped by the kernel", lambda: _proc_state(pid) == "T", timeout=10, interval=0.05)

        def moved() -> dict[str, int] | None:
            hosts = {h["id"]: h for h in resman.call("hosts.list", {})}
            shown = resman.call("group.show", {"group": group})
            run = {c["id"]: cluster.agent_index(c["host"]) for c in shown["containers"] if c["state"] == "running"}
            done = (hosts[victim_id]["status"] == "lost" and len(run) == 6 and len(shown["containers"]) == 6
                    and victim not in run.values())
            return run if done else None
        after = poll("the lost host's containers running elsewhere", moved, timeout=40)
        assert not old & set(after), "replacements are new containers"
        assert real_containers(cluster, victim, group) == old, "the lost host still runs its old copies"

        # the host comes back with its old copies: they are destroyed, the group stays at exactly 6
        peak = _Peak(resman, group)
        try:
            if how == "sigkill-and-restart":
                cluster.restart(agent)
            else:
                cluster.kill(agent, signal.SIGCONT)
                assert cluster.state.components[agent].pid == pid
            poll("the host alive again", lambda: hosts_by_id(cluster)[victim_id]["status"] == "alive", timeout=40)
            poll("the old copies destroyed", lambda: not real_containers(cluster, victim, group), timeout=40)
        finally:
            peak.stop()
        final = {c["id"]: cluster.agent_index(c["host"])
                 for c in wait_running(cluster, group, 6)["containers"]}
        assert final == after
        expect_real(cluster, group, final)
        assert peak.most <= 6, f"{peak.most} running containers of a group of 6 were seen"
    finally:
        _revive(cluster, victim)
        remove_group(cluster, group)


def _revive(cluster: MultiHostCluster, index: int) -> None:
    """Leave Agent ``index`` running and registered for the next test, whatever this one did to it."""
    agent = f"agent-{index}"
    if cluster.state.components[agent].pid is None:
        cluster.restart(agent)
    else:
        cluster.kill(agent, signal.SIGCONT)
    poll(f"{agent} alive", lambda: hosts_by_id(cluster)[cluster.agent_id(index)]["status"] == "alive", timeout=40)


def _proc_state(pid: int) -> str:
    """The kernel's one-letter state of a process (``T`` = stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


class _Peak:
    """Samples a group's running count from ``group.show`` in the background; ``most`` is the peak."""

    def __init__(self, client: Client, group: str) -> None:
        self.client, self.group, self.most, self.samples = client, group, 0, 0
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, name=f"peak-{group}", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            shown = self.client.call("group.show", {"group": self.group}, timeout=5.0)
        except GalaxyError:     # a sample lost while ResMan is busy is only skipped
            return
        self.most = max(self.most, sum(c["state"] == "running" for c in shown["containers"]))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert self.samples > 0, "no sample of the group was taken"


def test_drain_moves_containers_a_step_at_a_time_and_leaves_the_host_empty(cluster: MultiHostCluster,
                                                                           resman: Client) -> None:
    group, step = "drained", 2
    resman.call("group.create", group_body(group, 6, update_step=step))
    before = {c["id"]: cluster.agent_index(c["host"]) for c in wait_running(cluster, group, 6)["containers"]}
    busiest = max(set(before.values()), key=list(before.values()).count)
    busiest_id = cluster.agent_id(busiest)
    on_busiest = {cid for cid, i in before.items() if i == busiest}
    assert len(on_busiest) > step, f"bin-packing should have stacked the group: {before}"
    peak_live, peak_new_waiting, peak_real = 0, 0, 0

    def drained() -> bool:
        nonlocal peak_live, peak_new_waiting, peak_real
        shown = resman.call("group.show", {"group": group})
        live = [c for c in shown["containers"] if c["state"] != "destroying"]
        waiting = [c for c in live if c["state"] != "running"]
        peak_live, peak_new_waiting = max(peak_live, len(live)), max(peak_new_waiting, len(waiting))
        real = all_real_containers(cluster, group)
        peak_real = max(peak_real, len(real))
        host = {h["id"]: h for h in resman.call("hosts.list", {})}[busiest_id]
        return (not any(busiest in where for where in real.values()) and host["containers"] == 0
                and len(live) == 6 and not waiting)
    assert resman.call("host.drain", {"host": busiest_id}) == {"host": busiest_id, "admin": "draining"}
    try:
        poll("the host drained", drained, timeout=60, interval=0.05)
        assert peak_live <= 6 + step, f"{peak_live} live containers: more than update_step above the count"
        assert peak_new_waiting <= step, f"{peak_new_waiting} replacements were made at once"
        assert peak_real <= 6 + step, f"{peak_real} containers existed on the hosts at once"
        host = hosts_by_id(cluster)[busiest_id]
        assert host["admin"] == "draining" and host["containers"] == 0
        after = {c["id"]: cluster.agent_index(c["host"]) for c in wait_running(cluster, group, 6)["containers"]}
        assert busiest not in after.values() and not on_busiest & set(after)
        assert {cid: i for cid, i in before.items() if i != busiest}.items() <= after.items(), \
            "containers on other hosts were not touched"
        expect_real(cluster, group, after)
    finally:
        resman.call("host.online", {"host": busiest_id})
        remove_group(cluster, group)


