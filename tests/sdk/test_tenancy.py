"""The SDK's tenancy calls against the canned AppMaster on the real mesh and ZooKeeper: what is sent,
as whom, and what comes back (records, quota figures, typed errors with their details)."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy.errors import Conflict, InvalidInput, PermissionDenied, QuotaExceeded
from galaxy.mesh import Keypair
from galaxy.sdk import Client, load_config
from galaxy.sdk.config import ClientConfig
from tests.sdk.canned import USER, CannedCluster

pytestmark = pytest.mark.zk

WEB = Path(__file__).resolve().parents[2] / "examples" / "web.yaml"
GI = 1 << 30


def test_users_grants_and_pools_round_trip(client: Client, canned: CannedCluster) -> None:
    assert client.whoami() == {"user": USER, "kind": "user", "admin": True, "grants": {}}
    bob = Keypair.generate()
    record = client.user_create("bob", bob.public)
    assert (record["name"], record["key"], record["admin"]) == ("bob", bob.public, False)
    assert canned.calls("user.create") == [({"user": "bob", "key": bob.public, "admin": False}, USER)]
    assert [u["name"] for u in client.users()] == [USER, "bob"]

    record = client.grant("bob", "default", ["all", "host.admin"])
    assert record["grants"] == {"default": ["host.admin", "job.create", "job.delete", "job.read", "job.update"]}
    assert client.revoke("bob", "default", "host.admin")["grants"]["default"] == \
        ["job.create", "job.delete", "job.read", "job.update"]
    assert client.revoke("bob", "default")["grants"] == {}
    assert canned.calls("user.revoke")[1][0] == {"user": "bob", "pool": "default"}  # no list = every grant

    assert client.pool_create("gpu", "the GPU hosts")["pool"] == "gpu"
    assert [(p["pool"], p["description"]) for p in client.pools()] == \
        [("default", "where hosts go unless told otherwise"), ("gpu", "the GPU hosts")]
    assert client.pool_delete("gpu") == {"pool": "gpu", "deleted": True}
    client.submit(WEB)
    with pytest.raises(Conflict, match="0 hosts and 1 jobs") as caught:
        client.pool_delete("default")
    assert caught.value.details == {"hosts": 0, "jobs": 1}

    assert client.user_remove("bob") == {"user": "bob", "removed": True}
    assert bob.public not in canned.keyring


def test_quota_is_sent_in_bytes_and_shown_beside_use(client: Client, canned: CannedCluster) -> None:
    client.submit(WEB)   # 3 replicas × 250m cpu, 64Mi memory
    reply = client.quota_set(USER, cpu=4, memory="1Gi", disk={"ssd": "100Gi"}, jobs=5)
    assert canned.calls("quota.set")[0][0] == {
        "user": USER, "quota": {"cpu": 4.0, "memory": GI, "disk": {"ssd": 100 * GI}, "jobs": 5}, "clear": []}
    assert reply["limit"] == {"cpu": 4.0, "memory": GI, "disk": {"ssd": 100 * GI}, "jobs": 5, "replicas": None}
    assert reply["used"] == {"cpu": 0.75, "memory": 3 * 64 << 20, "disk": {}, "jobs": 1, "replicas": 3}
    client.quota_set(USER, clear=["disk.ssd", "jobs"])
    assert client.quota() == client.quota(USER)
    assert client.quota()["limit"] == {"cpu": 4.0, "memory": GI, "disk": {}, "jobs": None, "replicas": None}
    assert client.user()["used"]["replicas"] == 3


def test_a_refused_quota_keeps_its_figures(client: Client, canned: CannedCluster) -> None:
    client.quota_set(USER, cpu="500m")
    with pytest.raises(QuotaExceeded, match=r"asked 0.75 cores, used 0 cores, limit 0.5 cores") as caught:
        client.submit(WEB)
    assert caught.value.field == "quota.cpu"
    assert caught.value.details == {"quota": "cpu", "asked": 0.75, "used": 0.0, "limit": 0.5, "unit": "cores"}
    assert client.jobs() == []


def test_usage_sends_since_as_epoch_seconds(client: Client, canned: CannedCluster) -> None:
    assert canned.model.tenancy is not None
    canned.model.tenancy.usage = {"pools": {"default": {"cpu_used": 7200.0}, "gpu": {"cpu_used": 3600.0}},
                                  "total": {"cpu_used": 10800.0}}
    report = client.usage(since="2026-11-01", pool="gpu")
    assert canned.calls("user.usage")[0][0] == {"since": 1793491200.0, "pool": "gpu"}
    assert (report["user"], report["since"], list(report["pools"])) == (USER, 1793491200.0, ["gpu"])
    client.usage(USER, since=1_700_000_000)
    assert canned.calls("user.usage")[1][0] == {"user": USER, "since": 1_700_000_000.0}


def test_bad_arguments_fail_before_anything_is_sent(client: Client, canned: CannedCluster) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        client.user_create("admin", Keypair.generate().public)
    with pytest.raises(InvalidInput) as caught:
        client.user_create("bob", "not-a-key")
    assert caught.value.field == "key"
    with pytest.raises(InvalidInput, match="DNS label"):
        client.pool_create("GPU pool")
    assert canned.calls("user.create") == [] and canned.calls("pool.create") == []


def test_a_user_without_grants_is_refused_what_needs_them(canned: CannedCluster, tmp_path: Path,
                                                          client: Client) -> None:
    carol = Keypair.generate()
    carol.save(tmp_path / "carol.key")
    client.user_create("carol", carol.public)
    config = load_config(canned.config_path, env={})
    as_carol = Client(ClientConfig(cluster=config.cluster, zookeeper=config.zookeeper,
                                   key=str(tmp_path / "carol.key"), timeout=config.timeout),
                      deadline=10.0, call_timeout=2.0)
    try:
        assert as_carol.whoami() == {"user": "carol", "kind": "user", "admin": False, "grants": {}}
        assert as_carol.quota()["user"] == "carol"
        with pytest.raises(PermissionDenied, match="not an administrator"):
            as_carol.users()
        with pytest.raises(PermissionDenied, match="only their own"):
            as_carol.quota(USER)
    finally:
        as_carol.close()
