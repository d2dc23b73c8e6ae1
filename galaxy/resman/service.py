"""ResMan's leader-side service: plugs the engine into the replicated-leader loop and the mesh.

On election it reads `state/` (groups, placements, hosts), enters safe mode if hosts were known,
starts usage accounting (`accounting.Meter`), registers the routes of
`galaxy.protocol.resman.ResManApi` — each checking the caller's authority, from the key that
connected, against the daemon's `Directory` — and starts the engine's loop; on demotion it stops
the loop and drops everything in memory (the next leader rebuilds from state).

A host's name on the mesh is its Agent's alone (`HostIdentities`): the mesh binds an identity to
the key that holds it, and ResMan's policy lets an Agent key hold only the name of a host it speaks
for, and any other key no known host's name — so create requests, which carry jobs' worker keys,
reach only the host's own key, whatever that key first sends (a registration, a poll answer, a
heartbeat).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import Leadership, Paths, StateStore
from galaxy.daemon.config import DaemonConfig
from galaxy.daemon.replica import RoleService
from galaxy.errors import GalaxyError, InternalError, InvalidInput, NotFound, PermissionDenied
from galaxy.mesh import IdentityPolicy, KeyRing, PeerInfo, Request, Server
from galaxy.protocol import AgentMethods
from galaxy.protocol.resman import ResManApi, logs_request
from galaxy.resman.accounting import Meter
from galaxy.resman.admin import AdminApi
from galaxy.resman.engine import Engine
from galaxy.resman.groups import GroupApi
from galaxy.resman.hosts import HostRegistry
from galaxy.resman.settings import ResManSettings
from galaxy.resman.state import load
from galaxy.tenancy import (
    AGENT,
    APPMASTER,
    POOLS,
    Directory,
    Principal,
    check_pool_name,
    kind_of,
    speaks_for_host,
)
from galaxy.trace import Tracer

log = logging.getLogger(__name__)


def check_registration(req: Request) -> dict[str, Any]:
    facts = req.body
    if not isinstance(facts, dict) or facts.get("id") != req.peer:
        raise InvalidInput("registration must carry the agent's own id", field="id")
    if not isinstance(facts.get("capacity"), dict) or not isinstance(facts.get("free"), dict):
        raise InvalidInput("registration must carry capacity and free", field="capacity")
    if not isinstance(facts.get("containers", []), list):
        raise InvalidInput("expected a list of containers", field="containers")
    return facts


class PoolDeclarer:
    """Declares the pools Agents register in, as Nomad does: a host's pool exists once a host is in it.

    The declaration is a ZooKeeper write, and registrations arrive on the mesh I/O thread, so it
    happens on a short-lived thread of its own (one per new pool at a time); the registration is not
    held up. An existing record (an administrator's `pool.create`, with its description) is kept.
    """

    def __init__(self, store: StateStore | None, directory: Directory) -> None:
        self.store = store
        self.directory = directory
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._refused: set[str] = set()

    def ensure(self, pool: str) -> None:
        if self.directory.has_pool(pool):
            return
        with self._lock:
            if pool in self._busy or pool in self._refused:
                return
            self._busy.add(pool)
        threading.Thread(target=self._declare, args=(pool,), name="resman-declare-pool", daemon=True).start()

    def _declare(self, pool: str) -> None:
        try:
            check_pool_name(pool)
            if self.store is not None and self.store.get(POOLS, pool) is None:
                self.store.put(POOLS, pool, {"created": time.time(), "by": "resman"})
            self.directory.add_pool(pool)
            log.info("declared pool %s: an Agent registered in it", pool)
        except InvalidInput as err:
            with self._lock:
                self._refused.add(pool)
            log.error("an Agent registered in pool %r, which cannot be declared: %s", pool, err)
        except GalaxyError as err:      # not leading any more, or ZooKeeper away: the next registration retries
            log.warning("declaring pool %s failed: %s", pool, err)
        finally:
            with self._lock:
                self._busy.discard(pool)


class HostIdentities(IdentityPolicy):
    """The mesh identity policy of ResMan's server: an Agent's identity is its host's name, and that
    name is its key's only.

    * An Agent key may take only the name of a host it speaks for (`speaks_for_host`: a per-host key
      `agent-<host>` that one host; the shared `agent` key of one-box and test clusters any host).
    * Any other key may take no host's name: not a host ResMan knows (registered now or in
      `state/hosts`), nor one a per-host key `agent-<name>` exists for (a host not yet seen).
    * An Agent key owns the names it speaks for: a name another key took first (a host ResMan cannot
      know yet, with the shared key) is taken back from it when the host's Agent comes.

    With the mesh's own binding (another key never takes a held identity), the peer ResMan sends a
    host's requests to is that host's Agent key. Runs in the mesh I/O thread on a new claim only."""

    def __init__(self, hosts: HostRegistry, keyring: KeyRing) -> None:
        self.hosts = hosts
        self.keyring = keyring

    def refuse(self, identity: str, key_name: str | None) -> str | None:
        if kind_of(key_name) == AGENT:
            if speaks_for_host(key_name, identity):
                return None
            return f"the Agent key {key_name!r} does not speak for host {identity!r}"
        if identity in self.hosts.entries or self.keyring.has_name(f"{AGENT}-{identity}"):
            return f"{identity!r} is a host's name: only that host's Agent key may use it"
        return None

    def owns(self, identity: str, key_name: str | None) -> bool:
        return kind_of(key_name) == AGENT and speaks_for_host(key_name, identity)


def agent_key(who: Principal, method: str) -> None:
    if who.kind != AGENT:
        raise PermissionDenied(f"{method} is for Agents; key {who.name!r} ({who.kind}) is not an Agent's",
                               field="key")


def appmaster_or_admin(who: Principal, method: str) -> None:
    if who.kind != APPMASTER and not who.is_admin:
        raise PermissionDenied(f"{method} is for the AppMaster and administrators; key {who.name!r} ({who.kind}) "
                               "is neither", field="key")


def serve(engine: Engine, server: Server, directory: Directory) -> None:
    """Register every ResMan route on `server`, each checking the caller's authority first.

    `directory` says who a key is (galaxy.tenancy); the caller is always the key that connected.
    Agent methods take only `agent*` keys; groups and logs the AppMaster or administrators;
    host and safe-mode methods check per host and pool in `AdminApi`.
    """
    groups, admin = GroupApi(engine), AdminApi(engine, directory)
    engine.pool_seen = PoolDeclarer(engine.store, directory).ensure    # every registration, also by poll
    server.identity_policy = HostIdentities(engine.hosts, server.keyring)

    def who(req: Request) -> Principal:
        return directory.principal(req.key_name)

    def register(req: Request) -> dict[str, Any]:
        agent_key(who(req), ResManApi.REGISTER)
        facts = check_registration(req)
        if not speaks_for_host(req.key_name, facts["id"]):
            raise PermissionDenied(f"key {req.key_name!r} may not register as host {facts['id']!r}", field="id")
        engine.agent_registered(facts, req.key_name)
        return {"ok": True}

    def container_state(req: Request) -> None:
        if kind_of(req.key_name) != AGENT or not speaks_for_host(req.key_name, req.peer):
            log.warning("ignoring a %s event from key %r for host %r: not that host's Agent",
                        ResManApi.CONTAINER_STATE, req.key_name, req.peer)
            return
        if isinstance(req.body, dict):
            engine.agent_event(req.peer, req.body)

    def logs(req: Request) -> Any:
        appmaster_or_admin(who(req), ResManApi.CONTAINER_LOGS)
        ask = logs_request(req.body)
        with engine.lock:
            c = engine.containers.get(ask["container"])
            host = c.host if c is not None else None
        if host is None:
            raise NotFound(f"no container {ask['container']!r} on any host", field="container")
        return server.request(host, AgentMethods.LOGS, {"id": ask["container"], "stream": ask["stream"],
                                                       "tail": ask["tail"], "offset": ask["offset"]}, timeout=10.0)

    def for_groups(method: str, handler: Callable[[Any], Any]) -> Callable[[Request], Any]:
        def guarded(req: Request) -> Any:
            appmaster_or_admin(who(req), method)
            return handler(req.body)
        return guarded

    def for_hosts(handler: Callable[[Any, Principal], Any]) -> Callable[[Request], Any]:
        return lambda req: handler(req.body, who(req))

    def agent_peer(fn: Callable[[str], None]) -> Callable[[PeerInfo], None]:
        # Only an Agent's connection is a host's: a user's client may pick any routing identity.
        def on_peer(peer: PeerInfo) -> None:
            if kind_of(peer.key_name) == AGENT and speaks_for_host(peer.key_name, peer.identity):
                fn(peer.identity)
        return on_peer

    server.route(ResManApi.REGISTER, register)
    server.on_event(ResManApi.CONTAINER_STATE, container_state)
    server.on_peer_lost(agent_peer(engine.agent_lost))
    server.on_peer_joined(agent_peer(engine.agent_joined))
    group_routes: dict[str, Callable[[Any], Any]] = {
        ResManApi.GROUP_CREATE: groups.create,
        ResManApi.GROUP_UPDATE: groups.update,
        ResManApi.GROUP_SCALE: groups.scale,
        ResManApi.GROUP_REMOVE: groups.remove,
        ResManApi.GROUP_LIST: groups.list,
        ResManApi.GROUP_SHOW: groups.show,
        ResManApi.GROUP_EXTRA: groups.extra,
        ResManApi.GROUP_RELEASE: groups.release,
    }
    host_routes: dict[str, Callable[[Any, Principal], Any]] = {
        ResManApi.HOSTS_LIST: admin.hosts,
        ResManApi.HOST_TRACE: admin.host_trace,
        ResManApi.HOST_OFFLINE: admin.offline,
        ResManApi.HOST_ONLINE: admin.online,
        ResManApi.HOST_DRAIN: admin.drain,
        ResManApi.HOST_LABEL: admin.label,
        ResManApi.HOST_UNLABEL: admin.unlabel,
        ResManApi.HOST_MOVE: admin.move,
        ResManApi.SAFEMODE_ENTER: admin.safemode_enter,
        ResManApi.SAFEMODE_LEAVE: admin.safemode_leave,
        ResManApi.SAFEMODE_STATUS: admin.safemode_status,
    }
    for method, handler in group_routes.items():
        server.route(method, for_groups(method, handler), blocking=True)
    for method, host_handler in host_routes.items():
        server.route(method, for_hosts(host_handler), blocking=True)
    server.route(ResManApi.CONTAINER_LOGS, logs, blocking=True)


class ResManService(RoleService):
    def __init__(self, config: DaemonConfig, settings: ResManSettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings or ResManSettings.load(config.resman)
        self.engine: Engine | None = None
        self.tracer: Tracer | None = None
        self.meter: Meter | None = None

    def on_leading(self, leadership: Leadership, server: Server, zk: KazooClient) -> None:
        if self.directory is None:
            raise InternalError("ResMan leads only with a Directory of users and pools (set by ReplicatedDaemon)")
        paths = Paths(self.config.cluster)
        store = StateStore(zk, paths, leadership=leadership)
        self.tracer = Tracer(zk, paths, "resman")
        engine = Engine(self.settings, server=server, store=store, tracer=self.tracer)
        engine.state_key = self.config.sealing_key()
        engine.load(load(store))
        self.meter = Meter(lambda: engine.groups, store, self.settings).start()
        engine.meter = self.meter
        serve(engine, server, self.directory)
        self.engine = engine.start()
        log.info("ResMan serving: %d groups, %d containers, %d hosts known; safe mode %s",
                 len(engine.groups), len(engine.containers), len(engine.hosts), engine.safe.on)

    def on_demoted(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.meter is not None:
            self.meter.stop()
            self.meter = None
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
