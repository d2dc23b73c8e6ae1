"""ZooKeeper fenced by ACLs, on a real server: the daemons' credential owns the tree; a client with
no credential or a wrong one reads leader records and naming only, and changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from galaxy.coord import (
    Credential,
    Election,
    LeaderInfo,
    Leadership,
    Naming,
    Paths,
    StateStore,
    acl_for,
    connect,
    publish_leader,
    read_leader,
    secure_tree,
)
from galaxy.coord._acl import WORLD_READ
from galaxy.coord._paths import world_readable
from galaxy.errors import InvalidInput, PermissionDenied
from galaxy.trace import Tracer, read_trace

PATHS = Paths("acl")
KEY = "k" * 40


def snapshot(client: KazooClient, path: str) -> dict[str, bytes]:
    """Every znode under ``path`` with its data (read with the daemons' credential)."""
    out = {path: client.get(path)[0]}
    for child in client.get_children(path):
        out.update(snapshot(client, f"{path}/{child}"))
    return out


def build_tree(client: KazooClient, stop: threading.Event) -> tuple[Election, Leadership]:
    """What a running cluster leaves in ZooKeeper: an election, leader records, users, a job with its
    worker key, a group, naming and a trace."""
    elected: list[Leadership] = []
    got = threading.Event()

    def lead(leadership: Leadership) -> None:
        elected.append(leadership)
        got.set()
        stop.wait()
    election = Election(client, PATHS, "appmaster", "am-1")
    election.start(lead)
    assert got.wait(20), "never elected"
    leadership = elected[0]
    publish_leader(client, PATHS, "appmaster", LeaderInfo("am-1", "tcp://127.0.0.1:1", KEY), leadership=leadership)
    publish_leader(client, PATHS, "resman", LeaderInfo("rm-1", "tcp://127.0.0.1:2", KEY))
    store = StateStore(client, PATHS, leadership=leadership)
    store.put("users", "admin", {"name": "admin", "key": KEY, "admin": True})
    store.put("jobs", "web", {"name": "web", "worker_public": KEY, "worker_secret": "s" * 40})
    store.put("groups", "web", {"name": "web", "replicas": 2})
    Naming(client, PATHS).publish("web", "web.0", {"host": "h1", "address": "10.0.0.1"})
    tracer = Tracer(client, PATHS, "resman")
    tracer.record("host", "h1", "lost", "test")
    assert tracer.flush()
    tracer.close()
    return election, leadership


@pytest.fixture
def daemon(zk_hosts: str, zk_credential: Credential) -> Iterator[KazooClient]:
    client = connect(zk_hosts, session_timeout=4.0, credential=zk_credential)
    stop = threading.Event()
    election, _ = build_tree(client, stop)
    try:
        yield client
    finally:
        stop.set()
        election.stop()
        client.stop()
        client.close()


@pytest.fixture(params=["anonymous", "wrong"])
def intruder(request: pytest.FixtureRequest, zk_hosts: str, zk_credential: Credential) -> Iterator[KazooClient]:
    """A client without credentials, or with the daemons' user name and a wrong password."""
    credential = None if request.param == "anonymous" else Credential(zk_credential.user, "not-the-password")
    client = connect(zk_hosts, credential=credential)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def attempts() -> dict[str, Callable[[KazooClient], Any]]:
    users, leader = PATHS.state("users"), PATHS.leader("appmaster")
    return {
        "make myself admin": lambda c: c.create(f"{users}/eve", b'{"admin": true}'),
        "rewrite the admin record": lambda c: c.set(f"{users}/admin", b"x"),
        "delete the admin record": lambda c: c.delete(f"{users}/admin"),
        "rewrite a leader record": lambda c: c.set(leader, b'{"endpoint": "tcp://evil:1"}'),
        "replace a leader record": lambda c: c.delete(leader),
        "publish a resman leader": lambda c: c.create(PATHS.leader("resman") + "2", b"x"),
        "rewrite naming": lambda c: c.set(PATHS.naming("web", "web.0"), b'{"address": "6.6.6.6"}'),
        "add a pod to naming": lambda c: c.create(PATHS.naming("web", "web.9"), b"{}"),
        "add a job to naming": lambda c: c.create(PATHS.naming("evil"), b""),
        "campaign in the election": lambda c: c.create(PATHS.election("appmaster") + "/x-", b"eve",
                                                       ephemeral=True, sequence=True),
        "delete the election node": lambda c: c.delete(
            f"{PATHS.election('appmaster')}/{c.get_children(PATHS.election('appmaster'))[0]}"),
        "read a worker key": lambda c: c.get(PATHS.state("jobs", "web")),
        "read a group record": lambda c: c.get(PATHS.state("groups", "web")),
        "read the users": lambda c: c.get(PATHS.state("users", "admin")),
        "list the users": lambda c: c.get_children(users),
        "read a trace": lambda c: c.get(PATHS.trace("host", "h1")),
        "open up state": lambda c: c.set_acls(PATHS.state(), [WORLD_READ]),
    }


@pytest.mark.parametrize("attempt", sorted(attempts()))
def test_an_intruder_is_refused_and_nothing_changes(daemon: KazooClient, intruder: KazooClient,
                                                    attempt: str) -> None:
    before = snapshot(daemon, PATHS.root)
    with pytest.raises(NoAuthError):
        attempts()[attempt](intruder)
    assert snapshot(daemon, PATHS.root) == before


def test_clients_read_leader_records_and_naming_without_a_credential(daemon: KazooClient,
                                                                     intruder: KazooClient) -> None:
    assert read_leader(intruder, PATHS, "appmaster") == LeaderInfo("am-1", "tcp://127.0.0.1:1", KEY)
    assert read_leader(intruder, PATHS, "resman") == LeaderInfo("rm-1", "tcp://127.0.0.1:2", KEY)
    assert Naming(intruder, PATHS).resolve("web")["web.0"]["address"] == "10.0.0.1"


def test_every_znode_carries_the_acl_of_its_path(daemon: KazooClient, zk_credential: Credential) -> None:
    tree = snapshot(daemon, PATHS.root)
    assert len(tree) > 15
    for path in tree:
        acl, _ = daemon.get_acls(path)
        assert set(acl) == set(acl_for(path, zk_credential)), path
    public = sorted(p for p in tree if world_readable(p))
    assert public == sorted([PATHS.leader("appmaster"), PATHS.leader("resman"), PATHS.naming(),
                             PATHS.naming("web"), PATHS.naming("web", "web.0")])


def test_world_readable_names_leader_records_and_naming_only() -> None:
    assert world_readable("/galaxy/c/resman/leader") and world_readable("/galaxy/c/naming/j/p")
    assert world_readable("/galaxy/c/naming")
    for path in ("/galaxy", "/galaxy/c", "/galaxy/c/resman", "/galaxy/c/resman/election",
                 "/galaxy/c/resman/leader/x", "/galaxy/c/state/users/bob", "/galaxy/c/trace/host/h",
                 "/galaxy/c/leader", "/other/c/naming"):
        assert not world_readable(path), path


def test_an_open_tree_from_an_older_galaxy_is_secured_once(zk_hosts: str, zk_credential: Credential) -> None:
    old = connect(zk_hosts, session_timeout=4.0)          # an older Galaxy: no credential, open znodes
    new = connect(zk_hosts, session_timeout=4.0, credential=zk_credential)
    anonymous = connect(zk_hosts)
    stop = threading.Event()
    election, _ = build_tree(old, stop)
    try:
        tree = snapshot(old, PATHS.root)
        anonymous.set(PATHS.state("users", "admin"), anonymous.get(PATHS.state("users", "admin"))[0])  # open
        changed = secure_tree(new, PATHS)
        assert changed == len(tree)
        for path in tree:
            assert set(new.get_acls(path)[0]) == set(acl_for(path, zk_credential)), path
        assert secure_tree(new, PATHS) == 0                # idempotent: one read when done
        with pytest.raises(NoAuthError):
            anonymous.get(PATHS.state("users", "admin"))
        assert read_leader(anonymous, PATHS, "appmaster") is not None
        assert snapshot(new, PATHS.root) == tree           # data untouched
    finally:
        stop.set()
        election.stop()
        for client in (old, new, anonymous):
            client.stop()
            client.close()


def test_secure_tree_refuses_a_tree_locked_by_another_credential(zk_hosts: str, zk_credential: Credential) -> None:
    ours = connect(zk_hosts, credential=zk_credential)    # first: the test's chroot is ours
    other = connect(zk_hosts, credential=Credential("galaxy", "someone-else"))
    try:
        ours.ensure_path("/galaxy")
        ours.set_acls("/galaxy", OPEN_ACL_UNSAFE)           # e.g. made by an older Galaxy
        other.ensure_path(PATHS.state())                    # the cluster's root squatted by another
        with pytest.raises(PermissionDenied) as err:
            secure_tree(ours, PATHS)
        assert err.value.field == "zookeeper_auth"
    finally:
        other.delete(PATHS.root, recursive=True)        # only its maker can remove it
        for client in (other, ours):
            client.stop()
            client.close()


def test_a_trace_is_read_through_the_daemon(daemon: KazooClient, intruder: KazooClient) -> None:
    assert [e["event"] for e in read_trace(daemon, PATHS, "host", "h1")] == ["lost"]
    with pytest.raises(NoAuthError):
        read_trace(intruder, PATHS, "host", "h1")


def test_the_credential_file_is_private(tmp_path: Any) -> None:
    path = tmp_path / "zookeeper.auth"
    credential = Credential.generate()
    credential.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Credential.load(path) == credential
    assert "password" not in repr(credential) and credential.password not in repr(credential)
    path.chmod(0o640)
    with pytest.raises(InvalidInput, match="chmod 600") as err:
        Credential.load(path)
    assert err.value.field == "zookeeper_auth"
    with pytest.raises(InvalidInput, match="cannot read") as err:
        Credential.load(tmp_path / "missing")
    assert err.value.field == "zookeeper_auth"
    bad = tmp_path / "bad"
    bad.write_text("no-colon\n")
    bad.chmod(0o600)
    with pytest.raises(InvalidInput, match="user:password"):
        Credential.load(bad)
