from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from galaxy.coord import Paths, StateStore
from galaxy.mesh import Keypair, KeyRing
from galaxy.tenancy import POOLS, USERS, Directory, User

pytestmark = pytest.mark.zk


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_directory_follows_users_and_pools_and_their_keys(zk_client: object) -> None:
    paths = Paths("t")
    store = StateStore(zk_client, paths)  # type: ignore[arg-type]
    ring = KeyRing()
    trusted = Keypair.generate().public
    ring.add(trusted, "admin")
    directory = Directory(zk_client, paths, ring).start()  # type: ignore[arg-type]
    try:
        assert directory.wait_synced(10)
        assert directory.pools() == {"default"}
        alice = User.new("alice", Keypair.generate().public).granted("prod", ["job.read"])
        store.put(USERS, "alice", alice.to_dict())
        store.put(POOLS, "prod", {"created": 1.0})
        wait_for(lambda: directory.user("alice") == alice and directory.has_pool("prod"))
        assert ring.name_of(alice.key) == "alice"
        assert directory.principal("alice").allows("job.read", "prod")

        rekeyed = User(alice.name, Keypair.generate().public, grants=alice.grants, created=alice.created)
        store.put(USERS, "alice", rekeyed.to_dict())
        wait_for(lambda: ring.name_of(rekeyed.key) == "alice")
        assert alice.key not in ring

        store.delete(USERS, "alice")
        wait_for(lambda: rekeyed.key not in ring)
        assert directory.user("alice") is None and ring.name_of(trusted) == "admin"
    finally:
        directory.close()


def test_local_apply_takes_effect_before_the_watch(zk_client: object) -> None:
    ring = KeyRing()
    directory = Directory(zk_client, Paths("t"), ring).start()  # type: ignore[arg-type]
    try:
        assert directory.wait_synced(10)
        bob = User.new("bob", Keypair.generate().public)
        directory.apply_user(bob)
        assert ring.name_of(bob.key) == "bob"
        directory.forget_user("bob")
        assert bob.key not in ring
    finally:
        directory.close()


def test_a_corrupt_record_locks_only_that_user_out(zk_client: object) -> None:
    paths = Paths("t")
    zk_client.ensure_path(paths.state(USERS))  # type: ignore[attr-defined]
    zk_client.create(paths.state(USERS, "broken"), b"\xff\x00")  # type: ignore[attr-defined]
    store = StateStore(zk_client, paths)  # type: ignore[arg-type]
    carol = User.new("carol", Keypair.generate().public)
    store.put(USERS, "carol", carol.to_dict())
    directory = Directory(zk_client, paths, KeyRing()).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: directory.user("carol") is not None)
        assert directory.user("broken") is None
    finally:
        directory.close()
