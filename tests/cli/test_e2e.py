"""The `galaxy` CLI end to end against a real local cluster (ZooKeeper, ResMan, AppMaster, two Agents in
network namespaces), run as a user would: a subprocess in the control host, configured by a config file.

submit --wait, list, show, logs, trace, update with pause and resume, stop, remove — checking the
printed tables and the JSON documents.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy.testing.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

JOB = """\
name: web
replicas: 2
max_per_host: 1
resources:
  cpu: 0.1
  memory: 64Mi
  ports: [{name: http}]
program:
  version: "VERSION"
  start: python3 -u -m http.server $GALAXY_PORT_HTTP   # -u: the banner reaches the log at once
  health: {tcp: http, interval: 1s}
update: {step: 1, pause_between: 1s, max_failures: 1}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("galaxy-cli-e2e")
    local = LocalCluster(base, agents=2, prefix=f"gxcli{uuid.uuid4().hex[:4]}").start()
    try:
        yield local
    finally:
        local.stop()


def galaxy(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.cli(*args)


def ok(cluster: LocalCluster, *args: str) -> str:
    done = galaxy(cluster, *args)
    assert done.returncode == 0, f"galaxy {' '.join(args)}: {done.stderr}"
    return done.stdout


def as_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(ok(cluster, *args, "--output", "json"))


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines() if line.strip()]


def job_file(tmp_path: Path, version: str) -> str:
    path = tmp_path / f"web-{version}.yaml"
    path.write_text(JOB.replace("VERSION", version))
    return str(path)


def poll(what: str, check: Any, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_through_its_life(cluster: LocalCluster, tmp_path: Path) -> None:
    done = galaxy(cluster, "job", "submit", job_file(tmp_path, "1"), "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "job web RUNNING: 2/2 running, 0 pending, 0 failed (version 1)\n"
    assert "web: RUNNING" in done.stderr.splitlines()[-1]

    header, row = rows(ok(cluster, "job", "list"))
    assert header[:7] == ["JOB", "POOL", "OWNER", "TYPE", "STATE", "VERSION", "PODS"]
    assert row[:7] == ["web", "default", "admin", "service", "RUNNING", "1", "2/2"]
    [listed] = as_json(cluster, "job", "list")
    assert (listed["job"], listed["state"], listed["running"]) == ("web", "RUNNING", 2)

    shown = as_json(cluster, "job", "show", "web")
    pods = sorted(p["pod"] for p in shown["pods"])
    assert len(pods) == 2 and {p["status"] for p in shown["pods"]} == {"RUNNING"}
    assert "State:" in ok(cluster, "job", "show", "web")
    assert [r[0] for r in rows(ok(cluster, "pod", "list", "web"))][1:] == pods

    logs = poll("http.server's banner in the pod's stdout",
                lambda: (out := ok(cluster, "pod", "logs", pods[0])) and "Serving HTTP" in out and out)
    assert "Serving HTTP" in logs
    assert as_json(cluster, "pod", "logs", pods[0])["offset"] > 0

    assert ok(cluster, "job", "trace", "web") != "no events recorded\n"
    assert as_json(cluster, "job", "trace", "web")
    assert as_json(cluster, "pod", "trace", pods[0])

    updating = as_json(cluster, "job", "update", "web", job_file(tmp_path, "2"), "--breakpoint", "1")
    assert updating["job"] == "web"
    held = poll("the breakpoint after one pod",
                lambda: (row := as_json(cluster, "job", "show", "web"))["state"] == "PAUSED" and row)
    assert held["update"]["done"] == 1
    paused = as_json(cluster, "job", "pause", "web")
    assert paused["state"] == "PAUSED"
    assert as_json(cluster, "job", "show", "web")["state"] == "PAUSED"
    assert as_json(cluster, "job", "resume", "web")["state"] in ("UPDATING", "RUNNING")

    def rolled_out() -> Any:
        row = as_json(cluster, "job", "show", "web")
        assert row["state"] != "PAUSED", "one resume passes the breakpoint: it must not pause again"
        return row["state"] == "RUNNING" and str(row["version"]) == "2" and row

    final = poll("the rollout to version 2", rolled_out)
    assert {str(p["version"]) for p in final["pods"]} == {"2"}

    assert as_json(cluster, "job", "stop", "web")["job"] == "web"
    poll("the job to stop", lambda: as_json(cluster, "job", "show", "web")["state"] == "STOPPED")
    assert ok(cluster, "job", "remove", "web") == "job web removed\n"
    gone = galaxy(cluster, "job", "show", "web")
    assert gone.returncode == 1 and gone.stdout == "" and len(gone.stderr.splitlines()) == 1
    assert gone.stderr.startswith("error: ") and "web" in gone.stderr


def test_status_and_agents(cluster: LocalCluster) -> None:
    hosts = as_json(cluster, "agent", "list")
    assert len(hosts) == 2 and {h["status"] for h in hosts} == {"alive"}
    summary = as_json(cluster, "status")
    assert summary["total"]["hosts"] == 2 and summary["leaders"]["appmaster"] is not None
    assert "HOSTS" in ok(cluster, "status")
