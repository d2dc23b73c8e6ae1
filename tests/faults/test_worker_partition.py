"""(c) The AppWorkers of one Agent host cut off from the AppMaster (its host only: ResMan, ZooKeeper
and the other hosts still reach them), 5 times, alternating hosts.

docs/appworker.md promises: while the master is lost the service keeps running — nothing is stopped
because the master is away; when a master answers again the worker reports the truth and follows it.

Per injection, held 8 s (past the worker's master-lost threshold, max(3 × interval, 2 s)): every pod's
service process keeps its PID and answers HTTP 200 on its port (probed from the other Agent host).
Healed: the AppMaster drives every pod again — a `job.exec` reaches each and comes back exit 0 — the
job is RUNNING at its count, and no service was restarted (same PIDs, same `restarts`). Recovery =
heal → exec answered by every pod.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from galaxy.testing.faults import Faults, Recovery
from tests.faults.conftest import FaultCluster, poll
from tests.integration.helpers import http_status, service_pid, service_spec, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root, pytest.mark.zk]

INJECTIONS = 5
JOB = "steady"
REPLICAS = 2
HOLD = 8.0


@pytest.fixture(scope="module")
def cluster(make_cluster: Callable[..., FaultCluster], tmp_path_factory: pytest.TempPathFactory) -> FaultCluster:
    local = make_cluster(agents=2, resman=1, appmaster=1)
    spec = write_spec(tmp_path_factory.mktemp("spec"), service_spec(JOB, replicas=REPLICAS), JOB)
    done = local.cli("job", "submit", spec, "--wait", timeout=180)
    assert done.returncode == 0, done.stderr + local.log_tail("appmaster-1")
    return local


def pods(cluster: FaultCluster) -> list[dict[str, Any]]:
    shown = cluster.call_role("appmaster", "job.show", {"job": JOB})
    assert shown["state"] == "RUNNING" and shown["running"] == REPLICAS, shown
    return list(shown["pods"])


def exec_everywhere(cluster: FaultCluster) -> bool:
    reply = cluster.call_role("appmaster", "job.exec", {"job": JOB, "command": "true", "timeout": 3.0},
                              timeout=15.0)
    results = reply.get("results", {})
    return len(results) == REPLICAS and all(r.get("exit_code") == 0 for r in results.values())


def test_workers_cut_from_appmaster_keep_serving_and_are_resumed(cluster: FaultCluster, faults: Faults) -> None:
    stats = Recovery("AppWorkers cut from the AppMaster (8 s), then healed",
                     floor="worker master-lost threshold max(3 x report interval, 2 s)")
    am_host = cluster.host_of("appmaster-1")
    for i in range(INJECTIONS):
        rows = poll("the job RUNNING at its count", lambda: pods(cluster), timeout=60)
        before = {p["pod"]: (service_pid(cluster, p["host"], p["pod"]), p["address"], int(p["ports"]["http"]),
                             p["restarts"]) for p in rows}
        assert all(v[0] for v in before.values()), before
        index = 1 + i % 2
        other = cluster.agent_host(2 if index == 1 else 1)
        stats.injected()
        fault = faults.cut(cluster.agent_host(index), am_host, name=f"workers-{i}")
        try:
            end = time.monotonic() + HOLD
            while time.monotonic() < end:
                for pod, (pid, address, port, _) in before.items():
                    row = next(p for p in rows if p["pod"] == pod)
                    if service_pid(cluster, row["host"], pod) != pid:
                        stats.violated(f"{pod}: service PID changed while cut off")
                    if http_status(other, address, port, 1.0) != 200:
                        stats.violated(f"{pod}: its port stopped answering while cut off")
                time.sleep(0.5)
        finally:
            faults.heal(fault)
        healed_at = time.monotonic()
        try:
            poll("the AppMaster to drive every pod again (job.exec answered by each)",
                 lambda: exec_everywhere(cluster), timeout=60, interval=0.2)
            stats.recovered(time.monotonic() - healed_at)
        except AssertionError as err:
            stats.violated(str(err))
        after = {p["pod"]: p for p in poll("the job RUNNING at its count", lambda: pods(cluster), timeout=60)}
        for pod, (pid, _, _, restarts) in before.items():
            if pod not in after:
                stats.violated(f"{pod} is gone")
                continue
            now = service_pid(cluster, after[pod]["host"], pod)
            if now != pid or after[pod]["restarts"] != restarts:
                stats.violated(f"{pod} restarted: pid {pid} -> {now}, restarts {restarts} -> {after[pod]['restarts']}")
        print(f"injection {i}: agent-{index} cut from the AppMaster {HOLD:g} s; driven again "
              f"{stats.recover_s[-1] if stats.recover_s else float('nan'):.2f} s after the heal")
    print(stats.summary())
    assert not stats.violations, stats.violations
