"""The AppMaster's connection to ResMan: follows the ResMan leader through ZooKeeper.

One mesh Client (identity `appmaster-<id>`, the daemon's keypair) is made when the first leader
record appears and is re-pointed (`connect_to`) whenever it changes. `call` retries retryable
failures (timeout, unreachable, not the leader) until a deadline, so a ResMan failover costs the
caller a wait, not an error.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Paths, WatchHandle, watch_leader
from galaxy.errors import RetryableError, Unreachable
from galaxy.mesh import Client, Keypair

log = logging.getLogger(__name__)


class ResManLink:
    def __init__(self, zk: KazooClient, paths: Paths, keypair: Keypair, identity: str, *,
                 timeout: float = 5.0, heartbeat_interval: float = 1.0) -> None:
        self._keypair = keypair
        self._identity = identity
        self._timeout = timeout
        self._heartbeat = heartbeat_interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._client: Client | None = None
        self._leader: LeaderInfo | None = None
        self._closed = False
        self._watch: WatchHandle[LeaderInfo | None] = watch_leader(zk, paths, "resman", self._on_leader)

    @property
    def leader(self) -> LeaderInfo | None:
        return self._leader

    def _on_leader(self, info: LeaderInfo | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._leader = info
            if info is not None:
                if self._client is None:
                    self._client = Client(info.endpoint, info.public_key, self._keypair, self._identity,
                                          timeout=self._timeout, retries=1, heartbeat_interval=self._heartbeat,
                                          name="resman-link").start()
                elif (self._client.endpoint, ) != (info.endpoint, ):
                    self._client.connect_to(info.endpoint, info.public_key)
                log.info("ResMan leader is %s at %s", info.identity, info.endpoint)
            self._changed.notify_all()

    def call(self, method: str, body: Any = None, *, deadline: float = 30.0, timeout: float | None = None) -> Any:
        """Ask the ResMan leader; retryable failures are retried (following a new leader) until `deadline`."""
        end = time.monotonic() + deadline
        last: Exception | None = None
        while True:
            with self._lock:
                while self._client is None and not self._closed:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise Unreachable("no ResMan leader is known", field="resman")
                    self._changed.wait(left)
                if self._closed:
                    raise Unreachable("the ResMan link is closed", field="resman")
                client = self._client
            assert client is not None
            left = end - time.monotonic()
            try:
                return client.call(method, body, timeout=min(timeout or self._timeout, max(left, 0.1)))
            except RetryableError as err:
                last = err
                if time.monotonic() >= end:
                    raise Unreachable(f"ResMan did not answer {method}: {last}", field="resman") from err
                time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            self._changed.notify_all()
        self._watch.cancel()
        if client is not None:
            client.close()
