"""Group commit of the master's state: many in-memory changes, few fenced ZooKeeper multis.

A report that changes a pod marks its row dirty and returns at once; one writer thread takes a
snapshot of every dirty record (under the owner's lock, so it is the latest value) and commits them
in one `StateStore.batch()`. A decision that must be durable before it acts (a pod admitted to a
rollout, a job submitted) holds a *ticket* and waits — or, in the non-blocking report path, simply
answers "none" until `committed(ticket)` — so nothing is acted on that a new leader would not know.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from galaxy.coord import StateStore
from galaxy.errors import GalaxyError, NotLeader, Timeout

log = logging.getLogger(__name__)

Key = tuple[str, str]
Snapshot = Callable[[list[Key]], dict[Key, dict[str, Any] | None]]


class StateWriter:
    """One thread committing dirty records in batches; `snapshot(keys)` gives their current values."""

    def __init__(self, store: StateStore, snapshot: Snapshot, *, interval: float = 0.02) -> None:
        self._store = store
        self._snapshot = snapshot
        self._interval = interval
        self._cond = threading.Condition()
        self._dirty: dict[Key, int] = {}
        self._issued = 0
        self._done = 0
        self._error: GalaxyError | None = None
        self._stop = False
        self.batches = 0
        self.records = 0
        self._thread = threading.Thread(target=self._run, name="appmaster-writer", daemon=True)
        self._thread.start()

    def mark(self, kind: str, key: str) -> int:
        """Schedule `state/<kind>/<key>` to be written (or deleted); returns the ticket that covers it."""
        with self._cond:
            self._issued += 1
            self._dirty[(kind, key)] = self._issued
            self._cond.notify()
            return self._issued

    def committed(self, ticket: int) -> bool:
        return self._done >= ticket

    def wait(self, ticket: int, timeout: float = 30.0) -> None:
        """Block until `ticket` is in ZooKeeper; NotLeader if the writer was deposed, Timeout if slow."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._done < ticket:
                if self._error is not None:
                    raise self._error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout("state was not written to ZooKeeper in time")
                self._cond.wait(left)

    def flush(self, timeout: float = 30.0) -> None:
        with self._cond:
            ticket = self._issued
        self.wait(ticket, timeout)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stop:
                    self._cond.wait()
                if self._stop and not self._dirty:
                    return
            time.sleep(self._interval)      # let a burst of marks gather into one batch
            with self._cond:
                dirty, self._dirty = self._dirty, {}
                top = max(dirty.values())
            try:
                values = self._snapshot(list(dirty))
                with self._store.batch() as batch:
                    for (kind, key), value in values.items():
                        if value is None:
                            batch.delete(kind, key)
                        else:
                            batch.put(kind, key, value)
            except NotLeader as err:
                log.warning("state writer stopped: %s", err)
                with self._cond:
                    self._error = err
                    self._stop = True
                    self._cond.notify_all()
                return
            except Exception as err:  # ZooKeeper away or a bad record: keep the keys, try again
                log.warning("state write failed, retrying: %s", err)
                with self._cond:
                    for record, ticket in dirty.items():
                        self._dirty.setdefault(record, ticket)
                    stopping = self._stop
                if stopping:
                    return
                time.sleep(0.5)
                continue
            with self._cond:
                self.batches += 1
                self.records += len(values)
                # every ticket issued before this snapshot is covered only if no key is still dirty
                # with an older ticket; tickets are monotonic, so the oldest dirty one bounds `done`
                pending = min(self._dirty.values(), default=None)
                self._done = max(self._done, top if pending is None else min(top, pending - 1))
                self._cond.notify_all()
