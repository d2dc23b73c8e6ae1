"""(b) The ResMan leader, then the AppMaster leader, cut off from ZooKeeper (and only from it).

Layout (`SpreadCluster`): ZooKeeper alone on host 1, three Agents, two ResMan and two AppMaster
replicas each on a test host of its own, so a cut between a leader's host and host 1 leaves the
leader talking to the Agents, the AppWorkers and the other daemons — the split-brain case fencing is
for. One service job (3 × http.server, max one per host) runs throughout.

Each of the 5 injections per role: cut the leader's host from host 1; then
- a standby publishes itself leader (time from the cut: the takeover);
- the old leader stops answering (port refused, or no `status` answer within 1 s, probed from an
  Agent host that still reaches it) — the time it went on answering after the takeover is printed;
- a write sent to the old leader *after* the cut, from a host that still reaches it, is either refused
  or — if acknowledged — visible at the new leader (no acknowledged write lost);
- a state write carrying the old leader's fence (its lock node and version: what its own StateStore
  sends) is refused by ZooKeeper with NotLeader and leaves nothing;
- the user's view recovers: the job RUNNING at 3/3 with 3 pods, ResMan's group exactly 3 running, the
  kernel holding exactly those 3 containers, each on one host (no double placement);
- healed: the old replica campaigns again (a standby for the next injection).
Recovery = cut → all of the above true. Violations are collected and asserted at the end, so the
summary line is printed either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from galaxy.coord import Paths, StateStore
from galaxy.errors import GalaxyError
from galaxy.testing.cluster import APPMASTER_PORT, RESMAN_PORT
from galaxy.testing.faults import Faults, Recovery
from tests.faults.conftest import (
    FaultCluster,
    client_at,
    contenders,
    duplicates,
    election_fence,
    group_exact,
    poll,
    write_with_fence_refused,
)
from tests.integration.helpers import service_spec, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root, pytest.mark.zk]

INJECTIONS = 5
JOB = "fenced"
REPLICAS = 3
SESSION = 4.0


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., FaultCluster], tmp_path_factory: pytest.TempPathFactory) -> FaultCluster:
    local = make_cluster(env={"GALAXY_RESMAN_POLL_INTERVAL": "0.5"}, agents=3, resman=2, appmaster=2,
                         session_timeout=SESSION)
    spec = write_spec(tmp_path_factory.mktemp("spec"), service_spec(JOB, replicas=REPLICAS), JOB)
    done = local.cli("job", "submit", spec, "--wait", timeout=180)
    assert done.returncode == 0, done.stderr + local.log_tail("appmaster-1")
    return local


def user_view_ok(cluster: FaultCluster) -> bool:
    """What a user sees: the job RUNNING at its count with exactly that many pods, each placed once."""
    shown = cluster.call_role("appmaster", "job.show", {"job": JOB})
    pods = shown["pods"]
    if shown["state"] != "RUNNING" or shown["running"] != REPLICAS or len(pods) != REPLICAS:
        return False
    placed = group_exact(cluster, JOB, REPLICAS)
    return placed is not None and set(placed) == {p["pod"] for p in pods}


def acknowledged_write(cluster: FaultCluster, role: str, info: Any, from_host: Any, i: int) -> dict[str, Any]:
    """Send one admin write to the (cut-off) old leader from a host that still reaches it."""
    outcome: dict[str, Any] = {"acked": False}
    agent = cluster.agent_id(1)
    if role == "resman":
        method, body = "host.label", {"host": agent, "labels": [f"fault{i}"]}
    else:
        method, body = "pool.create", {"pool": f"fault{i}"}
    try:
        with client_at(cluster, from_host, info.endpoint, info.public_key) as client:
            client.call(method, body, timeout=8.0)
        outcome["acked"] = True
    except GalaxyError as err:
        outcome["error"] = f"{type(err).__name__}: {err}"
    return outcome


def write_visible(cluster: FaultCluster, role: str, i: int) -> bool:
    """The write is in the leaders' durable state (what any new leader rebuilds from)."""
    with cluster.zk() as zk:
        store = StateStore(zk, Paths(cluster.cluster))
        if role == "resman":
            record = store.get("hosts", cluster.agent_id(1)) or {}
            return f"fault{i}" in (record.get("labels") or [])
        return store.get("pools", f"fault{i}") is not None


def serving(cluster: FaultCluster, probe_host: Any, info: Any, port: int) -> bool:
    """The old leader still answers ``status`` (what every leader serves), probed from ``probe_host``."""
    address = info.endpoint.split("//", 1)[1].rsplit(":", 1)[0]
    if probe_host.tcp_probe(address, port, 0.5) != "open":
        return False
    try:
        with client_at(cluster, probe_host, info.endpoint, info.public_key) as client:
            client.call("status", {}, timeout=1.0)
    except GalaxyError:
        return False
    return True


def cut_leader_from_zookeeper(cluster: FaultCluster, faults: Faults, role: str) -> Recovery:
    port = RESMAN_PORT if role == "resman" else APPMASTER_PORT
    stats = Recovery(f"{role} leader cut from ZooKeeper", floor=f"session timeout {SESSION:g} s")
    overlaps: list[float] = []
    probe_host = cluster.agent_host(1)
    for i in range(INJECTIONS):
        poll(f"two {role} replicas campaigning", lambda: len(contenders(cluster, role)) == 2, timeout=90)
        assert user_view_ok(cluster) or poll("the job at its count before the injection",
                                             lambda: user_view_ok(cluster), timeout=60)
        old = cluster.wait_leader(role)
        fence = election_fence(cluster, role, old.identity)
        old_host = cluster.host_of(old.identity)
        stats.injected()
        fault = faults.cut(old_host, cluster.control, name=f"{role}-zk-{i}")
        cut_at = time.monotonic()
        # an admin write to the old leader right after the cut, from a host that still reaches it
        ack: dict[str, Any] = {}
        writer = threading.Thread(target=lambda a=ack, o=old, n=i: a.update(  # type: ignore[misc]
            acknowledged_write(cluster, role, o, probe_host, n)))
        writer.start()
        try:
            new = cluster.wait_leader(role, 60, not_identity=old.identity)
            took_over = time.monotonic() - cut_at
            stopped = poll(f"the old {role} leader to stop serving",
                           lambda o=old: not serving(cluster, probe_host, o, port), timeout=60, interval=0.05)
            stopped_after = time.monotonic() - cut_at
            overlaps.append(max(0.0, stopped_after - took_over))
            assert stopped
            if not write_with_fence_refused(cluster, old.identity, fence, f"{role}-{i}"):
                stats.violated(f"a write fenced on deposed {old.identity}'s lock node was accepted")
            try:
                poll("the user's view: job at its count, each pod placed once", lambda: user_view_ok(cluster),
                     timeout=90)
            except AssertionError as err:
                stats.violated(str(err))
            stats.recovered(time.monotonic() - cut_at)
            writer.join(30)
            if ack.get("acked"):
                try:
                    poll("the acknowledged write in state", lambda n=i: write_visible(cluster, role, n), timeout=20)
                except AssertionError:
                    stats.violated(f"a write {old.identity} acknowledged after the cut is lost")
            dup = duplicates(cluster, JOB)
            if dup:
                stats.violated(f"containers on two hosts: {dup}")
        finally:
            faults.heal(fault)
            writer.join(30)
        print(f"{role} injection {i}: {old.identity} -> {new.identity}; takeover {took_over:.2f} s, old stopped "
              f"serving {stopped_after:.2f} s after the cut (port {probe_host.tcp_probe(old_host.address, port)} "
              f"at heal); write to the old leader: {ack}")
    poll(f"two {role} replicas campaigning after the last heal", lambda: len(contenders(cluster, role)) == 2,
         timeout=90)
    print(f"{role}: old leader still serving after the takeover for p50 "
          f"{sorted(overlaps)[len(overlaps) // 2]:.2f} s, max {max(overlaps):.2f} s")
    return stats


@pytest.mark.parametrize("role", ["resman", "appmaster"])
def test_leader_cut_from_zookeeper_is_fenced_and_replaced(cluster: FaultCluster, faults: Faults, role: str) -> None:
    stats = cut_leader_from_zookeeper(cluster, faults, role)
    print(stats.summary())
    assert not stats.violations, stats.violations


def test_deposed_appmaster_with_a_write_in_flight_closes_its_port(cluster: FaultCluster, faults: Faults) -> None:
    poll("two appmaster replicas campaigning", lambda: len(contenders(cluster, "appmaster")) == 2, timeout=90)
    old = cluster.wait_leader("appmaster")
    old_host = cluster.host_of(old.identity)
    probe_host = cluster.agent_host(1)
    fault = faults.cut(old_host, cluster.control, name="appmaster-zk-wedge")
    writer = threading.Thread(target=acknowledged_write, args=(cluster, "appmaster", old, probe_host, 99))
    writer.start()
    try:
        cluster.wait_leader("appmaster", 60, not_identity=old.identity)
        # a deposed leader closes its endpoint at most one session timeout after ZooKeeper's own
        # (suspended + a session timeout); allow three
        poll("the deposed appmaster to close its port",
             lambda: probe_host.tcp_probe(old_host.address, APPMASTER_PORT, 0.5) == "refused",
             timeout=3 * SESSION, interval=0.1)
    finally:
        faults.heal(fault)
        writer.join(30)
        poll("the old appmaster back in the election", lambda: len(contenders(cluster, "appmaster")) == 2,
             timeout=90)
