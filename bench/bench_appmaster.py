"""AppMaster benchmarks.

1. Rolling update of 1,000 simulated pods at step 10 % (real `galaxy-appmaster` process, real
   ZooKeeper, real mesh/CURVE; workers simulated on raw DEALERs by tests/appmaster/sim.py), beside
   the time the same master takes to bring the same 1,000 pods up from nothing in the same run
   (no step limit): the ratio is the price of moving 10 % at a time.
2. Submit → all RUNNING for 200 real instances on one host beside circus / supervisord needs real
   Agents and AppWorkers (galaxy/testing/cluster.py); it is reported as skipped until that lands.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._table import Row
from galaxy.testing import ZooKeeperServer

PODS = 1_000


def _spec(version: str) -> dict[str, Any]:
    return {"name": "bench", "replicas": PODS, "resources": {"cpu": 0.01, "memory": "8Mi", "ports": [{"name": "http"}]},
            "program": {"version": version, "start": f"serve v{version}"},
            "update": {"step": "10%", "pause_between": "0s", "max_failures": 5},
            "restart": {"max_retries": 3, "backoff": "100ms..1s"}}


def _wait(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("benchmark condition not reached in time")
        time.sleep(0.1)
    return time.monotonic() - start


def _rolling_update(server: ZooKeeperServer) -> list[Row]:
    from tests.appmaster.conftest import AppMasterCluster

    with tempfile.TemporaryDirectory(prefix="galaxy-bench-am-") as tmp:
        cluster = AppMasterCluster(server.hosts + f"/galaxy-bench-{int(time.time())}", Path(tmp))
        try:
            cluster.start_appmaster("am-bench")
            alice = cluster.client()

            def state(want_version: str) -> bool:
                row = alice.call("job.list", {})[0]
                return bool(row["state"] == "RUNNING" and row["running"] >= PODS and row["version"] == want_version)

            t0 = time.monotonic()
            alice.call("job.submit", {"spec": _spec("1")}, timeout=60)
            _wait(lambda: state("1"), 60)
            deploy = time.monotonic() - t0
            t0 = time.monotonic()
            alice.call("job.update", {"job": "bench", "spec": _spec("2"), "breakpoint": None}, timeout=60)
            _wait(lambda: state("2") and all(w.version == "2" and w.status == "RUNNING"
                                              for w in list(cluster.fleet.workers.values())), 90)
            update = time.monotonic() - t0
            alice.close()
        finally:
            cluster.close()
    return [Row("appmaster", f"rolling update {PODS} sim pods, step 10%", update, "s", deploy,
                f"first deploy of {PODS} (no step)", better="lower")]


def run() -> list[Row]:
    rows: list[Row] = []
    with ZooKeeperServer(tick_ms=500) as server:
        rows += _rolling_update(server)
    if importlib.util.find_spec("galaxy.testing.cluster") is None:
        print("bench_appmaster: 200 real instances vs circus/supervisord skipped: needs galaxy/testing/cluster.py "
              "(real Agents + AppWorkers)")
    return rows


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
