"""The Agent's own check of its pool's policy at ``container.create`` (whatever the AppMaster checked):
a real `galaxy-agent` on a test host, the policy written to ZooKeeper as the AppMaster writes it."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from galaxy.coord import Paths, StateStore
from galaxy.errors import PermissionDenied
from galaxy.protocol.container import ContainerRequest, MountAsk
from galaxy.tenancy import POLICIES, PoolPolicy
from galaxy.tenancy.policy import policy_record
from galaxy.testing.netns import TestNetwork, wait_until
from tests.agent.test_daemon import FakeResMan, agent_config, clean_agent, start_agent

pytestmark = [pytest.mark.root, pytest.mark.netns]


def body(cid: str, **over: Any) -> dict[str, Any]:
    return {"id": cid, "group": cid.split(".")[0], "cpu": 0.1, "memory": 32 << 20, "user": "nobody",
            "owner": "alice", "argv": ["sleep", "600"], **over}


def test_a_create_outside_the_pool_policy_is_refused_and_package_dirs_are_bound_read_only(
        setup: tuple[TestNetwork, FakeResMan, Path]) -> None:
    net, resman, tmp_path = setup
    data, other = tmp_path / "data", tmp_path / "other"
    packages = Path(tempfile.mkdtemp(prefix="galaxy-test-packages-", dir="/var/tmp"))  # /tmp is the container's own
    for d in (data, other):
        d.mkdir()
    (packages / "web-1.tgz").write_bytes(b"package")
    (data / "to-etc").symlink_to("/etc")
    policy = PoolPolicy.from_dict({"root_users": ["bob"], "host_paths": [{"path": str(data)}],
                                   "package_sources": [f"file://{packages}"], "capabilities": ["NET_BIND_SERVICE"]})
    StateStore(resman.client, Paths("t")).put(POLICIES, "default", policy_record("default", policy, "admin", 1.0))

    config = agent_config(tmp_path, resman, net.host(1))
    agent = start_agent(net.host(1), config, tmp_path / "agent.log")
    try:
        wait_until(lambda: resman.registrations, timeout=30, what="registration")
        agent_id = resman.registrations[-1]["id"]

        def create(cid: str, **over: Any) -> dict[str, Any]:
            return resman.server.request(agent_id, "container.create", body(cid, **over), timeout=30)  # type: ignore[no-any-return]

        cases: list[tuple[str, dict[str, Any], str, str]] = [
            ("root.a1", {"user": "root"}, "user", "does not let 'alice' run jobs as root"),
            ("mount.a1", {"mounts": [{"host": str(other), "path": "/o"}]}, "mounts[0].host", "allows no host path"),
            ("rw.a1", {"mounts": [{"host": str(data), "path": "/d", "readonly": False}]}, "mounts[0].host",
             "read-only only"),
            ("link.a1", {"mounts": [{"host": str(data / "to-etc"), "path": "/d"}]}, "mounts[0].host",
             "built-in deny list"),
            ("caps.a1", {"capabilities": ["SYS_ADMIN"]}, "capabilities[0]", "allows no capability SYS_ADMIN"),
        ]
        for cid, over, field, words in cases:
            with pytest.raises(PermissionDenied, match=words) as caught:
                create(cid, **over)
            assert caught.value.field == field
            assert not (tmp_path / "state" / "records" / f"{cid}.json").exists()

        many = resman.server.request(agent_id, "container.create_many",
                                     {"containers": [body("batch.a1", user="root")]}, timeout=30)
        [result] = many["results"]
        assert result["error"]["code"] == "denied" and result["error"]["field"] == "user"

        created = create("web.a1", owner="bob", user="root", capabilities=["NET_BIND_SERVICE"],
                         mounts=[{"host": str(data), "path": "/data"}])
        assert created["state"] == "running"
        record = json.loads((tmp_path / "state" / "records" / "web.a1.json").read_text())["request"]
        assert record["mounts"] == [{"host": str(data), "path": "/data", "readonly": True},
                                    {"host": str(packages), "path": str(packages), "readonly": True}]
        root = f"/proc/{created['pid']}/root"
        assert Path(f"{root}{packages}/web-1.tgz").read_bytes() == b"package"
        with pytest.raises(OSError):
            Path(f"{root}{packages}/new").write_bytes(b"x")                   # bound read-only
        resman.server.request(agent_id, "container.destroy", {"id": "web.a1"}, timeout=30)
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        clean_agent(net.host(1), config)
        shutil.rmtree(packages, ignore_errors=True)


def test_package_dirs_that_nest_with_the_jobs_own_paths_or_do_not_exist_are_left_out() -> None:
    from galaxy.agent.service import package_mounts

    base = Path(tempfile.mkdtemp(prefix="galaxy-test-packages-", dir="/var/tmp"))
    tmp_path = Path(tempfile.mkdtemp(prefix="galaxy-test-packages-", dir="/tmp"))  # /tmp itself, whatever TMPDIR
    try:
        for name in ("a", "b"):
            (base / name).mkdir()
        policy = PoolPolicy.from_dict({"package_sources": [f"file://{base}/a", f"file://{base}/b",
                                                           f"file://{base}/missing", f"file://{tmp_path}"]})
        req = ContainerRequest.from_wire(body("web.a1", mounts=[{"host": "/srv", "path": f"{base}/a/inner"}]))
        assert package_mounts(policy, req) == (MountAsk(f"{base}/b", f"{base}/b", True),)   # not /tmp/…: reserved
        assert package_mounts(PoolPolicy(), req) == ()
    finally:
        shutil.rmtree(base)
        shutil.rmtree(tmp_path)
