"""Trace rings in a real ZooKeeper: recorded without blocking, bounded, shared by two writers."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from galaxy.coord import Paths
from galaxy.errors import InvalidInput
from galaxy.trace import RING, Tracer, read_trace

pytestmark = pytest.mark.zk


def test_events_are_recorded_in_order_and_survive_the_writer(zk_client: KazooClient) -> None:
    paths = Paths("t1")
    tracer = Tracer(zk_client, paths, "resman")
    tracer.record("pod", "web.1", "placed", host="h1")
    tracer.record("pod", "web.1", "created", reason="agent h1 made it")
    assert tracer.flush()
    tracer.close()
    events = read_trace(zk_client, paths, "pod", "web.1")
    assert [e["event"] for e in events] == ["placed", "created"]
    assert events[0]["host"] == "h1" and events[1]["reason"] == "agent h1 made it"
    assert all(e["actor"] == "resman" for e in events)


def test_ring_is_bounded(zk_client: KazooClient) -> None:
    paths = Paths("t2")
    tracer = Tracer(zk_client, paths, "appmaster")
    for i in range(RING + 30):
        tracer.record("job", "web", "tick", n=i)
    assert tracer.flush()
    tracer.close()
    events = read_trace(zk_client, paths, "job", "web")
    assert len(events) == RING
    assert events[-1]["n"] == RING + 29 and events[0]["n"] == 30


def test_two_writers_on_one_object_lose_nothing(zk_client: KazooClient) -> None:
    paths = Paths("t3")
    a, b = Tracer(zk_client, paths, "resman"), Tracer(zk_client, paths, "appmaster")
    for i in range(20):
        a.record("pod", "p", "from-a", n=i)
        b.record("pod", "p", "from-b", n=i)
        if i % 5 == 0:
            a.flush()
            b.flush()
    assert a.flush() and b.flush()
    a.close()
    b.close()
    events = read_trace(zk_client, paths, "pod", "p")
    assert sorted(e["n"] for e in events if e["event"] == "from-a") == list(range(20))
    assert sorted(e["n"] for e in events if e["event"] == "from-b") == list(range(20))


def test_unknown_kind_is_refused(zk_client: KazooClient) -> None:
    tracer = Tracer(zk_client, Paths("t4"), "x")
    try:
        with pytest.raises(InvalidInput) as err:
            tracer.record("planet", "earth", "spun")
        assert err.value.field == "kind"
    finally:
        tracer.close()
