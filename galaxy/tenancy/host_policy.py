"""One host's view of its pool's policy, for the Agent's second check at ``container.create``.

The host's pool is the Agent's ``pool:`` setting unless an administrator moved the host
(``galaxy agent move``), which ResMan records as ``pool`` in the host's record ``state/hosts/<id>``;
the policy is ``state/policies/<pool>``. One watch follows both, so a move or a policy change is in
effect here within a ZooKeeper round trip, and a policy record that cannot be read allows nothing.
Until the first read the Agent does not know the policy, and `current` refuses (retryably) rather
than guess.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cbor2
from kazoo.client import KazooClient

from galaxy.coord import Paths, WatchHandle
from galaxy.errors import GalaxyError, InvalidInput, Unreachable
from galaxy.tenancy.policy import POLICIES, PoolPolicy

log = logging.getLogger(__name__)

HOSTS = "hosts"        # ResMan's host records (galaxy.resman.state.HOSTS): {admin, pool, labels}


class HostPolicy:
    def __init__(self, zk: KazooClient, paths: Paths, host_id: str, configured_pool: str) -> None:
        self.zk = zk
        self.paths = paths
        self.host_id = host_id
        self.configured_pool = configured_pool
        self._lock = threading.Lock()
        self._current: tuple[str, PoolPolicy] = (configured_pool, PoolPolicy())
        self._synced = threading.Event()
        self._watch: WatchHandle[Any] | None = None

    def start(self) -> HostPolicy:
        self._watch = WatchHandle(self.zk, self._read, self._set, "host-policy")
        return self

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def current(self, timeout: float | None = None) -> tuple[str, PoolPolicy]:
        """(pool, its policy); ``Unreachable`` if ZooKeeper has not been read yet within ``timeout``."""
        if not self._synced.wait(timeout):
            raise Unreachable("this Agent has not read its pool's policy from ZooKeeper yet; try again")
        with self._lock:
            return self._current

    # ---- ZooKeeper ---------------------------------------------------------------------------------
    def _read(self, watch: Any) -> tuple[str, bytes | None]:
        pool = self.configured_pool
        host = self.paths.state(HOSTS, self.host_id)
        if self.zk.exists(host, watch=watch) is not None:
            data, _ = self.zk.get(host, watch=watch)
            moved = (_decode(data) or {}).get("pool")
            if isinstance(moved, str) and moved:
                pool = moved
        path = self.paths.state(POLICIES, pool)
        if self.zk.exists(path, watch=watch) is None:
            return pool, None
        data, _ = self.zk.get(path, watch=watch)
        return pool, data

    def _set(self, value: tuple[str, bytes | None]) -> None:
        pool, data = value
        policy = PoolPolicy()
        if data is not None:
            try:
                record = _decode(data)
                if record is None:
                    raise InvalidInput("not a CBOR map")
                policy = PoolPolicy.from_dict(record)
            except GalaxyError as err:
                log.error("state/policies/%s is unreadable; containers get nothing beyond the default: %s",
                          pool, err)
        with self._lock:
            self._current = (pool, policy)
        self._synced.set()
        log.info("pool %s policy: %s", pool, policy.to_dict())


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


__all__ = ["HostPolicy"]
