"""The Agent daemon: follows the ResMan leader through ZooKeeper and serves it over one DEALER.

The Agent dials ResMan (never the other way round), with its id as the DEALER identity, so ResMan
reaches every host through the single ROUTER it already has. On every (re)connection — a new leader,
or the same one back — the Agent registers again with its host facts and containers, which is how a
new leader learns what exists without restarting anything.

Every create is checked against the policy of the pool this host is in (galaxy.tenancy.policy,
followed from ZooKeeper), whatever the AppMaster checked before: the service's user (root only for
the owners the policy names), each host path bound (after symlinks too) and each capability. The
policy's ``file://`` package directories are then added to the request as read-only mounts at the
same paths, so the AppWorker inside can read the packages the policy allows, and nothing else of the
host's package stores.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from galaxy.agent.containers import ContainerManager
from galaxy.coord import LeaderInfo, Paths, connect, watch_leader
from galaxy.daemon.config import DaemonConfig
from galaxy.daemon.keys import TrustedKeys
from galaxy.errors import GalaxyError, InvalidInput, Unreachable
from galaxy.isolate import RESERVED_INSIDE, resolve_user
from galaxy.mesh import Client, Keypair, Request
from galaxy.protocol import AgentMethods, ContainerRequest, ResManApi
from galaxy.protocol.container import MountAsk
from galaxy.tenancy import HostPolicy, PoolPolicy, check_container
from galaxy.tenancy.policy import at_or_below

log = logging.getLogger(__name__)

# Blocking handlers (creates, destroys, listings) run on this many threads. A create mostly waits for
# its shim to report, so more than ResMan's `creates_per_host` (4) in flight keeps the host busy and
# leaves a thread for a listing or a destroy meanwhile.
CREATE_WORKERS = 8
POLICY_WAIT = 10.0     # a create waits this long for the pool policy's first read from ZooKeeper


class AgentDaemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = Paths(config.cluster)
        self.keypair = Keypair.load(config.key)
        self.trusted = TrustedKeys(config.trusted_keys)
        self.manager = ContainerManager(config.id, config.state_dir, config.agent, on_change=self._report)
        self.stop_event = threading.Event()
        self._client: Client | None = None
        self._leader: LeaderInfo | None = None
        self._lock = threading.Lock()
        self._batch_pool = ThreadPoolExecutor(CREATE_WORKERS, thread_name_prefix="galaxy-create")
        self.policy: HostPolicy | None = None     # set by run() once ZooKeeper is connected

    # -- mesh ----------------------------------------------------------------------------------
    def _make_client(self, leader: LeaderInfo) -> Client:
        client = Client(leader.endpoint, leader.public_key, self.keypair, self.config.id,
                        heartbeat_interval=self.config.heartbeat_interval, name="agent",
                        workers=CREATE_WORKERS)
        client.route(AgentMethods.RESOURCES, self._resources, blocking=True)
        client.route(AgentMethods.LIST, lambda req: self.manager.list(usage=True), blocking=True)
        client.route(AgentMethods.CREATE, self._create, blocking=True)
        client.route(AgentMethods.CREATE_MANY, self._create_many, blocking=True)
        client.route(AgentMethods.DESTROY, self._destroy, blocking=True)
        client.route(AgentMethods.LOGS, self._logs, blocking=True)
        client.on_server_joined(self._register_soon)
        return client.start()

    def _on_leader(self, leader: LeaderInfo | None) -> None:
        """Watch callback: must not block, so the dial and registration go to a thread."""
        if leader is None:
            return
        if leader.public_key not in self.trusted.keyring:
            log.error("leader %s has a key we do not trust; not connecting", leader.identity)
            return
        with self._lock:
            if self._leader == leader:
                return
            self._leader = leader
            if self._client is None:
                self._client = self._make_client(leader)
            else:
                self._client.connect_to(leader.endpoint, leader.public_key)
        log.info("ResMan leader is %s at %s", leader.identity, leader.endpoint)
        self._register_soon()

    def _on_master(self, leader: LeaderInfo | None) -> None:
        """Watch callback: remember the AppMaster leader for the next containers' env (a hint only;
        the worker falls back to ZooKeeper when it is stale). The same record the worker would read
        itself, so it is trusted exactly as far as the worker would trust it."""
        if leader is None:
            self.manager.master_hint = {}
            return
        self.manager.master_hint = {"GALAXY_MASTER_ENDPOINT": leader.endpoint,
                                    "GALAXY_MASTER_KEY": leader.public_key,
                                    "GALAXY_MASTER_ID": leader.identity}

    def _register_soon(self) -> None:
        threading.Thread(target=self._register, name="agent-register", daemon=True).start()

    def facts(self, known: str | None = None) -> dict[str, Any]:
        resources = self.manager.resources(known)
        if "unchanged" in resources:
            return resources
        s = self.config.agent
        return {"id": self.config.id, "pool": s.pool, "labels": list(s.labels),
                "address": self.manager.address,
                "port_range": list(s.port_range),
                "disks": [{"path": d.path, "medium": d.medium, "capacity": d.capacity} for d in s.disks],
                **resources}

    def _register(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.call(ResManApi.REGISTER, self.facts(), timeout=5.0)
            log.info("registered with ResMan")
        except GalaxyError as err:
            log.warning("registration with ResMan failed (%s); will retry on the next connection", err)

    def _report(self, info: dict[str, Any]) -> None:
        client = self._client
        if client is not None:
            client.send_event(ResManApi.CONTAINER_STATE, info)

    # -- handlers ------------------------------------------------------------------------------
    def _resources(self, req: Request) -> dict[str, Any]:
        """The poll answer carries the registration facts too: a ResMan that declared this host lost
        while the Agent was paused (SIGSTOP, a frozen VM) re-admits it from a poll, because the Agent
        itself may never notice it was gone and so never registers again on its own. A poll that
        carries the digest of the list ResMan holds gets `{"unchanged", "free", "usage"}` while the
        list is the same (ResMan sends it only to a host it has registered)."""
        known = req.body.get("digest") if isinstance(req.body, dict) else None
        return self.facts(known if isinstance(known, str) else None)

    def _create(self, req: Request) -> dict[str, Any]:
        return self.manager.create(self.admit(ContainerRequest.from_wire(req.body)))

    def _create_many(self, req: Request) -> dict[str, Any]:
        """A batch's creates run side by side on a pool of their own, as single requests would on the
        mesh workers (a create mostly waits for its shim); the batch answers when all have."""
        return AgentMethods.serve_create_many(
            req.body, lambda body: self.manager.create(self.admit(ContainerRequest.from_wire(body))),
            map_items=self._batch_pool.map)

    def admit(self, req: ContainerRequest) -> ContainerRequest:
        """``req`` checked against this host's pool policy (PermissionDenied naming the field), with the
        policy's package directories added as read-only mounts."""
        if self.policy is None:
            raise Unreachable("the Agent is not connected to ZooKeeper yet: no pool policy to check against")
        pool, policy = self.policy.current(POLICY_WAIT)
        uid, gid = resolve_user(req.user)
        check_container(pool, policy, owner=req.owner, user=req.user, uid=uid, gid=gid,
                        mounts=[(m.host, not m.readonly) for m in req.mounts], capabilities=req.capabilities,
                        resolve=os.path.realpath)
        extra = package_mounts(policy, req)
        return dataclasses.replace(req, mounts=req.mounts + extra) if extra else req

    def _destroy(self, req: Request) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        cid = body.get("id")
        if not isinstance(cid, str):
            raise InvalidInput("expected a container id", field="id")
        return {"id": cid, "destroyed": self.manager.destroy(cid)}

    def _logs(self, req: Request) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        cid = body.get("container", body.get("id"))
        if not isinstance(cid, str):
            raise InvalidInput("expected a container id", field="container")
        return self.manager.logs(cid, str(body.get("stream", "stdout")), body.get("tail", 100),
                                 body.get("offset"))

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self) -> None:
        self.manager.start()
        zk = connect(self.config.zookeeper, session_timeout=self.config.session_timeout,
                     credential=self.config.zk_credential(), ca=self.config.zookeeper_ca)
        policy = self.policy = HostPolicy(zk, self.paths, self.config.id, self.config.agent.pool).start()
        watch = watch_leader(zk, self.paths, "resman", self._on_leader)
        master_watch = watch_leader(zk, self.paths, "appmaster", self._on_master)
        try:
            while not self.stop_event.wait(1.0):
                try:
                    self.manager.poll()
                except GalaxyError:
                    log.exception("polling containers failed")
        finally:
            master_watch.cancel()
            watch.cancel()
            policy.close()
            if self._client is not None:
                self._client.close()
            self._batch_pool.shutdown(wait=True)
            self.manager.close()
            zk.stop()
            zk.close()

    def stop(self) -> None:
        self.stop_event.set()


def package_mounts(policy: PoolPolicy, req: ContainerRequest) -> tuple[MountAsk, ...]:
    """The policy's ``file://`` package directories as read-only mounts at the same path: those that
    exist on this host, are not where Galaxy mounts its own (``/tmp``, ``/proc``, ``/dev``, the work dir)
    and do not nest with a disk or mount the job has (one would hide the other)."""
    taken = [d.path for d in req.disks] + [m.path for m in req.mounts]
    out = []
    for directory in policy.file_dirs():
        if any(at_or_below(directory, t) or at_or_below(t, directory) for t in taken):
            log.info("%s: package directory %s not bound: the job has a disk or mount there", req.id, directory)
            continue
        if not os.path.isdir(directory) or any(at_or_below(directory, r) for r in (*RESERVED_INSIDE, "/galaxy")):
            log.info("%s: package directory %s not bound: not a directory here, or a path Galaxy makes "
                     "inside every container", req.id, directory)
            continue
        out.append(MountAsk(directory, directory, True))
    return tuple(out)


def run_agent(config: DaemonConfig) -> None:
    daemon = AgentDaemon(config)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.trusted.reload())
    daemon.run()
