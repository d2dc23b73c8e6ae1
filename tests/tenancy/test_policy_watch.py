"""Pool policies as daemons follow them from ZooKeeper: the Directory (AppMaster, ResMan) and an
Agent's HostPolicy, which also follows its host being moved to another pool."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from galaxy.coord import Paths, StateStore
from galaxy.errors import Unreachable
from galaxy.mesh import KeyRing
from galaxy.tenancy import POLICIES, Directory, HostPolicy, PoolPolicy
from galaxy.tenancy.host_policy import HOSTS
from galaxy.tenancy.policy import policy_record

pytestmark = pytest.mark.zk

ROOTS = PoolPolicy.from_dict({"root_users": ["bob"], "capabilities": ["NET_BIND_SERVICE"]})
PATHS = PoolPolicy.from_dict({"host_paths": [{"path": "/srv/data", "writable": True}],
                              "package_sources": ["file:///srv/packages"]})


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_directory_follows_policies_and_an_unreadable_one_allows_nothing(zk_client: object) -> None:
    paths = Paths("t")
    store = StateStore(zk_client, paths)  # type: ignore[arg-type]
    directory = Directory(zk_client, paths, KeyRing()).start()  # type: ignore[arg-type]
    try:
        assert directory.wait_synced(10)
        assert directory.policy("default") == PoolPolicy()
        store.put(POLICIES, "a", policy_record("a", ROOTS, "admin", 1.0))
        wait_for(lambda: directory.policy("a") == ROOTS)
        store.put(POLICIES, "a", policy_record("a", PATHS, "admin", 2.0))
        wait_for(lambda: directory.policy("a") == PATHS)
        zk_client.set(paths.state(POLICIES, "a"), b"\xff\x00")  # type: ignore[attr-defined]
        wait_for(lambda: directory.policy("a") == PoolPolicy())
        directory.apply_policy("b", ROOTS)                    # this daemon's own write: in effect at once
        assert directory.policy("b") == ROOTS
        store.delete(POLICIES, "a")
        wait_for(lambda: directory.policy("b") == PoolPolicy())   # the watch's view replaces the local one
    finally:
        directory.close()


def test_an_agent_follows_its_pools_policy_and_a_move_to_another_pool(zk_client: object) -> None:
    paths = Paths("t")
    store = StateStore(zk_client, paths)  # type: ignore[arg-type]
    store.put(POLICIES, "a", policy_record("a", ROOTS, "admin", 1.0))
    store.put(POLICIES, "b", policy_record("b", PATHS, "admin", 1.0))
    host = HostPolicy(zk_client, paths, "h1", "a").start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: host.current(5) == ("a", ROOTS))
        store.put(HOSTS, "h1", {"admin": "online", "pool": "b", "labels": None})    # galaxy agent move h1 b
        wait_for(lambda: host.current(5) == ("b", PATHS))
        store.put(POLICIES, "b", policy_record("b", ROOTS, "admin", 2.0))
        wait_for(lambda: host.current(5) == ("b", ROOTS))
        store.put(HOSTS, "h1", {"admin": "online", "pool": None, "labels": None})   # the override lifted
        wait_for(lambda: host.current(5) == ("a", ROOTS))
        store.delete(POLICIES, "a")
        wait_for(lambda: host.current(5) == ("a", PoolPolicy()))
    finally:
        host.close()


def test_an_agent_that_has_not_read_its_policy_refuses_rather_than_guesses(zk_client: object) -> None:
    host = HostPolicy(zk_client, Paths("t"), "h1", "a")  # type: ignore[arg-type]   # never started
    with pytest.raises(Unreachable, match="not read its pool's policy"):
        host.current(0.05)
