"""``Client.watch``: a job's naming records turned into a stream of per-pod status changes.

ZooKeeper watches deliver whole snapshots ({pod: record}) on a watch thread; the generator diffs
each snapshot against the last one and yields only what a caller cares about (a pod appeared,
changed status or version, or went away), on the caller's own thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from galaxy.coord import Naming

Records = dict[str, dict[str, Any]]
TICK = 0.2  # how often the generator looks at `stop` while no change arrives


@dataclass(frozen=True)
class WatchEvent:
    """One pod's change: ``status`` None means the pod is gone; ``previous`` None means it is new."""

    job: str
    pod: str
    status: str | None
    previous: str | None
    version: str | None
    record: dict[str, Any] = field(default_factory=dict)


def diff(job: str, old: Records, new: Records) -> list[WatchEvent]:
    """The events that turn snapshot ``old`` into ``new``, in pod order."""
    events = []
    for pod in sorted(old.keys() | new.keys()):
        before, after = old.get(pod), new.get(pod)
        if after is None:
            assert before is not None
            events.append(WatchEvent(job, pod, None, _status(before), _version(before), before))
        elif before is None or _status(before) != _status(after) or _version(before) != _version(after):
            events.append(WatchEvent(job, pod, _status(after), None if before is None else _status(before),
                                     _version(after), after))
    return events


def watch_job(naming: Naming, job: str, *, timeout: float | None = None,
              stop: threading.Event | None = None) -> Iterator[WatchEvent]:
    """Generator behind ``Client.watch``; the ZooKeeper watch is cancelled when it ends or is closed."""
    snapshots: queue.Queue[Records] = queue.Queue()
    handle = naming.watch(job, snapshots.put)
    end = None if timeout is None else time.monotonic() + timeout
    last: Records = {}
    try:
        while stop is None or not stop.is_set():
            wait = TICK if end is None else min(TICK, end - time.monotonic())
            if wait <= 0:
                return
            try:
                snapshot = snapshots.get(timeout=wait)
            except queue.Empty:
                continue
            yield from diff(job, last, snapshot)
            last = snapshot
    finally:
        handle.cancel()


def _status(record: dict[str, Any]) -> str | None:
    value = record.get("status")
    return value if isinstance(value, str) else None


def _version(record: dict[str, Any]) -> str | None:
    value = record.get("version")
    return None if value is None else str(value)
