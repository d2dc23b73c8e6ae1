"""ResMan's leader-side service: plugs the engine into the replicated-leader loop and the mesh.

On election it reads `state/` (groups, placements, hosts), enters safe mode if hosts were known,
registers the routes of `galaxy.protocol.resman.ResManApi` and starts the engine's loop; on
demotion it stops the loop and drops everything in memory (the next leader rebuilds from state).
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import Leadership, Paths, StateStore
from galaxy.daemon.config import DaemonConfig
from galaxy.daemon.replica import RoleService
from galaxy.errors import InvalidInput, NotFound
from galaxy.mesh import Request, Server
from galaxy.protocol import AgentMethods
from galaxy.protocol.resman import ResManApi, logs_request
from galaxy.resman.admin import AdminApi
from galaxy.resman.engine import Engine
from galaxy.resman.groups import GroupApi
from galaxy.resman.settings import ResManSettings
from galaxy.resman.state import load
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


def serve(engine: Engine, server: Server) -> None:
    """Register every ResMan route on `server` (also used by tests that run an Engine directly)."""
    groups, admin = GroupApi(engine), AdminApi(engine)

    def register(req: Request) -> dict[str, Any]:
        engine.agent_registered(check_registration(req), req.key_name)
        return {"ok": True}

    def container_state(req: Request) -> None:
        if isinstance(req.body, dict):
            engine.agent_event(req.peer, req.body)

    def logs(req: Request) -> Any:
        ask = logs_request(req.body)
        with engine.lock:
            c = engine.containers.get(ask["container"])
            host = c.host if c is not None else None
        if host is None:
            raise NotFound(f"no container {ask['container']!r} on any host", field="container")
        return server.request(host, AgentMethods.LOGS, {"id": ask["container"], "stream": ask["stream"],
                                                       "tail": ask["tail"], "offset": ask["offset"]}, timeout=10.0)

    server.route(ResManApi.REGISTER, register)
    server.on_event(ResManApi.CONTAINER_STATE, container_state)
    server.on_peer_lost(lambda peer: engine.agent_lost(peer.identity))
    server.on_peer_joined(lambda peer: engine.agent_joined(peer.identity))
    blocking = {
        ResManApi.GROUP_CREATE: lambda r: groups.create(r.body),
        ResManApi.GROUP_UPDATE: lambda r: groups.update(r.body),
        ResManApi.GROUP_SCALE: lambda r: groups.scale(r.body),
        ResManApi.GROUP_REMOVE: lambda r: groups.remove(r.body),
        ResManApi.GROUP_LIST: lambda r: groups.list(r.body),
        ResManApi.GROUP_SHOW: lambda r: groups.show(r.body),
        ResManApi.GROUP_EXTRA: lambda r: groups.extra(r.body),
        ResManApi.GROUP_RELEASE: lambda r: groups.release(r.body),
        ResManApi.CONTAINER_LOGS: logs,
        ResManApi.HOSTS_LIST: lambda r: admin.hosts(r.body),
        ResManApi.HOST_OFFLINE: lambda r: admin.offline(r.body),
        ResManApi.HOST_ONLINE: lambda r: admin.online(r.body),
        ResManApi.HOST_DRAIN: lambda r: admin.drain(r.body),
        ResManApi.HOST_LABEL: lambda r: admin.label(r.body),
        ResManApi.HOST_UNLABEL: lambda r: admin.unlabel(r.body),
        ResManApi.HOST_MOVE: lambda r: admin.move(r.body),
        ResManApi.SAFEMODE_ENTER: lambda r: admin.safemode_enter(r.body),
        ResManApi.SAFEMODE_LEAVE: lambda r: admin.safemode_leave(r.body),
        ResManApi.SAFEMODE_STATUS: lambda r: admin.safemode_status(r.body),
    }
    for method, handler in blocking.items():
        server.route(method, handler, blocking=True)


class ResManService(RoleService):
    def __init__(self, config: DaemonConfig, settings: ResManSettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings or ResManSettings.from_env()
        self.engine: Engine | None = None
        self.tracer: Tracer | None = None

    def on_leading(self, leadership: Leadership, server: Server, zk: KazooClient) -> None:
        paths = Paths(self.config.cluster)
        store = StateStore(zk, paths, leadership=leadership)
        self.tracer = Tracer(zk, paths, "resman")
        engine = Engine(self.settings, server=server, store=store, tracer=self.tracer)
        engine.load(load(store))
        serve(engine, server)
        self.engine = engine.start()
        log.info("ResMan serving: %d groups, %d containers, %d hosts known; safe mode %s",
                 len(engine.groups), len(engine.containers), len(engine.hosts), engine.safe.on)

    def on_demoted(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
