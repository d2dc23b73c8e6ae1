"""Simulated peers of the AppMaster: a ResMan that speaks the real mesh contract with in-memory
groups, and a fleet of AppWorkers that speak the real pull protocol over raw CURVE DEALERs.

Both use real sockets, real CURVE keys and the real leader records in ZooKeeper; only what is behind
them (containers, services) is simulated. One thread drives the whole fleet (a zmq Poller over all
DEALERs), so a thousand workers cost one thread — this is what the 1,000-pod benchmark runs.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Paths, publish_leader, watch_leader
from galaxy.errors import Conflict, NotFound
from galaxy.mesh import Keypair, KeyRing, Request, Server, new_route, wire
from galaxy.protocol.pod import EXEC_RESULT, REPORT
from galaxy.protocol.podtoken import SEED_VAR, TOKEN_FIELD, pod_token


# ---- ResMan ------------------------------------------------------------------------------------------
class ResManDouble:
    """Implements the group part of the ResMan contract; containers appear at once on fake hosts."""

    def __init__(self, zk: KazooClient, paths: Paths, appmaster_public: str, *, hosts: int = 3,
                 on_create: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                 on_destroy: Callable[[str], None] | None = None) -> None:
        self.keypair = Keypair.generate()
        ring = KeyRing({appmaster_public: "appmaster"})
        self.server = Server("tcp://127.0.0.1:0", self.keypair, ring, heartbeat_interval=0.5, name="resman-double")
        self.groups: dict[str, dict[str, Any]] = {}
        self.hosts = [f"sim-host-{i}" for i in range(hosts)]
        self.host_pools: dict[str, str] = {}      # host -> pool, when not "default"
        self.calls: list[tuple[str, Any]] = []
        self.on_create = on_create or (lambda group, container: None)
        self.on_destroy = on_destroy or (lambda cid: None)
        self._lock = threading.Lock()
        self._ports = itertools.count(31000)
        for method, fn in {"group.create": self._create, "group.update": self._update, "group.scale": self._scale,
                           "group.remove": self._remove, "group.show": self._show, "group.list": self._list,
                           "group.extra": self._extra, "group.release": self._release,
                           "hosts.list": self._hosts, "container.logs": self._logs}.items():
            self.server.route(method, fn)
        self.server.start()
        publish_leader(zk, paths, "resman", LeaderInfo("resman-double", self.server.endpoint, self.keypair.public))

    def close(self) -> None:
        self.server.stop()

    def _log(self, req: Request) -> dict[str, Any]:
        self.calls.append((req.method, req.body))
        return req.body if isinstance(req.body, dict) else {}

    def _new_container(self, group: dict[str, Any], avoid: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        count = len(group["containers"])
        candidates = [h for h in self.hosts if h not in avoid] or self.hosts
        host = candidates[count % len(candidates)]
        cid = f"{group['group']}.{secrets.token_hex(3)}"
        ports = {p["name"]: p.get("port") or next(self._ports) for p in group["container"]["ports"]}
        container = {"id": cid, "host": host, "address": "127.0.0.1", "state": "running", "ports": ports,
                     "version": group["version"], "exit": None, "reason": ""}
        group["containers"][cid] = container
        self.on_create(group, container)

    def _destroy(self, group: dict[str, Any], cid: str) -> None:
        group["containers"].pop(cid, None)
        self.on_destroy(cid)

    def _create(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            existing = self.groups.get(body["group"])
            if existing is not None:
                if existing["container"] != body["container"]:
                    raise Conflict("group exists with another spec", field="group")
                return {"group": body["group"], "version": existing["version"]}
            group = {**body, "version": 1, "containers": {}}
            self.groups[body["group"]] = group
            for _ in range(body["replicas"]):
                self._new_container(group)
        return {"group": body["group"], "version": 1}

    def _update(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            group = self._group(body["group"])
            if "container" in body and body["container"] != group["container"]:
                group["container"] = body["container"]
                group["version"] += 1
                for cid in [c for c, v in group["containers"].items() if v["version"] != group["version"]]:
                    self._destroy(group, cid)
                    self._new_container(group)
            if "replicas" in body:
                self._resize(group, body["replicas"])
            return {"group": group["group"], "version": group["version"]}

    def _resize(self, group: dict[str, Any], replicas: int) -> None:
        group["replicas"] = replicas
        while len(group["containers"]) < replicas:
            self._new_container(group)
        while len(group["containers"]) > replicas:
            self._destroy(group, sorted(group["containers"])[-1])

    def _scale(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            group = self._group(body["group"])
            self._resize(group, body["replicas"])
        return {"group": body["group"], "replicas": body["replicas"]}

    def _remove(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            group = self.groups.pop(body["group"], None)
            for cid in list(group["containers"]) if group else []:
                self._destroy(group, cid)  # type: ignore[arg-type]
        return {"group": body["group"], "removed": group is not None}

    def _group(self, name: str) -> dict[str, Any]:
        group = self.groups.get(name)
        if group is None:
            raise NotFound(f"no group {name}", field="group")
        return group

    def _show(self, req: Request) -> Any:
        with self._lock:
            group = self._group(req.body["group"])
            return {"group": group["group"], "replicas": group["replicas"], "version": group["version"],
                    "containers": [dict(c) for c in group["containers"].values()]}

    def _list(self, req: Request) -> Any:
        with self._lock:
            return [{"group": g["group"], "replicas": g["replicas"]} for g in self.groups.values()]

    def _extra(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            group = self._group(body["group"])
            for _ in range(body["count"]):
                self._new_container(group, set(body.get("avoid_hosts", [])))
        return {"group": body["group"], "extra": body["count"]}

    def _release(self, req: Request) -> Any:
        body = self._log(req)
        with self._lock:
            self._destroy(self._group(body["group"]), body["container"])
        return {"group": body["group"]}

    def _hosts(self, req: Request) -> Any:
        return [{"id": h, "pool": self.host_pools.get(h, "default"), "labels": [], "address": "127.0.0.1", "status": "alive",
                 "admin": "online", "capacity": {"cpu": 4, "memory": 8 << 30, "disks": {}},
                 "free": {"cpu": 2.0, "memory": 4 << 30, "disks": {}}, "containers": 0} for h in self.hosts]

    def _logs(self, req: Request) -> Any:
        return {"data": f"log of {req.body['container']}\n", "offset": 0}


# ---- AppWorkers --------------------------------------------------------------------------------------
@dataclass
class SimWorker:
    pod: str
    job: str
    keys: Keypair
    ports: dict[str, int]
    status: str = "PENDING"
    version: str | None = None
    seq: int = 0
    restarts: int = 0
    starts: int = 0                       # how many times the "service" was started
    exit_code: int | None = None
    signal: int | None = None
    message: str = ""
    fail_start: set[str] = field(default_factory=set)   # versions whose start fails
    batch_exit: int | None = None         # batch: exit with this code once running
    due: float = 0.0                      # when the next transition happens
    then: Callable[[], None] | None = None
    sock: Any = None
    next_report: float = 0.0
    in_flight: int | None = None
    sent_at: float = 0.0
    commands: list[str] = field(default_factory=list)
    token: str = ""                       # the pod token the Agent would have derived (podtoken)

    def set(self, status: str, **kw: Any) -> None:
        self.status = status
        self.seq += 1
        for k, v in kw.items():
            setattr(self, k, v)
        self.next_report = 0.0

    def report(self) -> dict[str, Any]:
        return {"pod": self.pod, "job": self.job, "status": self.status, "version": self.version,
                "host": "sim", "exit_code": self.exit_code, "signal": self.signal, "restarts": self.restarts,
                "endpoint": {"address": "127.0.0.1", "ports": self.ports}, "message": self.message, "seq": self.seq,
                TOKEN_FIELD: self.token}


class SimFleet:
    """All simulated workers, driven by one thread; follows the AppMaster leader through ZooKeeper."""

    def __init__(self, zk: KazooClient, paths: Paths, *, step_time: float = 0.05) -> None:
        self.workers: dict[str, SimWorker] = {}
        self.step_time = step_time
        self.default_fail: set[str] = set()
        self.batch_exit: int | None = None
        self._ctx = zmq.Context()
        self._lock = threading.Lock()
        self._leader: LeaderInfo | None = None
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._pending_add: list[SimWorker] = []
        self._pending_drop: list[str] = []
        self._reconnect = False
        self._thread = threading.Thread(target=self._run, name="sim-fleet", daemon=True)
        self._thread.start()
        self._watch = watch_leader(zk, paths, "appmaster", self._on_leader)

    def _on_leader(self, info: LeaderInfo | None) -> None:
        with self._lock:
            self._leader = info
            self._reconnect = True

    def add(self, group: dict[str, Any], container: dict[str, Any]) -> None:
        env = group["container"]["env"]
        keys = Keypair(env["GALAXY_WORKER_PUB"], env["GALAXY_WORKER_KEY"])
        worker = SimWorker(container["id"], group["group"], keys, dict(container["ports"]),
                           fail_start=set(self.default_fail), batch_exit=self.batch_exit,
                           token=pod_token(env[SEED_VAR], container["id"]))
        with self._lock:
            self._pending_add.append(worker)

    def drop(self, cid: str) -> None:
        with self._lock:
            self._pending_drop.append(cid)

    def kill_service(self, pod: str, sig: int = 9) -> None:
        with self._lock:
            w = self.workers[pod]
            w.set("KILLED", signal=sig, exit_code=None, message=f"killed by signal {sig}")

    def close(self) -> None:
        self._stop.set()
        self._watch.cancel()
        self._thread.join(timeout=5)
        self._ctx.destroy(linger=0)

    # ---- the one thread ------------------------------------------------------------------------------
    def _connect(self, w: SimWorker, poller: zmq.Poller, socks: dict[Any, SimWorker]) -> None:
        if w.sock is not None:
            poller.unregister(w.sock)
            socks.pop(w.sock, None)
            w.sock.close(0)
            w.sock = None
        leader = self._leader
        if leader is None:
            return
        s = self._ctx.socket(zmq.DEALER)
        s.linger = 0
        s.routing_id = new_route(w.pod.encode())
        s.curve_serverkey = leader.public_key.encode()
        s.curve_publickey = w.keys.public.encode()
        s.curve_secretkey = w.keys.secret.encode()
        s.connect(leader.endpoint)
        w.sock, w.in_flight, w.next_report = s, None, 0.0
        poller.register(s, zmq.POLLIN)
        socks[s] = w

    def _run(self) -> None:
        poller = zmq.Poller()
        socks: dict[Any, SimWorker] = {}
        while not self._stop.is_set():
            with self._lock:
                added, self._pending_add = self._pending_add, []
                dropped, self._pending_drop = self._pending_drop, []
                reconnect, self._reconnect = self._reconnect, False
                for w in added:
                    self.workers[w.pod] = w
                for cid in dropped:
                    w = self.workers.pop(cid, None)
                    if w is not None and w.sock is not None:
                        poller.unregister(w.sock)
                        socks.pop(w.sock, None)
                        w.sock.close(0)
                workers = list(self.workers.values())
            for w in (workers if reconnect else added):
                self._connect(w, poller, socks)
            for sock, _ in poller.poll(10):
                w = socks.get(sock)
                if w is None:
                    continue
                while True:
                    try:
                        data = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if data == wire.HEARTBEAT:
                        continue
                    msg = wire.parse(data)
                    if msg.type == wire.REP and msg.id == w.in_flight:
                        w.in_flight = None
                        with self._lock:
                            self._apply(w, msg.body, time.monotonic())
                    elif msg.type == wire.ERR and msg.id == w.in_flight:
                        w.in_flight = None
                        w.next_report = time.monotonic() + 0.5
            now = time.monotonic()
            with self._lock:
                for w in workers:
                    if w.then is not None and now >= w.due:
                        fn, w.then = w.then, None
                        fn()
                    if w.sock is None:
                        continue
                    if w.in_flight is not None and now - w.sent_at > 2.0:
                        w.in_flight = None            # lost: report again
                    if w.in_flight is None and now >= w.next_report:
                        w.in_flight = next(self._ids)
                        w.sent_at = now
                        w.next_report = now + 1.0
                        try:  # never block holding the lock: with no AppMaster to take it, a send waits forever
                            w.sock.send(wire.encode(w.in_flight, wire.REQ, REPORT, w.report()), zmq.NOBLOCK)
                        except zmq.Again:
                            w.in_flight = None        # reported again on the next round

    def _later(self, w: SimWorker, delay: float, fn: Callable[[], None]) -> None:
        w.due = time.monotonic() + delay
        w.then = fn

    def _start_service(self, w: SimWorker, version: str) -> None:
        w.set("STARTING", version=version)

        def up() -> None:
            w.starts += 1
            if version in w.fail_start:
                w.set("START_FAILED", exit_code=1, message="sim: start command failed")
            elif w.batch_exit is not None:
                w.set("EXITED", exit_code=w.batch_exit, message="")
            else:
                w.set("RUNNING", exit_code=None, signal=None, message="")
        self._later(w, self.step_time, up)

    def _apply(self, w: SimWorker, body: dict[str, Any], now: float) -> None:
        verb = body.get("command", "none")
        w.next_report = now + min(float(body.get("interval", 1.0)), 1.0)
        if verb != "none":
            w.commands.append(verb)
        if w.then is not None and verb not in ("exec",):
            return                                      # busy: the command is repeated until acted on
        version = body.get("version")
        if verb == "deploy":
            w.set("DEPLOYING")
            self._later(w, self.step_time, lambda: w.set("STOPPED", version=version))
        elif verb == "start":
            self._start_service(w, version)
        elif verb in ("update", "restart"):
            if verb == "restart":
                w.restarts += 1
            self._later(w, float(body.get("delay", 0.0)), lambda: self._start_service(w, version))
        elif verb == "stop":
            w.set("STOPPING")
            self._later(w, self.step_time, lambda: w.set("STOPPED"))
        elif verb == "give_up":
            w.set("FAILED")
        elif verb == "exec":
            ex = body["exec"]
            result = {"pod": w.pod, "exec_id": ex["exec_id"], "exit_code": 0,
                      "stdout": f"{w.pod}:{ex['command']}", "stderr": "", TOKEN_FIELD: w.token}
            try:  # called under the lock: never block (an exec result lost is what a real link may lose)
                w.sock.send(wire.encode(next(self._ids), wire.EVT, EXEC_RESULT, result), zmq.NOBLOCK)
            except zmq.Again:
                pass
