"""The SDK's pool-policy calls against the canned AppMaster on the real mesh and ZooKeeper: what is sent
(checked and normalised before it leaves), what comes back, and a submit the policy refuses."""

from __future__ import annotations

import pytest

from galaxy.errors import InvalidInput, PermissionDenied
from galaxy.mesh import Keypair
from galaxy.sdk import Client
from tests.sdk.canned import USER, CannedCluster

pytestmark = pytest.mark.zk

SENT = {"root_users": ["bob"],
        "host_paths": [{"path": "/srv/data", "writable": False}, {"path": "/var/log/app", "writable": True}],
        "package_sources": ["file:///srv/packages", "https://pkgs.example.com"],
        "capabilities": ["NET_BIND_SERVICE"]}


def test_set_sends_the_normalised_policy_and_show_reads_it_back(client: Client, canned: CannedCluster) -> None:
    assert client.pool_policy("default")["host_paths"] == []
    reply = client.set_pool_policy("default", root_users=["bob"], host_paths=["/srv/data//", ("/var/log/app/", True)],
                                   package_sources=["https://PKGS.example.com/", "file:///srv/packages/"],
                                   capabilities=["cap_net_bind_service"])
    assert canned.calls("pool.policy.set") == [({"pool": "default", "policy": SENT}, USER)]
    assert {k: reply[k] for k in SENT} == SENT and reply["by"] == USER and "/etc/galaxy" in reply["denied"]
    assert client.pool_policy("default") == reply

    client.set_pool_policy("default", capabilities=["NET_RAW"])          # replaces: the rest is gone
    assert {k: v for k, v in client.pool_policy("default").items() if k in SENT} == {
        "root_users": [], "host_paths": [], "package_sources": [], "capabilities": ["NET_RAW"]}


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"host_paths": ["/etc/galaxy/keys:ro"]}, "host_paths[0].path", "deny list"),
    ({"host_paths": ["/srv/data:rwx"]}, "host_paths[0]", "PATH:ro or PATH:rw"),
    ({"host_paths": "/srv/data"}, "host_paths", "expected a list"),
    ({"package_sources": ["file:///srv/ok", "ftp://mirror/x"]}, "package_sources[1]", "file:///dir"),
    ({"capabilities": ["NET_BIND_SERVICE", "ROOT"]}, "capabilities[1]", "unknown capability"),
    ({"root_users": ["Bob"]}, "root_users[0]", "user name"),
])
def test_bad_values_are_refused_before_anything_is_sent(client: Client, canned: CannedCluster,
                                                        kwargs: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        client.set_pool_policy("default", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert canned.calls("pool.policy.set") == []


def test_a_submit_outside_the_policy_is_refused_and_only_administrators_set_it(client: Client,
                                                                                canned: CannedCluster) -> None:
    web = {"name": "web", "user": "root", "resources": {"cpu": 0.1, "memory": "32Mi"},
           "program": {"version": "1", "start": "sleep 1000"}}
    with pytest.raises(PermissionDenied) as caught:
        client.submit(web)
    assert caught.value.field == "user" and "rule root_users: none allowed" in caught.value.message
    client.set_pool_policy("default", root_users=[USER])
    assert client.submit(web)["job"] == "web"

    bob = Keypair.generate()
    client.user_create("bob", bob.public)
    client.grant("bob", "default", "job.read")
    assert canned.model.tenancy is not None
    assert canned.model.tenancy.pool_policy_show({"pool": "default"}, "bob")["root_users"] == [USER]
    with pytest.raises(PermissionDenied, match="not an administrator"):
        canned.model.tenancy.pool_policy_set({"pool": "default", "policy": {}}, "bob")
