"""StateStore against a real ZooKeeper: records, batches split under the request limit, validation."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from galaxy.coord import Paths, StateStore
from galaxy.errors import Conflict, InvalidInput

pytestmark = pytest.mark.zk


@pytest.fixture
def store(zk_client: KazooClient) -> StateStore:
    return StateStore(zk_client, Paths("s1"))


def test_put_get_overwrite_list_keys_delete(store: StateStore, zk_client: KazooClient) -> None:
    assert store.get("jobs", "web") is None
    assert store.list("jobs") == {} and store.keys("jobs") == []
    store.put("jobs", "web", {"version": 1, "replicas": 3})
    store.put("jobs", "db", {"version": 7, "tags": ["a", "b"], "blob": b"\x00\xff"})
    store.put("jobs", "web", {"version": 2, "replicas": 5})
    assert store.get("jobs", "web") == {"version": 2, "replicas": 5}
    assert store.keys("jobs") == ["db", "web"]
    assert store.list("jobs") == {"web": {"version": 2, "replicas": 5},
                                  "db": {"version": 7, "tags": ["a", "b"], "blob": b"\x00\xff"}}
    # A second store (e.g. a new leader) reads exactly what the first wrote.
    assert StateStore(zk_client, Paths("s1")).list("jobs") == store.list("jobs")
    # Kinds do not see each other, and clusters do not either.
    assert store.list("pools") == {} and StateStore(zk_client, Paths("other")).list("jobs") == {}
    store.delete("jobs", "web")
    store.delete("jobs", "web")  # deleting what is gone is fine
    assert store.get("jobs", "web") is None and store.keys("jobs") == ["db"]
    assert zk_client.exists("/galaxy/s1/state/jobs/db") is not None


def test_ten_thousand_record_batch_is_split_into_several_transactions(store: StateStore) -> None:
    records = {f"container-{i:05d}": {"host": f"h{i % 97}", "cpu": 0.5, "mem": 256 << 20, "pad": "x" * 100}
               for i in range(10_000)}
    with store.batch() as batch:
        for key, value in records.items():
            batch.put("containers", key, value)
    assert len(batch) == 10_000
    assert batch.transactions > 1
    assert store.list("containers") == records

    # A mixed batch: overwrite some, delete some, add some; the last write to a key wins.
    with store.batch() as batch:
        for i in range(0, 10_000, 2):
            batch.delete("containers", f"container-{i:05d}")
        for i in range(1, 10_000, 2):
            batch.put("containers", f"container-{i:05d}", {"v": 2})
        batch.put("containers", "extra", {"v": 0})
        batch.put("containers", "extra", {"v": 3})
        batch.delete("containers", "never-existed")
    after = store.list("containers")
    assert len(after) == 5_001
    assert after["extra"] == {"v": 3} and after["container-00001"] == {"v": 2}
    assert "container-00000" not in after


def test_small_transaction_limit_still_commits_everything(zk_client: KazooClient) -> None:
    store = StateStore(zk_client, Paths("s2"), max_txn_bytes=4096)
    with store.batch() as batch:
        for i in range(300):
            batch.put("pods", f"p{i}", {"i": i, "pad": "y" * 200})
    assert batch.transactions >= 15
    assert len(store.list("pods")) == 300


def test_puts_through_the_store_inside_a_batch_join_it_and_an_error_discards_it(store: StateStore) -> None:
    with store.batch() as batch:
        store.put("users", "ann", {"quota": 1})
        store.put("users", "bob", {"quota": 2})
        assert store.get("users", "ann") is None  # nothing is written before the batch commits
    assert batch.transactions == 1
    assert store.keys("users") == ["ann", "bob"]

    with pytest.raises(RuntimeError), store.batch():
        store.put("users", "cid", {"quota": 3})
        store.delete("users", "ann")
        raise RuntimeError("abandon")
    assert store.keys("users") == ["ann", "bob"]

    with pytest.raises(Conflict), store.batch(), store.batch():
        pass


def test_writes_recover_when_another_writer_changed_the_records(zk_client: KazooClient) -> None:
    first = StateStore(zk_client, Paths("s3"))
    second = StateStore(zk_client, Paths("s3"))
    first.put("hosts", "h1", {"v": 1})
    first.put("hosts", "h2", {"v": 1})
    second.delete("hosts", "h1")          # first still believes h1 exists…
    second.put("hosts", "h3", {"v": 9})   # …and that h3 does not
    assert first.get("hosts", "h2") == {"v": 1}
    with first.batch() as batch:
        batch.put("hosts", "h1", {"v": 2})
        batch.put("hosts", "h3", {"v": 2})
        batch.delete("hosts", "h2")
    assert second.list("hosts") == {"h1": {"v": 2}, "h3": {"v": 2}}


def test_bad_keys_and_values_are_refused_naming_the_field(store: StateStore) -> None:
    for kind, key, field in [("jobs", "a/b", "key"), ("jobs", "", "key"), ("", "k", "kind"),
                             ("jobs", "..", "key"), ("jo/bs", "k", "kind")]:
        with pytest.raises(InvalidInput) as err:
            store.put(kind, key, {})
        assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        store.put("jobs", "k", ["not", "a", "map"])  # type: ignore[arg-type]
    assert err.value.field == "value"
    with pytest.raises(InvalidInput) as err:
        store.put("jobs", "k", {"big": b"x" * 1_100_000})
    assert err.value.field == "value"
    with pytest.raises(InvalidInput):
        store.put("jobs", "k", {"obj": object()})
    assert store.keys("jobs") == []


def test_single_writes_from_many_threads_share_multis_and_all_land(store: StateStore,
                                                                   zk_client: KazooClient) -> None:
    import threading

    multis: list[int] = []
    commit = store._write_locked

    def counting(ops: dict) -> int:  # type: ignore[type-arg]
        multis.append(len(ops))
        return commit(ops)
    store._write_locked = counting  # type: ignore[method-assign]
    start = threading.Barrier(40)

    def writer(i: int) -> None:
        start.wait()
        store.put("groups", f"g{i:02d}", {"i": i})
        if i % 2:
            store.delete("groups", f"g{i:02d}")
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(store.list("groups")) == [f"g{i:02d}" for i in range(0, 40, 2)]
    assert all(store.get("groups", f"g{i:02d}") == {"i": i} for i in range(0, 40, 2))
    assert sum(multis) == 60 and len(multis) < 60          # every op written, several per multi
