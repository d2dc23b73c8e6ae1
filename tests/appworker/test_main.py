"""`galaxy-appworker` as a real process: env checks, and a full life with ZooKeeper and the mesh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy.coord import LeaderInfo, Paths, publish_leader
from galaxy.errors import PermissionDenied
from galaxy.mesh import Keypair, KeyRing, Request, Server
from galaxy.protocol.pod import EXEC_RESULT, REPORT
from tests.appworker._helpers import (
    HTTP_HEALTH,
    HTTP_START,
    FakeMaster,
    free_port,
    http_get,
    kill_group,
    make_package,
    pid_alive,
    program,
    wait_until,
)
from tests.appworker.conftest import service_user

WORKER = [sys.executable, "-m", "galaxy.appworker.main"]
CLUSTER = "galaxy-appworker-test"


def test_worker_mode_names_a_missing_variable() -> None:
    out = subprocess.run(WORKER, capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 2 and "GALAXY_CONTAINER_ID" in out.stderr
    env = {"PATH": os.environ["PATH"], "GALAXY_CONTAINER_ID": "p1", "GALAXY_GROUP": "web"}
    out = subprocess.run(WORKER, capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2 and "GALAXY_ZOOKEEPER" in out.stderr


class MeshMaster:
    """A mesh Server acting as the AppMaster leader; only this job's worker key may report."""

    def __init__(self, job: str, worker_key: Keypair, script: FakeMaster) -> None:
        self.job = job
        self.script = script
        self.keypair = Keypair.generate()
        self.identity = f"galaxy-test-master-{uuid.uuid4().hex[:6]}"
        keyring = KeyRing()
        keyring.add(worker_key.public, f"worker:{job}")
        self.server = Server("tcp://127.0.0.1:0", self.keypair, keyring, name=self.identity)
        self.server.route(REPORT, self._handle)
        self.server.route(EXEC_RESULT, self._handle)
        self.server.start()

    def _handle(self, req: Request) -> Any:
        body = req.body
        if req.key_name != f"worker:{self.job}" or (req.method == REPORT and req.peer != body.get("pod")):
            raise PermissionDenied("not this job's worker")
        return self.script.handle(req.method, body)

    def info(self) -> LeaderInfo:
        return LeaderInfo(identity=self.identity, endpoint=self.server.endpoint, public_key=self.server.public_key)


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Things to end after the test: Popen workers (by PID), service pids (by group), servers."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        if isinstance(item, subprocess.Popen):
            if item.poll() is None:
                item.kill()
            item.wait(10)
        elif isinstance(item, FakeMaster):
            for pid in item.service_pids:
                kill_group(pid)
        else:
            item.server.stop()


@pytest.mark.zk
def test_worker_follows_the_master_found_in_zookeeper(zk_hosts: str, zk_client: Any, work_root: Path,
                                                      cleanup: list[Any]) -> None:
    job, pod = "web", f"galaxy-pod-{uuid.uuid4().hex[:8]}"
    worker_key = Keypair.generate()
    script = FakeMaster(interval=0.2)
    cleanup.append(script)
    first = MeshMaster(job, worker_key, script)
    cleanup.append(first)
    paths = Paths(CLUSTER)
    publish_leader(zk_client, paths, "appmaster", first.info())

    uid, gid = service_user()
    port = free_port()
    env = {"PATH": os.environ["PATH"], "GALAXY_CONTAINER_ID": pod, "GALAXY_GROUP": job,
           "GALAXY_ZOOKEEPER": zk_hosts, "GALAXY_CLUSTER": CLUSTER,
           "GALAXY_WORKER_KEY": worker_key.secret, "GALAXY_WORKER_PUB": worker_key.public,
           "GALAXY_USER": "nobody", "GALAXY_UID": str(uid), "GALAXY_GID": str(gid),
           "GALAXY_HOST_ADDRESS": "127.0.0.1", "GALAXY_PORT_HTTP": str(port),
           "GALAXY_WORK_DIR": str(work_root / "work"), "GALAXY_REPORT_INTERVAL": "0.2",
           "GALAXY_STOP_GRACE": "2"}
    worker = subprocess.Popen(WORKER, env=env, stderr=open(work_root / "worker.log", "wb"))  # noqa: SIM115
    cleanup.append(worker)

    def log_tail() -> str:
        return (work_root / "worker.log").read_text(errors="replace")[-3000:]

    try:
        script.wait_for(lambda r: r.pod == pod and r.status == "PENDING", timeout=30, what="the first report")
        v1 = program("1", HTTP_START, health=HTTP_HEALTH, deploy="echo ok > deployed.txt",
                     package=make_package(work_root, "web-1.tar.gz", {"index.html": "one\n"}))
        v2 = program("2", HTTP_START, health=HTTP_HEALTH,
                     package=make_package(work_root, "web-2.tar.gz", {"index.html": "two\n"}))
        script.send("start", version="1", program=v1)  # start implies the deploy
        report = script.wait_for(lambda r: r.status == "RUNNING", what="v1 running")
        assert http_get(port) == "one\n"
        assert os.stat(f"/proc/{report.pid}").st_uid == uid

        script.send("exec", until=lambda r: False, exec={"exec_id": "x1", "command": "env", "timeout": 5})
        result = script.wait_exec("x1")
        assert f"GALAXY_CONTAINER_ID={pod}" in result["stdout"] and "GALAXY_WORKER" not in result["stdout"]

        script.send("update", version="2", program=v2)
        updated = script.wait_for(lambda r: r.status == "RUNNING" and r.version == "2", what="v2 running")
        assert updated.pid != report.pid and worker.poll() is None and http_get(port) == "two\n"

        os.kill(updated.pid or 0, signal.SIGKILL)
        killed = script.wait_for(lambda r: r.status == "KILLED", what="the kill reported")
        assert killed.signal == signal.SIGKILL

        # A new leader: the old one goes away, the record names the new one; the worker follows it.
        second = MeshMaster(job, worker_key, script)
        cleanup.append(second)
        first.server.stop()
        publish_leader(zk_client, paths, "appmaster", second.info())
        wait_until(lambda: pod in second.server.peers(), what="the worker at the new master")
        script.send("restart")
        restarted = script.wait_for(lambda r: r.status == "RUNNING" and r.restarts == 1, what="restarted")
        assert http_get(port) == "two\n"

        worker.send_signal(signal.SIGTERM)  # a clean stop of the service, then exit
        assert worker.wait(timeout=30) == 0
        assert not pid_alive(restarted.pid)
        assert script.latest() is not None and script.latest().status == "STOPPED"  # type: ignore[union-attr]
    except AssertionError as err:
        raise AssertionError(f"{err}\n---- worker log ----\n{log_tail()}") from None
