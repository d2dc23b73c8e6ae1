"""Users, authority, quota and pools at the AppMaster, as users see them: a real `galaxy-appmaster`,
real ZooKeeper, real CURVE keys; every user made by the admin through `user.create`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from galaxy.coord import StateStore
from galaxy.errors import Conflict, InvalidInput, NotFound, PermissionDenied, QuotaExceeded, Timeout
from galaxy.mesh import Client, Keypair
from galaxy.tenancy.usage import day_of, hour_of, record_key
from tests.appmaster.conftest import JOB_PERMISSIONS, AppMasterCluster, UserClient, wait_until
from tests.appmaster.test_service import spec, wait_state

pytestmark = pytest.mark.zk


def started(am: AppMasterCluster) -> UserClient:
    am.start_appmaster("am-1")
    return am.client("admin")


def job_exists_in_state(am: AppMasterCluster, job: str) -> bool:
    return am.zk.exists(am.paths.state("jobs", job)) is not None


def test_without_a_grant_a_user_cannot_submit_read_or_delete_nor_touch_anothers_job(am_cluster: AppMasterCluster,
                                                                                       ) -> None:
    admin = started(am_cluster)
    alice = am_cluster.client("alice")
    alice.call("job.submit", {"spec": spec(replicas=2)})
    wait_state(alice, "web", "RUNNING")
    am_cluster.add_user("carol")                                          # no grant at all
    am_cluster.add_user("dave", {"default": ["job.read"]})                # may read, nothing more
    carol, dave, bob = am_cluster.client("carol"), am_cluster.client("dave"), am_cluster.client("bob")

    with pytest.raises(PermissionDenied) as denied:
        carol.call("job.submit", {"spec": spec("mine", replicas=1)})
    assert denied.value.field == "pool" and "job.create" in denied.value.message and "'default'" in denied.value.message
    assert "mine" not in am_cluster.resman.groups and not job_exists_in_state(am_cluster, "mine")
    with pytest.raises(PermissionDenied, match="job.read"):
        carol.call("job.show", {"job": "web"})
    with pytest.raises(PermissionDenied):
        carol.call("pod.list", {"job": "web"})
    assert carol.call("job.list", {}) == []
    with pytest.raises(PermissionDenied, match="job.delete"):
        carol.call("job.remove", {"job": "web"})

    assert dave.call("job.show", {"job": "web"})["owner"] == "alice", "job.read shows other users' jobs"
    assert [r["job"] for r in dave.call("job.list", {})] == ["web"]
    with pytest.raises(PermissionDenied, match="job.update"):
        dave.call("job.scale", {"job": "web", "replicas": 1})

    for method, body in [("job.stop", {"job": "web"}), ("job.scale", {"job": "web", "replicas": 5}),
                         ("job.remove", {"job": "web"}), ("job.update", {"job": "web", "spec": spec(version="2")}),
                         ("job.exec", {"job": "web", "command": "true"})]:
        with pytest.raises(PermissionDenied, match="belongs to 'alice'"):
            bob.call(method, body)                      # bob holds every job grant, but it is not his job
    after = alice.call("job.show", {"job": "web"})
    assert (after["state"], after["replicas"], after["version"]) == ("RUNNING", 2, "1"), "denials change nothing"
    assert am_cluster.resman.groups["web"]["replicas"] == 2
    assert admin.call("job.scale", {"job": "web", "replicas": 1}) == {"job": "web", "replicas": 1}


def test_a_removed_users_key_gets_no_answer_at_once_and_a_recreated_user_works(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    am_cluster.add_user("carol", {"default": JOB_PERMISSIONS})
    old_keys = am_cluster.users["carol"]
    carol = am_cluster.client("carol")
    assert carol.call("user.whoami", {}) == {"user": "carol", "kind": "user", "admin": False,
                                             "grants": {"default": sorted(JOB_PERMISSIONS)}}
    connection = carol._ensure()                    # stays open across the removal
    assert admin.call("user.remove", {"user": "carol"}) == {"user": "carol", "removed": True}
    with pytest.raises(Timeout):
        connection.call("user.whoami", {}, timeout=1.5)
    assert am_cluster.zk.exists(am_cluster.paths.state("users", "carol")) is None
    with pytest.raises(NotFound):
        admin.call("user.show", {"user": "carol"})

    stranger = Keypair.generate()
    leader = am_cluster.leader()
    with Client(leader.endpoint, leader.public_key, stranger, "stranger", timeout=1.5, retries=0) as unknown:
        with pytest.raises(Timeout):
            unknown.call("user.whoami", {})

    am_cluster.users["carol"] = Keypair.generate()
    am_cluster.add_user("carol", {"default": ["job.read"]})
    fresh = am_cluster.client("carol")
    assert fresh.call("user.whoami", {})["grants"] == {"default": ["job.read"]}
    with Client(leader.endpoint, leader.public_key, old_keys, "carol-old", timeout=1.5, retries=0) as old:
        with pytest.raises(Timeout):
            old.call("user.whoami", {})


def test_submit_over_quota_fails_with_the_figures_and_creates_nothing(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    am_cluster.add_user("carol", {"default": JOB_PERMISSIONS}, quota={"cpu": 0.5, "jobs": 2})
    carol = am_cluster.client("carol")
    carol.call("job.submit", {"spec": spec("web", replicas=3)})           # 0.3 cores of 0.5
    with pytest.raises(QuotaExceeded) as over:
        carol.call("job.submit", {"spec": spec("big", replicas=3)})
    details = over.value.details or {}
    assert (details["quota"], details["unit"], details["limit"]) == ("cpu", "cores", 0.5)
    assert details["asked"] == pytest.approx(0.3) and details["used"] == pytest.approx(0.3)
    assert over.value.field == "quota.cpu" and "asked 0.3 cores" in over.value.message
    assert [r["job"] for r in carol.call("job.list", {})] == ["web"]
    assert not job_exists_in_state(am_cluster, "big") and "big" not in am_cluster.resman.groups
    assert not any(body.get("group") == "big" for _, body in am_cluster.resman.calls)
    with pytest.raises(NotFound):
        carol.call("job.show", {"job": "big"})

    carol.call("job.submit", {"spec": spec("small", replicas=1)})          # 0.4 cores, 2 jobs
    with pytest.raises(QuotaExceeded) as jobs:
        carol.call("job.submit", {"spec": spec("third", replicas=1, resources={"cpu": 0.05, "memory": "8Mi", "ports": [{"name": "http"}]})})
    assert (jobs.value.details or {})["quota"] == "jobs" and (jobs.value.details or {})["used"] == 2
    shown = carol.call("quota.show", {})
    assert shown["limit"]["cpu"] == 0.5 and shown["used"]["jobs"] == 2 and shown["used"]["cpu"] == pytest.approx(0.4)
    assert admin.call("job.submit", {"spec": spec("root-job", replicas=3)})["job"] == "root-job", \
        "the root admin key has no quota"


def test_scale_and_update_are_checked_against_the_quota_too(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    am_cluster.add_user("carol", {"default": JOB_PERMISSIONS}, quota={"replicas": 4, "cpu": 0.5})
    carol = am_cluster.client("carol")
    carol.call("job.submit", {"spec": spec(replicas=3)})
    wait_state(carol, "web", "RUNNING")

    with pytest.raises(QuotaExceeded) as over:
        carol.call("job.scale", {"job": "web", "replicas": 5})
    figures = over.value.details or {}
    assert {k: figures[k] for k in ("quota", "asked", "used", "limit")} == \
        {"quota": "replicas", "asked": 2, "used": 3, "limit": 4}
    assert carol.call("job.show", {"job": "web"})["replicas"] == 3 and am_cluster.resman.groups["web"]["replicas"] == 3
    assert carol.call("job.scale", {"job": "web", "replicas": 4})["replicas"] == 4      # exactly at the limit

    bigger = spec(version="2", replicas=4, resources={"cpu": 0.2, "memory": "32Mi", "ports": [{"name": "http"}]})
    updates_before = sum(1 for method, _ in am_cluster.resman.calls if method == "group.update")
    with pytest.raises(QuotaExceeded) as cpu:
        carol.call("job.update", {"job": "web", "spec": bigger})
    assert cpu.value.details is not None and cpu.value.details["quota"] == "cpu"
    assert cpu.value.details["asked"] == pytest.approx(0.4) and cpu.value.details["used"] == pytest.approx(0.4)
    detail = carol.call("job.show", {"job": "web"})
    assert (detail["version"], detail["versions"], detail["update"]) == ("1", ["1"], None)
    assert sum(1 for method, _ in am_cluster.resman.calls if method == "group.update") == updates_before

    admin.call("quota.set", {"user": "carol", "quota": {"replicas": 1}})      # lowered below what she holds
    assert carol.call("job.scale", {"job": "web", "replicas": 2})["replicas"] == 2, "scaling down always passes"
    assert carol.call("job.update", {"job": "web", "spec": spec(version="2", replicas=2)})["version"] == "2", \
        "an update that asks no more passes"
    cleared = admin.call("quota.set", {"user": "carol", "clear": ["replicas", "cpu"]})
    assert cleared["limit"]["replicas"] is None and cleared["limit"]["cpu"] is None


def test_pools_are_declared_listed_and_deleted_only_when_empty(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    alice = am_cluster.client("alice")
    with pytest.raises(PermissionDenied, match="administrator"):
        alice.call("pool.create", {"pool": "batch"})
    row = admin.call("pool.create", {"pool": "batch", "description": "nightly"})
    assert row == {"pool": "batch", "description": "nightly", "hosts": 0, "jobs": 0, "declared": True}
    with pytest.raises(Conflict):
        admin.call("pool.create", {"pool": "batch"})
    with pytest.raises(InvalidInput) as bad:
        admin.call("pool.create", {"pool": "Bad_Name"})
    assert bad.value.field == "pool"
    with pytest.raises(NotFound) as undeclared:
        admin.call("job.submit", {"spec": spec("lost", pool="nowhere")})
    assert undeclared.value.field == "pool" and not job_exists_in_state(am_cluster, "lost")

    admin.call("user.grant", {"user": "alice", "pool": "batch", "permissions": JOB_PERMISSIONS})
    alice.call("job.submit", {"spec": spec("nightly", replicas=1, pool="batch")})
    rows = {r["pool"]: r for r in admin.call("pool.list", {})}
    assert rows["default"] == {"pool": "default", "description": "", "hosts": 3, "jobs": 0, "declared": True}
    assert rows["batch"]["jobs"] == 1
    am_cluster.add_user("carol", {"batch": ["job.read"]})
    assert [r["pool"] for r in am_cluster.client("carol").call("pool.list", {})] == ["batch"], \
        "a user sees the pools where they hold a grant"

    with pytest.raises(Conflict) as busy:
        admin.call("pool.delete", {"pool": "batch"})
    assert busy.value.details == {"pool": "batch", "hosts": 0, "jobs": 1}
    alice.call("job.remove", {"job": "nightly"})
    am_cluster.resman.host_pools["sim-host-2"] = "batch"
    with pytest.raises(Conflict) as hosts:
        admin.call("pool.delete", {"pool": "batch"})
    assert hosts.value.details == {"pool": "batch", "hosts": 1, "jobs": 0}
    am_cluster.resman.host_pools.clear()
    assert admin.call("pool.delete", {"pool": "batch"}) == {"pool": "batch", "deleted": True}
    assert "batch" not in {r["pool"] for r in admin.call("pool.list", {})}
    with pytest.raises(NotFound):
        alice.call("job.submit", {"spec": spec("again", replicas=1, pool="batch")})
    with pytest.raises(Conflict):
        admin.call("pool.delete", {"pool": "default"})
    with pytest.raises(NotFound):
        admin.call("pool.delete", {"pool": "batch"})
    with pytest.raises(PermissionDenied):
        alice.call("pool.delete", {"pool": "default"})


def test_only_administrators_manage_users_and_input_is_checked(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    alice = am_cluster.client("alice")
    key = Keypair.generate().public
    for method, body in [("user.create", {"user": "eve", "key": key}), ("user.remove", {"user": "bob"}),
                         ("user.grant", {"user": "alice", "pool": "default", "permissions": ["host.admin"]}),
                         ("user.revoke", {"user": "bob", "pool": "default"}), ("user.list", {}),
                         ("quota.set", {"user": "alice", "quota": {"cpu": 100}}), ("user.show", {"user": "bob"}),
                         ("quota.show", {"user": "bob"}), ("user.usage", {"user": "bob"})]:
        with pytest.raises(PermissionDenied):
            alice.call(method, body)
    mine = alice.call("user.show", {})
    assert mine["name"] == "alice" and mine["used"]["jobs"] == 0 and "host.admin" not in mine["grants"]["default"]

    for body, field in [({"user": "Eve!", "key": key}, "user"), ({"user": "admin", "key": key}, "user"),
                        ({"user": "eve", "key": "short"}, "key"), ({"user": "eve", "key": key, "admin": "yes"}, "admin")]:
        with pytest.raises(InvalidInput) as bad:
            admin.call("user.create", body)
        assert bad.value.field == field
    with pytest.raises(Conflict):
        admin.call("user.create", {"user": "alice", "key": key})
    with pytest.raises(Conflict) as shared:
        admin.call("user.create", {"user": "eve", "key": am_cluster.users["alice"].public})
    assert shared.value.field == "key"
    with pytest.raises(NotFound):
        admin.call("user.grant", {"user": "nobody", "pool": "default", "permissions": ["job.read"]})
    with pytest.raises(InvalidInput) as perm:
        admin.call("user.grant", {"user": "alice", "pool": "default", "permissions": ["job.destroy"]})
    assert perm.value.field == "permissions"
    with pytest.raises(NotFound) as pool:
        admin.call("user.grant", {"user": "alice", "pool": "nowhere", "permissions": ["job.read"]})
    assert pool.value.field == "pool"
    with pytest.raises(InvalidInput) as quota:
        admin.call("quota.set", {"user": "alice", "quota": {"cpu": -1}})
    assert quota.value.field == "quota.cpu"

    boss_key = Keypair.generate()
    am_cluster.users["boss"] = boss_key
    admin.call("user.create", {"user": "boss", "key": boss_key.public, "admin": True})
    am_cluster.created.add("boss")
    boss = am_cluster.client("boss")
    assert boss.call("user.whoami", {})["admin"] is True
    boss.call("user.revoke", {"user": "alice", "pool": "default", "permissions": ["job.delete"]})
    assert "job.delete" not in admin.call("user.show", {"user": "alice"})["grants"]["default"]
    assert [u["name"] for u in boss.call("user.list", {})] == ["alice", "boss"]


def test_usage_is_read_for_oneself_or_by_an_administrator(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    alice = am_cluster.client("alice")
    hour = hour_of(time.time())
    day = day_of(hour)
    figures: dict[str, Any] = {"cpu_used": 36.0, "cpu_reserved": 360.0, "memory_used": 1.5, "memory_reserved": 3.0,
                               "disk_reserved": {"ssd": 10.0}}
    StateStore(am_cluster.zk, am_cluster.paths).put(
        "usage", record_key("alice", "default", day), {"user": "alice", "pool": "default", "day": day,
                                                       "hours": {str(hour): figures}})
    report = wait_until(lambda: (r := alice.call("user.usage", {"since": hour - 60}))["total"]["cpu_used"] and r,
                        5, "alice's usage")
    assert report["user"] == "alice" and report["pools"]["default"]["cpu_reserved"] == 360.0
    assert report["total"]["disk_reserved"] == {"ssd": 10.0}
    assert admin.call("user.usage", {"user": "alice", "pool": "default", "since": hour - 60})["total"]["cpu_used"] == 36.0
    assert admin.call("user.usage", {"user": "alice", "pool": "other", "since": hour - 60})["total"]["cpu_used"] == 0.0
    with pytest.raises(InvalidInput) as bad:
        alice.call("user.usage", {"since": "yesterday"})
    assert bad.value.field == "since"
