"""Service discovery: ``naming/<job>/<pod>`` holds each instance's endpoint, ports, status, version.

Records are persistent JSON (any ZooKeeper client, in any language, can resolve a job) and are
written by the AppMaster from what the AppWorkers report, so they outlive an AppMaster failover.
Resolving reads all of a job's records with pipelined gets; watching keeps a callback told of the
whole current set whenever a pod appears, changes or goes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from galaxy.coord._paths import Paths
from galaxy.coord._retry import retry_call
from galaxy.coord._watch import Watcher, WatchHandle
from galaxy.errors import InvalidInput

log = logging.getLogger(__name__)

DEADLINE = 30.0
MAX_RECORD_BYTES = 512 * 1024

Records = dict[str, dict[str, Any]]


class Naming:
    """Publish and resolve the instances of jobs in cluster ``paths``."""

    def __init__(self, client: KazooClient, paths: Paths, *, deadline: float = DEADLINE) -> None:
        self._client = client
        self._paths = paths
        self._deadline = deadline

    def publish(self, job: str, pod: str, record: dict[str, Any]) -> None:
        """Create or overwrite the record of ``pod``."""
        path = self._paths.naming(job, pod)
        data = _encode(record)

        def write() -> None:
            try:
                self._client.set(path, data)
            except NoNodeError:
                try:
                    self._client.create(path, data, makepath=True)
                except NodeExistsError:
                    self._client.set(path, data)

        retry_call(write, deadline=self._deadline)

    def remove(self, job: str, pod: str) -> None:
        """Remove one pod's record; a missing record is not an error."""
        path = self._paths.naming(job, pod)
        try:
            retry_call(lambda: self._client.delete(path), deadline=self._deadline)
        except NoNodeError:
            pass

    def remove_job(self, job: str) -> None:
        """Remove a job and all its records."""
        path = self._paths.naming(job)
        try:
            retry_call(lambda: self._client.delete(path, recursive=True), deadline=self._deadline)
        except NoNodeError:
            pass

    def jobs(self) -> list[str]:
        """Every job that has (or had) published instances."""
        try:
            return sorted(retry_call(lambda: self._client.get_children(self._paths.naming()),
                                     deadline=self._deadline))
        except NoNodeError:
            return []

    def resolve(self, job: str) -> Records:
        """{pod: record} of every published instance of ``job`` (empty if none)."""
        path = self._paths.naming(job)
        return retry_call(lambda: _read_job(self._client, path, None), deadline=self._deadline)

    def watch(self, job: str, callback: Callable[[Records], None]) -> WatchHandle[Records]:
        """Call ``callback({pod: record})`` now and whenever the job's instances change.

        Callbacks run on the watch's own thread; ``handle.cancel()`` stops them.
        """
        path = self._paths.naming(job)
        return WatchHandle(self._client, lambda watch: _read_job(self._client, path, watch), callback,
                           f"naming-{job}")


def _read_job(client: KazooClient, path: str, watch: Watcher | None) -> Records:
    while True:
        try:
            pods = client.get_children(path, watch=watch)
            break
        except NoNodeError:
            if client.exists(path, watch=watch) is None:
                return {}
    asked = [(pod, client.get_async(f"{path}/{pod}", watch=watch)) for pod in pods]
    records: Records = {}
    for pod, result in asked:
        try:
            data, _ = result.get()
        except NoNodeError:
            continue  # removed while we read; the children watch brings the next view
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            log.warning("ignoring malformed naming record %s/%s", path, pod)
            continue
        if isinstance(value, dict):
            records[pod] = value
    return records


def _encode(record: dict[str, Any]) -> bytes:
    if not isinstance(record, dict):
        raise InvalidInput(f"expected a map, got {type(record).__name__}", field="record")
    try:
        data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"cannot be encoded as JSON: {err}", field="record") from err
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidInput(f"encodes to {len(data):,} bytes; the limit is {MAX_RECORD_BYTES:,}", field="record")
    return data

