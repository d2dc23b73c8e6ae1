"""The replicated-leader loop shared by ResMan and AppMaster.

Every replica campaigns in ZooKeeper; only the holder binds its mesh endpoint, publishes the leader
record (endpoint + public key) and serves. Standbys hold nothing but a place in the election queue, so a
failover costs one session timeout plus the new leader's rebuild from `state/`. The moment the session
is lost the leader stops serving (the mesh server is closed before anything else can happen), and every
state write it makes is fenced on its lock node, so a deposed leader cannot write either.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import Election, LeaderInfo, Leadership, Paths, connect, publish_leader, secure_tree
from galaxy.daemon.config import DaemonConfig
from galaxy.daemon.keys import TrustedKeys
from galaxy.mesh import Keypair, KeyRing, Request, Server
from galaxy.tenancy import Directory

log = logging.getLogger(__name__)


class RoleService:
    """What a role (ResMan, AppMaster) plugs into the loop; the base serves only `status`."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        # Users and pools as every replica sees them (set by ReplicatedDaemon before campaigning, so a
        # new leader authorises from its first request); it also admits and revokes users' keys.
        self.directory: Directory | None = None

    def on_leading(self, leadership: Leadership, server: Server, zk: KazooClient) -> None:
        """Rebuild from state and register routes on `server`; called before the server starts."""

    def on_demoted(self) -> None:
        """Drop every in-memory leader state; called after the server stopped."""

    def status(self) -> dict[str, Any]:
        """Counters the role adds to `status` (the leader's; an operator's first look after an attack)."""
        return {}


class ReplicatedDaemon:
    def __init__(self, config: DaemonConfig, service: RoleService) -> None:
        self.config = config
        self.service = service
        self.paths = Paths(config.cluster)
        self.keypair = Keypair.load(config.key)
        self.trusted = TrustedKeys(config.trusted_keys)
        self.keyring: KeyRing = self.trusted.keyring
        self.stop_event = threading.Event()
        self.leading_since: float | None = None
        self._zk: KazooClient | None = None
        self._election: Election | None = None
        self._server: Server | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_keys())

    def reload_keys(self) -> None:
        try:
            count = self.trusted.reload()
            log.info("trusted keys reloaded: %d from %s", count, self.config.trusted_keys)
        except Exception:  # a bad reload must not take the daemon down
            log.exception("reloading trusted keys failed; keeping the previous set")

    def stop(self) -> None:
        self.stop_event.set()
        if self._election is not None:
            self._election.stop()

    def run(self) -> None:
        """Campaign until stopped; serve whenever elected."""
        credential = self.config.zk_credential()
        if credential is None:
            log.warning("no zookeeper_auth in the config: ZooKeeper is used without a credential and "
                        "every znode this daemon creates is open to anyone who reaches ZooKeeper")
        self._zk = connect(self.config.zookeeper, session_timeout=self.config.session_timeout,
                           credential=credential, ca=self.config.zookeeper_ca)
        try:
            # An older Galaxy left the tree open: close it before anything is read from or written to it.
            secure_tree(self._zk, self.paths)
        except BaseException:
            self._zk.stop()
            self._zk.close()
            raise
        directory = Directory(self._zk, self.paths, self.keyring).start()
        self.service.directory = directory
        try:
            self._election = Election(self._zk, self.paths, self.config.role, self.config.id)
            log.info("%s %s campaigning in %s", self.config.role, self.config.id, self.paths.root)
            while not self.stop_event.is_set():
                self._election.run(self._lead, self.stop_event)
        finally:
            directory.close()
            self._zk.stop()
            self._zk.close()

    # -- leading ---------------------------------------------------------------------------------
    def _lead(self, leadership: Leadership) -> None:
        assert self._zk is not None
        if self.service.directory is not None:       # authorise from the first request on
            self.service.directory.wait_synced(self.config.session_timeout)
        server = Server(self.config.listen, self.keypair, self.keyring,
                        heartbeat_interval=self.config.heartbeat_interval, name=self.config.role)
        server.route("status", self._status)
        self._server = server
        self.service.on_leading(leadership, server, self._zk)
        server.start()
        self.leading_since = time.time()
        try:
            endpoint = self._advertised(server.endpoint)
            publish_leader(self._zk, self.paths, self.config.role,
                           LeaderInfo(self.config.id, endpoint, self.keypair.public), leadership=leadership)
            log.info("%s %s leading at %s", self.config.role, self.config.id, endpoint)
            while not leadership.lost.wait(0.2):
                if self.stop_event.is_set():
                    leadership.resign()
                    break
        finally:
            server.stop()
            self.leading_since = None
            self.service.on_demoted()
            log.warning("%s %s no longer leading", self.config.role, self.config.id)

    def _advertised(self, bound: str) -> str:
        """The endpoint others should dial: the configured one, with the real port if we bound :0."""
        advertise = self.config.advertise
        if not advertise or advertise == self.config.listen:
            return bound
        return advertise

    def _status(self, req: Request) -> dict[str, Any]:
        server = self._server
        refused = server.stats["identity_refused"] if server is not None else 0
        return {"role": self.config.role, "id": self.config.id, "cluster": self.config.cluster,
                "leader": True, "leading_since": self.leading_since, "identity_refused": refused,
                **self.service.status()}
