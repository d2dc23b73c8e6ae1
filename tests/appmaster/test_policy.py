"""Pool policy at the AppMaster, as users meet it: a real `galaxy-appmaster`, real ZooKeeper, real keys.
Administrators set a pool's policy, anyone with a grant on the pool reads it, and a submit, update or
scale-up outside it is refused with the field and the rule named before anything is written."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from galaxy.errors import InvalidInput, NotFound, PermissionDenied
from galaxy.protocol.resman import template
from tests.appmaster.conftest import AppMasterCluster
from tests.appmaster.test_service import spec, wait_state
from tests.appmaster.test_tenancy import job_exists_in_state, started

pytestmark = pytest.mark.zk

RESOURCES = {"cpu": 0.1, "memory": "32Mi", "ports": [{"name": "http"}]}
POLICY = {"root_users": ["alice"], "host_paths": [{"path": "/srv/data", "writable": False}],
          "package_sources": ["https://pkgs.example.com/pub"], "capabilities": ["NET_BIND_SERVICE"]}


def job(name: str, **over: Any) -> dict[str, Any]:
    resources = {**RESOURCES, **over.pop("resources", {})}
    program = over.pop("program", None)
    raw = spec(name, replicas=1, resources=resources, **over)
    if program:
        raw["program"] = {**raw["program"], **program}
    return raw


def refused(user: Any, method: str, body: dict[str, Any]) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        user.call(method, body)
    return caught.value


def test_a_job_outside_its_pools_policy_is_refused_naming_the_field_and_nothing_is_written(
        am_cluster: AppMasterCluster) -> None:
    started(am_cluster)
    alice = am_cluster.client("alice")
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("root", {"user": "root"}, "user",
         "pool 'default' policy does not let 'alice' run jobs as root: user 'root' is root "
         "(rule root_users: none allowed)"),
        ("mount", {"resources": {"mounts": [{"host": "/srv/data", "path": "/data"}]}}, "resources.mounts[0].host",
         "pool 'default' policy allows no host path /srv/data (rule host_paths: none allowed)"),
        ("etc", {"resources": {"mounts": [{"host": "/etc", "path": "/host-etc"}]}}, "resources.mounts[0].host",
         "pool 'default': host path /etc holds /etc/galaxy, which no policy allows (built-in deny list)"),
        ("shadow", {"program": {"package": "file:///etc/shadow"}}, "program.package",
         "pool 'default': package file:///etc/shadow: host path /etc/shadow is never allowed, whatever the "
         "policy (built-in deny list)"),
        ("caps", {"capabilities": ["NET_ADMIN"]}, "capabilities[0]",
         "pool 'default' policy allows no capability NET_ADMIN (rule capabilities: none allowed)"),
    ]
    for name, over, field, words in cases:
        err = refused(alice, "job.submit", {"spec": job(name, **over)})
        assert (err.field, err.message) == (field, words)
        assert not job_exists_in_state(am_cluster, name) and name not in am_cluster.resman.groups
    assert alice.call("job.list", {}) == []
    assert not any(method == "group.create" for method, _ in am_cluster.resman.calls)


def test_administrators_set_the_policy_grant_holders_read_it_and_submit_update_and_scale_follow_it(
        am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    alice, bob = am_cluster.client("alice"), am_cluster.client("bob")
    am_cluster.add_user("carol")                                        # no grant anywhere
    carol = am_cluster.client("carol")

    shown = alice.call("pool.policy.show", {"pool": "default"})
    assert shown == {"pool": "default", "root_users": [], "host_paths": [], "package_sources": [],
                     "capabilities": [], "updated": None, "by": None, "denied": shown["denied"]}
    assert "/etc/galaxy" in shown["denied"] and "/var/lib/galaxy" in shown["denied"]
    assert refused(carol, "pool.policy.show", {"pool": "default"}).field == "pool"
    assert "administrator" in refused(alice, "pool.policy.set", {"pool": "default", "policy": POLICY}).message
    with pytest.raises(InvalidInput) as bad:
        admin.call("pool.policy.set", {"pool": "default", "policy": {"host_paths": [{"path": "/etc/galaxy"}]}})
    assert bad.value.field == "host_paths[0].path"
    with pytest.raises(NotFound):
        admin.call("pool.policy.set", {"pool": "nowhere", "policy": POLICY})
    assert am_cluster.zk.exists(am_cluster.paths.state("policies", "default")) is None   # refusals wrote nothing

    reply = admin.call("pool.policy.set", {"pool": "default", "policy": POLICY})
    assert (reply["root_users"], reply["capabilities"], reply["by"]) == (["alice"], ["NET_BIND_SERVICE"], "admin")
    data, _ = am_cluster.zk.get(am_cluster.paths.state("policies", "default"))
    assert {k: v for k, v in cbor2.loads(data).items() if k not in ("updated", "by", "pool")} == POLICY
    assert alice.call("pool.policy.show", {"pool": "default"})["host_paths"] == POLICY["host_paths"]

    allowed = job("web", user="root", capabilities=["cap_net_bind_service"],
                  resources={"mounts": [{"host": "/srv/data/set1", "path": "/data"}]},
                  program={"package": "https://pkgs.example.com/pub/web-1.tgz"})
    alice.call("job.submit", {"spec": allowed})
    wait_state(alice, "web", "RUNNING")
    container = am_cluster.resman.groups["web"]["container"]
    assert container["capabilities"] == ["NET_BIND_SERVICE"] and container["user"] == "root"
    assert template("web", container)["capabilities"] == ["NET_BIND_SERVICE"]   # what the real ResMan accepts

    assert refused(bob, "job.submit", {"spec": job("bobs", user="root")}).field == "user"   # root: alice only
    assert not job_exists_in_state(am_cluster, "bobs")

    writable = job("web", user="root", capabilities=["NET_BIND_SERVICE"], version="2",
                   resources={"mounts": [{"host": "/srv/data/set1", "path": "/data", "readonly": False}]},
                   program={"package": "https://pkgs.example.com/pub/web-2.tgz"})
    err = refused(alice, "job.update", {"job": "web", "spec": writable})
    assert err.field == "resources.mounts[0].host" and "read-only only" in err.message
    more_caps = {**allowed, "capabilities": ["NET_BIND_SERVICE", "SYS_ADMIN"]}
    assert refused(alice, "job.update", {"job": "web", "spec": more_caps}).field == "capabilities[1]"
    elsewhere = {**allowed, "program": {**allowed["program"], "package": "https://evil.example.com/pub/x.tgz"}}
    assert refused(alice, "job.update", {"job": "web", "spec": elsewhere}).field == "program.package"
    shown_job = alice.call("job.show", {"job": "web"})
    assert (shown_job["version"], shown_job["state"]) == ("1", "RUNNING"), "refused updates change nothing"

    narrowed = {**POLICY, "root_users": []}
    admin.call("pool.policy.set", {"pool": "default", "policy": narrowed})
    err = refused(alice, "job.scale", {"job": "web", "replicas": 3})    # new containers: checked again
    assert err.field == "user" and "root_users: none allowed" in err.message
    assert alice.call("job.scale", {"job": "web", "replicas": 0})["replicas"] == 0   # giving back is never refused


def test_a_deleted_pool_takes_its_policy_with_it(am_cluster: AppMasterCluster) -> None:
    admin = started(am_cluster)
    admin.call("pool.create", {"pool": "gpu"})
    admin.call("pool.policy.set", {"pool": "gpu", "policy": {"capabilities": ["SYS_NICE"]}})
    path = am_cluster.paths.state("policies", "gpu")
    assert am_cluster.zk.exists(path) is not None
    admin.call("pool.delete", {"pool": "gpu"})
    assert am_cluster.zk.exists(path) is None
    with pytest.raises(NotFound):
        admin.call("pool.policy.show", {"pool": "gpu"})
