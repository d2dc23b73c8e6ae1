"""(d) A client mid-submit when the AppMaster leader dies: the leader's process is SIGKILLed by its PID
a few milliseconds after the SDK's `submit` starts (a different delay each time), 5 times.

docs/sdk.md promises: a write that never left is retried like a read; once it left, a lost leader
makes the SDK raise ``OutcomeUnknown`` (naming the method) instead of re-sending it. So the SDK's answer
must be the job's row (done) or ``OutcomeUnknown`` — nothing else — and afterwards, once a standby
leads, the job is either *visible* (`job.show` works and it reaches RUNNING at its count with exactly
that many pods, each container in one host's kernel) or *absent* (`job.show` NotFound, ResMan has no
group of that name and no host runs a container of it) — never half-created. A "done" must be
visible (no acknowledged write lost). The killed replica is restarted as a standby each time.
Recovery = kill → the job settled (visible and running, or provably absent).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from galaxy.errors import NotFound
from galaxy.sdk import Client, ClientConfig, OutcomeUnknown
from galaxy.testing.faults import Recovery
from tests.faults.conftest import FaultCluster, InNetns, contenders, group_exact, poll
from tests.integration.helpers import service_spec
from tests.resman_multihost.conftest import all_real_containers

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root, pytest.mark.zk]

DELAYS = [0.0, 0.005, 0.015, 0.03, 0.06]
REPLICAS = 2


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., FaultCluster]) -> FaultCluster:
    return make_cluster(agents=2, resman=1, appmaster=2)


def settled(cluster: FaultCluster, job: str) -> str | None:
    """"visible" / "absent" once the job is in one of the two whole states; None while neither."""
    try:
        shown = cluster.call_role("appmaster", "job.show", {"job": job})
    except NotFound:
        try:
            cluster.call_role("resman", "group.show", {"group": job})
            return None                                   # a group without a job: half-created (so far)
        except NotFound:
            return "absent" if not all_real_containers(cluster, job) else None
    if shown["state"] == "RUNNING" and shown["running"] == REPLICAS and len(shown["pods"]) == REPLICAS:
        placed = group_exact(cluster, job, REPLICAS)
        if placed is not None and set(placed) == {p["pod"] for p in shown["pods"]}:
            return "visible"
    return None


def test_submit_in_flight_when_the_appmaster_leader_dies(cluster: FaultCluster) -> None:
    stats = Recovery("AppMaster leader SIGKILLed during a client's submit",
                     floor=f"session timeout {cluster.session_timeout:g} s")
    config = ClientConfig(**cluster.client_config(cluster.base / "keys" / "admin.key", netns=cluster.control.name))
    worker = InNetns(cluster.control)
    sdk = worker.run(lambda: Client(config, deadline=60.0)).result(30)
    outcomes: list[str] = []
    try:
        worker.run(sdk.ping).result(60)                   # connections made, leader known
        for i, delay in enumerate(DELAYS):
            poll("two appmaster replicas campaigning", lambda: len(contenders(cluster, "appmaster")) == 2,
                 timeout=90)
            job = f"midsubmit{i}"
            leader = cluster.wait_leader("appmaster")
            pid = cluster.state.components[leader.identity].pid
            assert pid is not None
            stats.injected()
            future = worker.run(sdk.submit, yaml.safe_load(service_spec(job, replicas=REPLICAS)))
            time.sleep(delay)
            killed_at = time.monotonic()
            cluster.kill(leader.identity, signal.SIGKILL)   # by its PID; waits until it is gone
            answer: Any
            try:
                answer = future.result(120)
                outcome = "done"
            except OutcomeUnknown as err:
                outcome, answer = "outcome_unknown", err
                if err.method != "job.submit":
                    stats.violated(f"OutcomeUnknown names {err.method!r}, not job.submit")
            except Exception as err:  # noqa: BLE001 - any other answer is the violation we look for
                outcome, answer = f"other: {type(err).__name__}", err
                stats.violated(f"submit answered {type(err).__name__}: {err}")
            try:
                state = poll(f"{job} visible and running, or absent", lambda j=job: settled(cluster, j),
                             timeout=90, interval=0.3)
                stats.recovered(time.monotonic() - killed_at)
            except AssertionError as err:
                state = "half"
                stats.violated(f"{job} neither whole nor absent: {err}")
            if outcome == "done" and state != "visible":
                stats.violated(f"{job}: submit acknowledged but the job is {state}")
            outcomes.append(f"{outcome}/{state}")
            print(f"injection {i}: killed {leader.identity} (pid {pid}) {delay * 1000:.0f} ms into the submit: "
                  f"SDK {outcome} ({str(answer)[:80]}); job {state} "
                  f"{time.monotonic() - killed_at:.2f} s after the kill")
            cluster.restart(leader.identity)
            if state == "visible":
                worker.run(sdk.remove, job).result(120)
                poll(f"{job} removed everywhere", lambda j=job: not all_real_containers(cluster, j), timeout=60)
    finally:
        worker.run(sdk.close).result(30)
        worker.close()
    print("outcomes: " + ", ".join(outcomes))
    print(stats.summary())
    assert not stats.violations, stats.violations
