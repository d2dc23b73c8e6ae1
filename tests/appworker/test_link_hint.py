"""MasterLink with the Agent's hint: the master is reached without ZooKeeper, and a stale hint falls
back to the leader record in ZooKeeper."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from galaxy.appworker.link import MasterLink
from galaxy.appworker.settings import WorkerSettings
from galaxy.coord import Paths, publish_leader
from galaxy.errors import GalaxyError
from galaxy.mesh import Keypair
from galaxy.protocol.pod import REPORT, PodReport
from tests.appworker._helpers import FakeMaster, free_port, wait_until
from tests.appworker.test_main import MeshMaster

JOB = "web"


@pytest.fixture
def masters() -> Iterator[list[MeshMaster]]:
    made: list[MeshMaster] = []
    yield made
    for master in made:
        master.server.stop()


def _settings(pod: str, key: Keypair, *, zookeeper: str, cluster: str, endpoint: str = "",
              master_key: str = "") -> WorkerSettings:
    return WorkerSettings(pod=pod, job=JOB, uid=0, gid=0, zookeeper=zookeeper, cluster=cluster,
                          worker_public=key.public, worker_secret=key.secret,
                          master_endpoint=endpoint, master_key=master_key)


def _report(pod: str) -> dict[str, Any]:
    return PodReport(pod=pod, job=JOB, status="PENDING").to_wire()


def _answered(link: MasterLink, pod: str) -> bool:
    try:
        link(REPORT, _report(pod))
    except GalaxyError:
        return False
    return True


def test_hinted_master_is_reached_without_zookeeper(masters: list[MeshMaster]) -> None:
    key = Keypair.generate()
    script = FakeMaster()
    master = MeshMaster(JOB, key, script)
    masters.append(master)
    pod = f"galaxy-pod-{uuid.uuid4().hex[:8]}"
    info = master.info()
    # No ZooKeeper listens here: a link that needed it could never answer.
    settings = _settings(pod, key, zookeeper=f"127.0.0.1:{free_port()}", cluster="galaxy-link-test",
                         endpoint=info.endpoint, master_key=info.public_key)
    link = MasterLink(settings, key).start()
    try:
        reply = link(REPORT, _report(pod))
        assert isinstance(reply, dict) and reply.get("command") == "none"
        assert script.reports[-1].pod == pod
        assert not link.discovering and link.leader_changes == 1
    finally:
        link.close()


def test_worker_settings_keep_the_hint_out_of_the_service_env() -> None:
    key = Keypair.generate()
    env = {"GALAXY_CONTAINER_ID": "p1", "GALAXY_GROUP": JOB, "GALAXY_ZOOKEEPER": "127.0.0.1:2181",
           "GALAXY_CLUSTER": "c", "GALAXY_WORKER_KEY": key.secret, "GALAXY_WORKER_PUB": key.public,
           "GALAXY_UID": "0", "GALAXY_GID": "0", "GALAXY_MASTER_ENDPOINT": "tcp://127.0.0.1:1",
           "GALAXY_MASTER_KEY": key.public, "GALAXY_MASTER_ID": "appmaster-1"}
    settings = WorkerSettings.from_environ(env)
    assert (settings.master_endpoint, settings.master_key, settings.master_identity) == \
        ("tcp://127.0.0.1:1", key.public, "appmaster-1")
    assert not any(name.startswith("GALAXY_MASTER") for name in settings.container_env)


@pytest.mark.zk
def test_stale_hint_falls_back_to_the_leader_in_zookeeper(zk_hosts: str, zk_client: Any,
                                                           masters: list[MeshMaster]) -> None:
    key = Keypair.generate()
    script = FakeMaster()
    leader = MeshMaster(JOB, key, script)
    masters.append(leader)
    cluster = f"galaxy-link-{uuid.uuid4().hex[:6]}"
    publish_leader(zk_client, Paths(cluster), "appmaster", leader.info())
    pod = f"galaxy-pod-{uuid.uuid4().hex[:8]}"
    gone = Keypair.generate()  # the hint names a master that is no longer there
    settings = _settings(pod, key, zookeeper=zk_hosts, cluster=cluster,
                         endpoint=f"tcp://127.0.0.1:{free_port()}", master_key=gone.public)
    link = MasterLink(settings, key, timeout=0.5).start()
    try:
        wait_until(lambda: _answered(link, pod), timeout=30, what="a report answered by the leader")
        assert link.discovering and link.leader is not None
        assert link.leader.endpoint == leader.server.endpoint
        assert any(r.pod == pod for r in script.reports)
    finally:
        link.close()
