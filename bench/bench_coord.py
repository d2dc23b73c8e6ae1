"""State writes to a real ZooKeeper: StateStore (fenced, batched multis) against plain kazoo calls.

Baselines, measured in the same run on the same server: kazoo sync ``create`` one record at a time
(what a naive leader would do) and kazoo ``create_async`` pipelined. The Galaxy rows are fenced
by a real Leadership, so every multi also carries the leader ``check``.
"""

from __future__ import annotations

import threading
import time

import cbor2
from kazoo.client import KazooClient

from bench._table import Row
from galaxy.coord import Election, Leadership, Paths, StateStore, connect
from galaxy.testing import ZooKeeperServer

SYNC_RECORDS = 1_500
BATCH_RECORDS = 20_000
SINGLE_PUTS = 1_000
VALUE = {"host": "host-0042", "cpu": 0.5, "memory": 268435456, "ports": [8080, 9100], "state": "READY"}


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run() -> list[Row]:
    with ZooKeeperServer(tick_ms=500) as server:
        client = connect(server.hosts)
        try:
            return _measure(client)
        finally:
            client.stop()
            client.close()


def _measure(client: KazooClient) -> list[Row]:
    client.ensure_path("/bench/sync")
    client.ensure_path("/bench/async")
    data = cbor2.dumps(VALUE)
    started = time.perf_counter()
    for i in range(SYNC_RECORDS):
        client.create(f"/bench/sync/r{i:06d}", data)
    sync_rate = _rate(SYNC_RECORDS, time.perf_counter() - started)

    started = time.perf_counter()
    pending = [client.create_async(f"/bench/async/r{i:06d}", data) for i in range(BATCH_RECORDS)]
    for result in pending:
        result.get()
    async_rate = _rate(BATCH_RECORDS, time.perf_counter() - started)

    paths = Paths("bench")
    elected = threading.Event()
    holder: list[Leadership] = []

    def serve(leadership: Leadership) -> None:
        holder.append(leadership)
        elected.set()
        leadership.lost.wait()

    election = Election(client, paths, "resman", "bench")
    election.start(serve)
    try:
        if not elected.wait(10):
            raise RuntimeError("benchmark leader was never elected")
        store = StateStore(client, paths, leadership=holder[0])
        started = time.perf_counter()
        with store.batch() as batch:
            for i in range(BATCH_RECORDS):
                batch.put("containers", f"c{i:06d}", VALUE)
        batch_rate = _rate(BATCH_RECORDS, time.perf_counter() - started)
        transactions = batch.transactions

        started = time.perf_counter()
        with store.batch() as batch:
            for i in range(BATCH_RECORDS):
                batch.put("containers", f"c{i:06d}", {**VALUE, "state": "DESTROYING"})
        overwrite_rate = _rate(BATCH_RECORDS, time.perf_counter() - started)

        started = time.perf_counter()
        for i in range(SINGLE_PUTS):
            store.put("pods", f"p{i:06d}", VALUE)
        single_rate = _rate(SINGLE_PUTS, time.perf_counter() - started)

        started = time.perf_counter()
        listed = len(StateStore(client, paths).list("containers"))
        list_rate = _rate(listed, time.perf_counter() - started)
    finally:
        election.stop()

    return [
        Row("coord", f"fenced batch put ({BATCH_RECORDS // 1000}k new, {transactions} multis)", batch_rate,
            "rec/s", sync_rate, "kazoo sync create"),
        Row("coord", "fenced batch overwrite", overwrite_rate, "rec/s", sync_rate, "kazoo sync create"),
        Row("coord", "fenced batch put vs pipelined async create", batch_rate, "rec/s", async_rate,
            "kazoo create_async"),
        Row("coord", "fenced single put (no batch)", single_rate, "rec/s", sync_rate, "kazoo sync create"),
        Row("coord", "list (new leader rebuild read)", list_rate, "rec/s", sync_rate, "kazoo sync create"),
    ]
