"""The worker's way to its master: the AppMaster leader found through ZooKeeper, spoken to on the mesh.

The leader record (``/galaxy/<cluster>/appmaster/leader``) names the endpoint and CURVE key; a watch
follows it, and a change of leader moves the one DEALER there (``Client.connect_to``). Everything that
can fail at start (ZooKeeper not up yet) is retried on a thread: the worker must come up and keep its
service up whether or not a master can be found, so until then a call just raises Unreachable.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kazoo.client import KazooClient

from galaxy.appworker.settings import WorkerSettings
from galaxy.coord import LeaderInfo, Paths, WatchHandle, connect, watch_leader
from galaxy.errors import GalaxyError, Unreachable
from galaxy.mesh import Client, Keypair

log = logging.getLogger(__name__)

CALL_TIMEOUT = 2.0
RETRY_CONNECT = 2.0


class MasterLink:
    """``link(method, body) -> reply``: a Worker transport over ZooKeeper + the mesh."""

    def __init__(self, settings: WorkerSettings, keypair: Keypair, *, timeout: float = CALL_TIMEOUT) -> None:
        self.settings = settings
        self.keypair = keypair
        self.timeout = timeout
        self.paths = Paths(settings.cluster)
        self.leader: LeaderInfo | None = None
        self.leader_changes = 0
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._zk: KazooClient | None = None
        self._watch: WatchHandle[LeaderInfo | None] | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._connect, name="galaxy-master-link", daemon=True)

    def start(self) -> MasterLink:
        self._thread.start()
        return self

    def __call__(self, method: str, body: Any) -> Any:
        with self._lock:
            client, leader = self._client, self.leader
        if client is None or leader is None:
            raise Unreachable("no AppMaster leader known yet")
        return client.call(method, body, timeout=self.timeout, retries=0)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(15.0)
        if self._watch is not None:
            self._watch.cancel()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._zk is not None:
            self._zk.stop()
            self._zk.close()

    def _connect(self) -> None:
        while not self._closing.is_set():
            try:
                zk = connect(self.settings.zookeeper, timeout=10.0, session_timeout=10.0)
            except GalaxyError as err:
                log.warning("ZooKeeper not reachable yet: %s", err)
                self._closing.wait(RETRY_CONNECT)
                continue
            if self._closing.is_set():
                zk.stop()
                zk.close()
                return
            self._zk = zk
            self._watch = watch_leader(zk, self.paths, "appmaster", self._on_leader)
            return

    def _on_leader(self, info: LeaderInfo | None) -> None:
        with self._lock:
            self.leader = info
            if info is None:
                log.warning("no AppMaster leader published")
                return
            self.leader_changes += 1
            log.info("AppMaster leader %s at %s", info.identity, info.endpoint)
            if self._client is None:
                self._client = Client(info.endpoint, info.public_key, self.keypair, self.settings.pod,
                                      timeout=self.timeout, retries=0, name="appworker").start()
            else:
                self._client.connect_to(info.endpoint, info.public_key)
