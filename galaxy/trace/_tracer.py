"""The tracer: queue in memory, flush in batches, keep each object's ring bounded."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import cbor2
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError

from galaxy.coord import Paths
from galaxy.errors import InvalidInput

log = logging.getLogger(__name__)

KINDS = ("job", "pod", "container", "host", "group")
RING = 100                 # events kept per object
MAX_QUEUE = 200_000        # events waiting to be written; past it the oldest are dropped (and counted)
MAX_TEXT = 500             # characters of a reason or message kept
OPS_PER_TXN = 200


class Tracer:
    def __init__(self, client: KazooClient, paths: Paths, actor: str, *, flush_interval: float = 0.2) -> None:
        self._client = client
        self._paths = paths
        self.actor = actor
        self._interval = flush_interval
        self._queue: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._rings: dict[tuple[str, str], tuple[list[dict[str, Any]], int]] = {}  # (events, version)
        self._kinds_made: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name=f"tracer-{actor}", daemon=True)
        self._thread.start()

    def record(self, kind: str, key: str, event: str, reason: str = "", **fields: Any) -> None:
        """Queue one event; returns at once. `fields` must be plain CBOR data."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown trace kind {kind!r}; expected one of {', '.join(KINDS)}", field="kind")
        entry = {"t": time.time(), "actor": self.actor, "event": event, **fields}
        if reason:
            entry["reason"] = reason[:MAX_TEXT]
        with self._lock:
            if len(self._queue) >= MAX_QUEUE:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((kind, key, entry))

    def read(self, kind: str, key: str, limit: int = RING) -> list[dict[str, Any]]:
        """The object's recorded events, read with the daemon's session (clients cannot read trace/)."""
        return read_trace(self._client, self._paths, kind, key, limit)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued so far; True when the queue drained in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queue:
                    return True
            self._wake.set()
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.flush(timeout=5.0)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._flush_once()
            except KazooException as err:  # ZooKeeper away: keep the queue, try again later
                log.debug("trace flush deferred: %s", err)
            except Exception:
                log.exception("trace flush failed")

    def _flush_once(self) -> None:
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        if not pending:
            return
        by_object: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for kind, key, entry in pending:
            by_object.setdefault((kind, key), []).append(entry)
        items = list(by_object.items())
        failed: list[tuple[tuple[str, str], list[dict[str, Any]]]] = []
        for start in range(0, len(items), OPS_PER_TXN):
            chunk = items[start:start + OPS_PER_TXN]
            if not self._write_chunk(chunk):
                failed += chunk
        if failed:  # a version race with another writer: re-read those rings, requeue their events
            with self._lock:
                for (kind, key), entries in failed:
                    self._rings.pop((kind, key), None)
                    self._queue.extendleft((kind, key, e) for e in reversed(entries))

    def _ring(self, kind: str, key: str) -> tuple[list[dict[str, Any]], int]:
        cached = self._rings.get((kind, key))
        if cached is not None:
            return cached
        try:
            data, stat = self._client.get(self._paths.trace(kind, key))
            return (_decode(data), stat.version)
        except NoNodeError:
            return ([], -1)

    def _write_chunk(self, chunk: list[tuple[tuple[str, str], list[dict[str, Any]]]]) -> bool:
        for (kind, _key), _ in chunk:
            if kind not in self._kinds_made:
                self._client.ensure_path(self._paths.trace(kind, "x").rsplit("/", 1)[0])
                self._kinds_made.add(kind)
        txn = self._client.transaction()
        updated = {}
        for (kind, key), entries in chunk:
            events, version = self._ring(kind, key)
            events = (events + entries)[-RING:]
            data = cbor2.dumps(events)
            path = self._paths.trace(kind, key)
            if version < 0:
                txn.create(path, data)
            else:
                txn.set_data(path, data, version=version)
            updated[(kind, key)] = (events, version + 1)
        results = txn.commit()
        if any(isinstance(r, Exception) for r in results):
            return False
        self._rings.update(updated)
        self.written += sum(len(e) for _, e in chunk)
        if len(self._rings) > 50_000:  # keep the cache bounded; a miss costs one read
            self._rings.clear()
        return True


def _decode(data: bytes) -> list[dict[str, Any]]:
    try:
        value = cbor2.loads(data) if data else []
    except Exception:
        return []
    return value if isinstance(value, list) else []


def read_trace(client: KazooClient, paths: Paths, kind: str, key: str, limit: int = RING) -> list[dict[str, Any]]:
    """The object's recorded events, oldest first (empty when it has none)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown trace kind {kind!r}; expected one of {', '.join(KINDS)}", field="kind")
    try:
        data, _ = client.get(paths.trace(kind, key))
    except NoNodeError:
        return []
    return _decode(data)[-limit:]
