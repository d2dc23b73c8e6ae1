"""Naming and leader records against a real ZooKeeper: publish, resolve, and watch."""

from __future__ import annotations

import json
import queue
from typing import Any

import pytest
from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Naming, Paths, publish_leader, read_leader, watch_leader
from galaxy.errors import InvalidInput
from tests.coord.helpers import eventually

pytestmark = pytest.mark.zk


def drain_until(updates: queue.Queue[Any], wanted: Any, timeout: float = 10.0) -> None:
    """Take updates until ``wanted`` arrives (watches may coalesce intermediate values)."""
    seen: list[Any] = []
    eventually(lambda: _take(updates, seen, wanted), timeout, what=f"update {wanted!r} (seen {seen!r})")


def _take(updates: queue.Queue[Any], seen: list[Any], wanted: Any) -> bool:
    try:
        seen.append(updates.get(timeout=0.05))
    except queue.Empty:
        return False
    return seen[-1] == wanted


def test_publish_resolve_overwrite_remove(zk_client: KazooClient) -> None:
    naming = Naming(zk_client, Paths("n1"))
    assert naming.resolve("web") == {} and naming.jobs() == []
    naming.publish("web", "web-0", {"endpoint": "10.0.0.1:8080", "ports": {"http": 8080},
                                    "status": "RUNNING", "version": "1"})
    naming.publish("web", "web-1", {"endpoint": "10.0.0.2:8080", "status": "STARTING", "version": "1"})
    naming.publish("web", "web-1", {"endpoint": "10.0.0.2:8080", "status": "RUNNING", "version": "1"})
    naming.publish("db", "db-0", {"endpoint": "10.0.0.3:5432"})
    assert naming.resolve("web") == {
        "web-0": {"endpoint": "10.0.0.1:8080", "ports": {"http": 8080}, "status": "RUNNING", "version": "1"},
        "web-1": {"endpoint": "10.0.0.2:8080", "status": "RUNNING", "version": "1"},
    }
    assert naming.jobs() == ["db", "web"]
    # Plain JSON, so any ZooKeeper client can read it.
    raw, _ = zk_client.get("/galaxy/n1/naming/web/web-0")
    assert json.loads(raw)["endpoint"] == "10.0.0.1:8080"

    naming.remove("web", "web-0")
    naming.remove("web", "web-0")
    assert list(naming.resolve("web")) == ["web-1"]
    naming.remove_job("web")
    naming.remove_job("web")
    assert naming.resolve("web") == {} and naming.jobs() == ["db"]


def test_watch_sees_pods_appear_change_and_go(zk_client: KazooClient, zk_hosts: str) -> None:
    naming = Naming(zk_client, Paths("n2"))
    updates: queue.Queue[dict[str, Any]] = queue.Queue()
    handle = naming.watch("api", updates.put)
    try:
        drain_until(updates, {})
        naming.publish("api", "api-0", {"status": "STARTING"})
        drain_until(updates, {"api-0": {"status": "STARTING"}})
        naming.publish("api", "api-0", {"status": "RUNNING"})
        drain_until(updates, {"api-0": {"status": "RUNNING"}})
        naming.publish("api", "api-1", {"status": "RUNNING"})
        drain_until(updates, {"api-0": {"status": "RUNNING"}, "api-1": {"status": "RUNNING"}})
        naming.remove("api", "api-0")
        drain_until(updates, {"api-1": {"status": "RUNNING"}})
        naming.remove_job("api")
        drain_until(updates, {})
    finally:
        handle.cancel()
    naming.publish("api", "api-9", {"status": "RUNNING"})
    with pytest.raises(queue.Empty):
        updates.get(timeout=0.3)  # nothing after cancel


def test_bad_names_and_records_are_refused(zk_client: KazooClient) -> None:
    naming = Naming(zk_client, Paths("n3"))
    with pytest.raises(InvalidInput) as err:
        naming.publish("a/b", "p", {})
    assert err.value.field == "job"
    with pytest.raises(InvalidInput) as err:
        naming.publish("job", "p", {"x": {1, 2}})
    assert err.value.field == "record"


def test_leader_record_publish_read_watch(zk_client: KazooClient, zk_hosts: str) -> None:
    paths = Paths("n4")
    assert read_leader(zk_client, paths, "appmaster") is None
    updates: queue.Queue[LeaderInfo | None] = queue.Queue()
    handle = watch_leader(zk_client, paths, "appmaster", updates.put)
    try:
        drain_until(updates, None)
        first = LeaderInfo("am-1", "tcp://10.0.0.1:7100", "Z85key1")
        publish_leader(zk_client, paths, "appmaster", first)
        drain_until(updates, first)
        assert read_leader(zk_client, paths, "appmaster") == first
        second = LeaderInfo("am-2", "tcp://10.0.0.2:7100", "Z85key2")
        publish_leader(zk_client, paths, "appmaster", second)  # replaces a stale record
        drain_until(updates, second)
        # Ephemeral: it goes with the session that wrote it.
        zk_client.stop()
        zk_client.start()
        drain_until(updates, None)
        assert read_leader(zk_client, paths, "appmaster") is None
    finally:
        handle.cancel()
