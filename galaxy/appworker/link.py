"""The worker's way to its master: the AppMaster leader, spoken to on the mesh.

Where the leader is comes from one of two places. The Agent, which follows the AppMaster leader
record itself, passes the leader it knew at container creation as ``GALAXY_MASTER_ENDPOINT`` /
``GALAXY_MASTER_KEY``: the worker dials it at once, without a ZooKeeper session of its own (200
workers on a host would otherwise be 200 sessions, 200 kazoo imports and 200 ping threads). The
hint can go stale (a new leader since), so the first call that fails — no answer, or an answer
saying "not the leader" — starts the fallback, which is the authoritative path: a ZooKeeper session
that watches the leader record (``/galaxy/<cluster>/appmaster/leader``) and moves the one DEALER
(``Client.connect_to``) on every change. Without a hint the fallback starts at once.

Everything that can fail at start (ZooKeeper not up yet) is retried on a thread: the worker must
come up and keep its service up whether or not a master can be found, so until then a call just
raises Unreachable.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from galaxy.appworker.settings import WorkerSettings
from galaxy.errors import GalaxyError, NotFound, NotLeader, Unreachable
from galaxy.mesh import Client, Keypair
from galaxy.protocol.podtoken import TOKEN_FIELD

if TYPE_CHECKING:  # kazoo is imported only when the fallback runs: most workers never need it
    from kazoo.client import KazooClient

    from galaxy.coord import WatchHandle

log = logging.getLogger(__name__)

CALL_TIMEOUT = 2.0
RETRY_CONNECT = 2.0
# The reports (every second or so) already prove both ends alive, so the mesh heartbeat, whose
# liveness ticks wake the I/O thread four times per interval, can be slow: a quarter of an idle
# worker's CPU on a host with hundreds of them.
HEARTBEAT_INTERVAL = 5.0
FALLBACK_AFTER = 2           # failed calls in a row to the hinted master before asking ZooKeeper


@dataclass(frozen=True)
class MasterAddress:
    """Where a master is reached: the same three fields as ``galaxy.coord.LeaderInfo``."""

    identity: str
    endpoint: str
    public_key: str


class MasterLink:
    """``link(method, body) -> reply``: a Worker transport over the mesh, found by hint or ZooKeeper."""

    def __init__(self, settings: WorkerSettings, keypair: Keypair, *, timeout: float = CALL_TIMEOUT) -> None:
        self.settings = settings
        self.keypair = keypair
        self.timeout = timeout
        self.leader: MasterAddress | Any | None = None   # a MasterAddress (hint) or a coord.LeaderInfo
        self.leader_changes = 0
        self.discovering = False                          # the ZooKeeper fallback has been started
        self._failures = 0
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._zk: KazooClient | None = None
        self._ca_path: str | None = None
        self._watch: WatchHandle[Any] | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._connect, name="galaxy-master-link", daemon=True)

    def start(self) -> MasterLink:
        hint = self._hint()
        if hint is None:
            self._discover()
        else:
            self._follow(hint)
        return self

    def __call__(self, method: str, body: Any) -> Any:
        with self._lock:
            client, leader = self._client, self.leader
        if client is None or leader is None:
            raise Unreachable("no AppMaster leader known yet")
        if self.settings.pod_token and isinstance(body, dict):
            body = {**body, TOKEN_FIELD: self.settings.pod_token}
        try:
            reply = client.call(method, body, timeout=self.timeout, retries=0)
        except GalaxyError as err:
            if not self.discovering:
                self._failures += 1
                # "not the leader" / "no such method" (a standby) say the hint is stale at once; a
                # timeout may only be a busy master, so it takes FALLBACK_AFTER of them in a row.
                if isinstance(err, NotLeader | NotFound) or self._failures >= FALLBACK_AFTER:
                    log.info("the AppMaster at %s failed a call (%s): following the leader through "
                             "ZooKeeper", leader.endpoint, err)
                    self._discover()
            raise
        self._failures = 0
        return reply

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
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
        if self._ca_path is not None:
            os.unlink(self._ca_path)

    def _hint(self) -> MasterAddress | None:
        endpoint, key = self.settings.master_endpoint, self.settings.master_key
        if not endpoint or not key:
            return None
        return MasterAddress(self.settings.master_identity or "hint", endpoint, key)

    def _discover(self) -> None:
        with self._lock:
            if self.discovering or self._closing.is_set():
                return
            self.discovering = True
        self._thread.start()

    def _connect(self) -> None:
        from galaxy.coord import Paths, connect, watch_leader

        while not self._closing.is_set():
            try:
                zk = connect(self.settings.zookeeper, timeout=10.0, session_timeout=10.0, ca=self._ca_file())
            except GalaxyError as err:
                log.warning("ZooKeeper not reachable yet: %s", err)
                self._closing.wait(RETRY_CONNECT)
                continue
            if self._closing.is_set():
                zk.stop()
                zk.close()
                return
            self._zk = zk
            self._watch = watch_leader(zk, Paths(self.settings.cluster), "appmaster", self._on_leader)
            return

    def _ca_file(self) -> str | None:
        """The CA certificate the Agent passed in the environ, as the file kazoo wants: private to
        this process (0600, root of the container), so the service cannot swap it."""
        if not self.settings.zookeeper_ca_pem:
            return None
        if self._ca_path is None:
            fd, self._ca_path = tempfile.mkstemp(prefix="galaxy-zookeeper-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as out:
                out.write(self.settings.zookeeper_ca_pem)
        return self._ca_path

    def _on_leader(self, info: Any) -> None:
        if info is None:
            with self._lock:
                self.leader = None
            log.warning("no AppMaster leader published")
            return
        self._follow(info)

    def _follow(self, info: Any) -> None:
        with self._lock:
            previous, self.leader = self.leader, info
            if previous is not None and (previous.endpoint, previous.public_key) == (info.endpoint,
                                                                                     info.public_key):
                return      # ZooKeeper confirms the hint: the socket already points there
            self.leader_changes += 1
            log.info("AppMaster leader %s at %s", info.identity, info.endpoint)
            if self._client is None:
                self._client = Client(info.endpoint, info.public_key, self.keypair, self.settings.pod,
                                      timeout=self.timeout, retries=0, name="appworker",
                                      heartbeat_interval=HEARTBEAT_INTERVAL).start()
            else:
                self._client.connect_to(info.endpoint, info.public_key)
