"""Durable state of the active leader: ``state/<kind>/<key>`` znodes holding CBOR maps.

Two rules shape it. *Fencing*: with a Leadership, every write is a ZooKeeper multi that starts
with a ``check`` of the leader's lock node, so a deposed leader's write fails whole (NotLeader) and
changes nothing — even if it has not yet heard that it was deposed. *Throughput*: one sync create
costs a round trip (~1.3k/s here), so writes go out as multis, large batches split below
ZooKeeper's 1 MB request limit and pipelined a few at a time.

ZooKeeper has no "create or overwrite", so each put must be a create or a set_data. The store
keeps hints of which keys exist (learned from reads and its own writes, or asked in bulk); a wrong
hint only makes the multi fail and be retried with fresh knowledge, never a silent miss.

A batch larger than one request is committed as several multis: each is atomic and fenced, the
batch as a whole is not (a leader deposed midway keeps the chunks already committed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import cbor2
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, NodeExistsError, NoNodeError

from galaxy.coord._leadership import Leadership
from galaxy.coord._paths import Paths, check_segment
from galaxy.coord._retry import RETRYABLE, backoff_delays, retry_call
from galaxy.coord._txn import first_failure
from galaxy.errors import Conflict, InvalidInput, NotLeader, ProtocolError, Unreachable

MAX_TXN_BYTES = 512 * 1024     # ZooKeeper refuses (and drops the connection on) requests over ~1 MB
MAX_TXN_OPS = 4000             # keeps one multi's server-side work short
MAX_VALUE_BYTES = 1000 * 1000
OP_OVERHEAD = 64               # op header, ACL, flags, lengths: a generous estimate
WINDOW = 4                     # multis in flight at once
READ_WINDOW = 1000             # gets in flight at once when listing
BULK_LEARN = 64                # more unknown keys than this in one kind: list the kind instead
CONFLICT_ROUNDS = 5
DEADLINE = 30.0

T = TypeVar("T")
Key = tuple[str, str]          # (kind, key)
Step = tuple[str, str, bytes | None]   # (verb, path, data) of one op in a multi
Steps = list[Step]
Chunk = tuple[Steps, list[Key]]        # one multi and the records it carries
Chunks = list[Chunk]
Names = list[str]             # `list` is a StateStore method, so annotations inside it use aliases


class Batch:
    """Puts and deletes collected for one commit; the last write to a key wins."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.ops: dict[Key, bytes | None] = {}
        self.transactions = 0

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.ops[_key(kind, key)] = _encode(value)

    def delete(self, kind: str, key: str) -> None:
        self.ops[_key(kind, key)] = None

    def __len__(self) -> int:
        return len(self.ops)


class StateStore:
    """Read and write ``state/<kind>/<key>`` of one cluster; fenced by ``leadership`` when given."""

    def __init__(self, client: KazooClient, paths: Paths, *, leadership: Leadership | None = None,
                 max_txn_bytes: int = MAX_TXN_BYTES, deadline: float = DEADLINE) -> None:
        if not 1024 <= max_txn_bytes <= 1_000_000:
            raise InvalidInput("must be between 1 KiB and 1,000,000 bytes", field="max_txn_bytes")
        self._client = client
        self._paths = paths
        self._leadership = leadership
        self._max_txn_bytes = max_txn_bytes
        self._deadline = deadline
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []           # single writes waiting for a shared multi
        self._kinds: set[str] = set()              # kind directories known to exist
        self._present: dict[str, set[str]] = {}    # keys known to exist
        self._absent: dict[str, set[str]] = {}     # keys known not to exist
        # Kinds whose every key is in `_present` (listed once, then kept by our own commits): a key
        # not there is taken as absent without asking. Without it, each batch of new records listed
        # the whole kind again — at 100,000 containers, a 100,000-name reply per batch.
        self._complete: set[str] = set()
        self._root_ready = False

    # ---- reads ------------------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._paths.state(kind, key)
        try:
            data, _ = self._ask(lambda: self._client.get(path))
        except NoNodeError:
            self._hint(kind, key, False)
            return None
        self._hint(kind, key, True)
        return _decode(data, path)

    def keys(self, kind: str) -> Names:
        path = self._paths.state(kind)
        try:
            children = self._ask(lambda: self._client.get_children(path))
        except NoNodeError:
            return []
        self._learned_kind(kind, children)
        return sorted(children)

    def list(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every record of ``kind`` (what a new leader rebuilds from); reads are pipelined."""
        names = self.keys(kind)
        base = self._paths.state(kind)
        records: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), READ_WINDOW):
            window = names[start:start + READ_WINDOW]
            records.update(self._ask(lambda w=window: self._get_many(base, w)))  # type: ignore[misc]
        return records

    # ---- writes -----------------------------------------------------------------------------------
    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Create or overwrite one record (joins this thread's open batch, if any)."""
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.put(kind, key, value)
            return
        self._write_shared({_key(kind, key): _encode(value)})

    def delete(self, kind: str, key: str) -> None:
        """Remove one record; a missing record is not an error."""
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.delete(kind, key)
            return
        self._write_shared({_key(kind, key): None})

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Collect puts and deletes (also those made through the store in this thread) and commit
        them on exit as few multis as fit; nothing is written if the block raises."""
        if getattr(self._local, "batch", None) is not None:
            raise Conflict("a batch is already open in this thread")
        batch = Batch(self)
        self._local.batch = batch
        try:
            yield batch
        finally:
            self._local.batch = None
        if batch.ops:
            batch.transactions = self._write(batch.ops)

    # ---- the write engine -------------------------------------------------------------------------
    def _write_shared(self, ops: dict[Key, bytes | None]) -> None:
        """Commit one put/delete, sharing a multi with those other threads are waiting to make.

        Group commit: single writes queue up while a commit is in flight, and the next thread to get
        the write lock commits every queued op in one multi (a later op on the same key wins, as it
        would one after another). Each caller still returns only once its op is in ZooKeeper, and
        sees the error of the multi that carried it. Many callers (e.g. one group.create per job
        submitted) then cost a few round trips instead of one each, queued behind each other.
        """
        mine = _Pending(ops)
        with self._queue_lock:
            self._queue.append(mine)
        with self._write_lock:
            if not mine.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                merged: dict[Key, bytes | None] = {}
                for pending in group:
                    merged.update(pending.ops)
                error: BaseException | None = None
                try:
                    self._write_locked(merged)
                except BaseException as err:
                    error = err
                for pending in group:
                    pending.error, pending.done = error, True
        if mine.error is not None:
            raise mine.error

    def _write(self, ops: dict[Key, bytes | None]) -> int:
        """Commit ``ops``; returns the number of multis committed."""
        with self._write_lock:
            return self._write_locked(ops)

    def _write_locked(self, ops: dict[Key, bytes | None]) -> int:
        """Commit ``ops`` (the caller holds the write lock); returns the number of multis committed."""
        self._require_leading()
        if not self._root_ready:
            self._ask(lambda: self._client.ensure_path(self._paths.state()))
            self._root_ready = True
        until = time.monotonic() + self._deadline
        pause = backoff_delays()
        pending, committed, conflicts = dict(ops), 0, 0
        while pending:
            try:
                self._require_reachable()
                self._learn(pending)
                done, failed, lost_connection = self._commit(self._plan(pending), pending)
            except RETRYABLE as err:
                done, failed, lost_connection = 0, pending, err
            committed += done
            if not failed:
                break
            pending = failed
            for kind, _ in failed:  # whatever we believed about these kinds misled us
                self._forget(kind)
            if lost_connection is not None:
                if time.monotonic() > until:
                    raise Unreachable(f"ZooKeeper did not answer for {self._deadline:g} s "
                                      f"(last: {type(lost_connection).__name__})") from lost_connection
                time.sleep(pause())
            else:
                conflicts += 1
                if conflicts >= CONFLICT_ROUNDS:
                    raise Conflict(f"state records kept changing under this writer "
                                   f"({len(failed)} records after {conflicts} rounds)")
        return committed

    def _require_leading(self) -> None:
        if self._leadership is not None and self._leadership.lost.is_set():
            raise NotLeader(f"{self._leadership.identity} is no longer the leader: {self._leadership.reason}")

    def _require_reachable(self) -> None:
        """Refuse to hand kazoo a request while the leadership is suspended (retryable), or lost.

        kazoo queues a request made while disconnected until the link is back, however long: a
        caller holding its daemon's lock would hold it through a whole partition, and a deposed
        leader could then not even stop. Refused here, the caller's retries end at the store's
        deadline, or at once with NotLeader when the leadership is lost.
        """
        self._require_leading()
        if self._leadership is not None and not self._leadership.active:
            raise ConnectionLoss("ZooKeeper unreachable: the leadership is suspended")

    def _ask(self, read: Callable[[], T]) -> T:
        """One read (or ``ensure_path``), retried until the deadline; see ``_require_reachable``."""
        def attempt() -> T:
            self._require_reachable()
            return read()
        return retry_call(attempt, deadline=self._deadline)

    def _learn(self, ops: dict[Key, bytes | None]) -> None:
        """Find out which kind directories and keys exist, for the ops we know nothing about."""
        unknown: dict[str, list[str]] = {}
        for kind, key in ops:
            if key not in self._present.get(kind, ()) and key not in self._absent.get(kind, ()):
                if kind in self._complete:
                    self._absent.setdefault(kind, set()).add(key)   # a wrong guess fails the multi: relearnt
                    continue
                unknown.setdefault(kind, []).append(key)
        for kind, keys in unknown.items():
            if kind not in self._kinds and self._client.exists(self._paths.state(kind)) is None:
                self._absent[kind] = set(keys) | self._absent.get(kind, set())
                self._present[kind] = set()
                self._complete.add(kind)            # no directory: no keys at all
                continue
            self._kinds.add(kind)
            if len(keys) > BULK_LEARN:
                try:
                    self._learned_kind(kind, self._client.get_children(self._paths.state(kind)))
                except NoNodeError:
                    self._kinds.discard(kind)
                    self._absent[kind] = set(keys)
                continue
            asked = [(key, self._client.exists_async(self._paths.state(kind, key))) for key in keys]
            for key, result in asked:
                self._hint(kind, key, result.get() is not None)

    def _plan(self, ops: dict[Key, bytes | None]) -> Chunks:
        """Turn ops into multis: each a list of (verb, path, data) and the record keys it carries."""
        fence = self._leadership.fence if self._leadership is not None else None
        head = (len(fence[0]) + OP_OVERHEAD) if fence else 0
        chunks: Chunks = []
        steps: Steps = []
        carried: list[Key] = []
        size = head
        made_kinds: set[str] = set()
        for (kind, key), data in ops.items():
            present = key in self._present.get(kind, ())
            if data is None and not present:
                continue  # deleting what is not there: nothing to do
            new: Steps = []
            if data is not None and kind not in self._kinds and kind not in made_kinds:
                new.append(("create", self._paths.state(kind), b""))
                made_kinds.add(kind)
            path = self._paths.state(kind, key)
            new.append(("delete" if data is None else "set" if present else "create", path, data))
            cost = sum(len(p) + len(d or b"") + OP_OVERHEAD for _, p, d in new)
            if steps and (size + cost > self._max_txn_bytes or len(steps) + len(new) > MAX_TXN_OPS):
                chunks.append((steps, carried))
                steps, carried, size = [], [], head
            steps.extend(new)
            carried.append((kind, key))
            size += cost
        if steps:
            chunks.append((steps, carried))
        return chunks

    def _commit(self, chunks: Chunks,
                ops: dict[Key, bytes | None]) -> tuple[int, dict[Key, bytes | None], BaseException | None]:
        """Send the multis, ``WINDOW`` in flight; returns (committed, ops to redo, connection error)."""
        fence = self._leadership.fence if self._leadership is not None else None
        committed = 0
        redo: dict[Key, bytes | None] = {}
        lost_connection: BaseException | None = None
        in_flight: list[tuple[Any, Steps, list[Key]]] = []
        queue: Chunks = chunks[:]
        not_leader: NotLeader | None = None
        while queue or in_flight:
            while queue and len(in_flight) < WINDOW and lost_connection is None and not_leader is None:
                steps, carried = queue.pop(0)
                tx = self._client.transaction()
                if fence is not None:
                    tx.check(*fence)
                for verb, path, data in steps:
                    if verb == "create":
                        tx.create(path, data or b"")
                    elif verb == "set":
                        tx.set_data(path, data or b"")
                    else:
                        tx.delete(path)
                in_flight.append((tx.commit_async(), steps, carried))
            if not in_flight:  # stopped sending: everything still queued is redone
                for _steps, carried in queue:
                    redo.update({k: ops[k] for k in carried})
                queue.clear()
                break
            result, steps, carried = in_flight.pop(0)
            try:
                outcome = result.get()
            except RETRYABLE as err:
                lost_connection = err
                redo.update({k: ops[k] for k in carried})
                continue
            failed = first_failure(outcome)
            if failed is None:
                committed += 1
                self._committed(steps)
                continue
            index, error = failed
            if fence is not None and index == 0:
                not_leader = NotLeader("the leader's lock node is gone; this writer was deposed")
                continue
            if not isinstance(error, NoNodeError | NodeExistsError | BadVersionError):
                raise error
            redo.update({k: ops[k] for k in carried})
        if not_leader is not None:
            raise not_leader
        return committed, redo, lost_connection

    def _committed(self, steps: Steps) -> None:
        state_prefix = self._paths.state() + "/"
        for verb, path, _ in steps:
            parts = path[len(state_prefix):].split("/")
            if len(parts) == 1:
                self._kinds.add(parts[0])
            else:
                self._hint(parts[0], parts[1], verb != "delete")

    # ---- hints ------------------------------------------------------------------------------------
    def _hint(self, kind: str, key: str, exists: bool) -> None:
        (self._present if exists else self._absent).setdefault(kind, set()).add(key)
        (self._absent if exists else self._present).get(kind, set()).discard(key)
        if exists:
            self._kinds.add(kind)

    def _learned_kind(self, kind: str, children: Names) -> None:
        self._kinds.add(kind)
        self._present[kind] = set(children)
        self._absent[kind] = set()
        self._complete.add(kind)

    def _forget(self, kind: str) -> None:
        self._complete.discard(kind)
        self._kinds.discard(kind)
        self._present.pop(kind, None)
        self._absent.pop(kind, None)

    def _get_many(self, base: str, names: Names) -> dict[str, dict[str, Any]]:
        asked = [(name, self._client.get_async(f"{base}/{name}")) for name in names]
        records: dict[str, dict[str, Any]] = {}
        for name, result in asked:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            records[name] = _decode(data, f"{base}/{name}")
        return records


class _Pending:
    __slots__ = ("ops", "done", "error")

    def __init__(self, ops: dict[Key, bytes | None]) -> None:
        self.ops = ops
        self.done = False
        self.error: BaseException | None = None


def _key(kind: str, key: str) -> Key:
    return check_segment(kind, "kind"), check_segment(key, "key")


def _encode(value: dict[str, Any]) -> bytes:
    if not isinstance(value, dict):
        raise InvalidInput(f"expected a map, got {type(value).__name__}", field="value")
    try:
        data = cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as err:
        raise InvalidInput(f"cannot be encoded as CBOR: {err}", field="value") from err
    if len(data) > MAX_VALUE_BYTES:
        raise InvalidInput(f"encodes to {len(data):,} bytes; the limit is {MAX_VALUE_BYTES:,}", field="value")
    return data


def _decode(data: bytes, path: str) -> dict[str, Any]:
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError) as err:
        raise ProtocolError(f"{path}: not CBOR: {err}") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{path}: expected a CBOR map, found {type(value).__name__}")
    return value
