"""What ResMan keeps in ZooKeeper (`state/<kind>/<key>`, CBOR maps, fenced writes):

    state/groups/<group>        the group's spec, version, desired count, extras
    state/containers/<id>       {"group", "version", "host", "state": "placed" | "destroying"}
    state/hosts/<host id>       {"admin", "pool", "labels"}: the administrator's word (None = the Agent's)

A placement is written (state "placed") before the Agent is asked to create the container, and a
retirement ("destroying") before it is asked to destroy it, so a new leader neither loses nor
doubles a container. Pending containers and "running" are not written (see `model.py`).

`Journal` collects what changed during one round (dirty ids) and writes it as one batch; records
are compared with what was last written so an unchanged container costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from galaxy.coord import StateStore
from galaxy.resman.model import Container, Group

log = logging.getLogger(__name__)

GROUPS, CONTAINERS, HOSTS = "groups", "containers", "hosts"


@dataclass
class Loaded:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(store: StateStore | None) -> Loaded:
    if store is None:
        return Loaded()
    return Loaded(store.list(GROUPS), store.list(CONTAINERS), store.list(HOSTS))


class Journal:
    """Dirty containers since the last write, and the records last written for each."""

    def __init__(self, store: StateStore | None) -> None:
        self.store = store
        self.dirty: set[str] = set()
        self.written: dict[str, dict[str, Any]] = {}
        self.inflight: set[str] = set()          # ids taken for a write that has not finished yet
        self.commits = 0            # bumped by every commit: what waits to be written need not be re-checked before

    def mark(self, container_id: str) -> None:
        self.dirty.add(container_id)

    def loaded(self, container_id: str, record: dict[str, Any]) -> None:
        self.written[container_id] = record

    def is_written(self, container: Container) -> bool:
        """True when ZooKeeper holds exactly this container's current record."""
        return self.written.get(container.id) == container.record() and container.id not in self.dirty

    def take(self, lookup: Callable[[str], Container | None]) -> dict[str, dict[str, Any] | None]:
        """The changes to write: id -> record (None = delete); clears the dirty set."""
        changes: dict[str, dict[str, Any] | None] = {}
        for cid in self.dirty:
            container = lookup(cid)
            want = container.record() if container is not None else None
            if want != self.written.get(cid):
                changes[cid] = want
        self.dirty.clear()
        return changes

    def write(self, changes: dict[str, dict[str, Any] | None]) -> int:
        """Write one round's changes as one batch (raises on failure; nothing is marked written)."""
        self.store_changes(changes)
        self.committed(changes)
        return len(changes)

    def store_changes(self, changes: dict[str, dict[str, Any] | None]) -> None:
        """The ZooKeeper half of `write`: safe outside the engine's lock (it touches no journal state)."""
        if self.store is not None and changes:
            with self.store.batch() as batch:
                for cid, record in changes.items():
                    if record is None:
                        batch.delete(CONTAINERS, cid)
                    else:
                        batch.put(CONTAINERS, cid, record)

    def committed(self, changes: dict[str, dict[str, Any] | None]) -> None:
        """The changes are in ZooKeeper: remember them as written (under the engine's lock)."""
        self.commits += 1
        for cid, record in changes.items():
            if record is None:
                self.written.pop(cid, None)
            else:
                self.written[cid] = record

    def retry(self, changes: dict[str, dict[str, Any] | None]) -> None:
        """A write failed: its ids are dirty again, so the next round writes their latest state."""
        self.dirty.update(changes)


def put_group(store: StateStore | None, group: Group) -> None:
    if store is not None:
        store.put(GROUPS, group.name, group.record())


def delete_group(store: StateStore | None, name: str) -> None:
    if store is not None:
        store.delete(GROUPS, name)


def put_host(store: StateStore | None, host_id: str, record: dict[str, Any]) -> None:
    if store is not None:
        store.put(HOSTS, host_id, record)


def put_hosts(store: StateStore | None, records: dict[str, dict[str, Any]]) -> None:
    if store is not None and records:
        with store.batch() as batch:
            for host_id, record in records.items():
                batch.put(HOSTS, host_id, record)
