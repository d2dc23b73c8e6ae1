"""A simulated fleet: thousands of fake Agents in one process, speaking the real Agent protocol.

Each simulated host is one raw ZeroMQ DEALER (CURVE, the agent key, identity = host id, routed as
a mesh Client is: id + nonce) connected to the ResMan leader, exactly like `galaxy-agent`: it
registers (`agent.register` with its facts and containers) on every (re)connection, heartbeats,
answers `agent.resources` (`{"unchanged": digest, "free"}` when the poll's digest is its list's, as
the Agent does), `container.create` / `destroy` / `list` with fake containers (resources are
accounted like the Agent's ledger, disk pool and port table do, so a create can fail for the same
reasons), and sends `container.state` events for every
change but a create (its answer says it). No kernel object is made.

Hosts are shared among a few worker threads, each owning its sockets (ZeroMQ sockets are not
thread-safe), instead of one mesh Client thread per Agent: 10,000 hosts cost a few threads. A worker
waits on its sockets' notification descriptors (`zmq.FD`) with epoll, not with `zmq.Poller`: a
`zmq_poll` asks every one of its thousands of sockets for its events on each wake-up (1.2 ms for
2,500 sockets, measured), which made the simulated fleet, not ResMan, the bound of every benchmark.
Faults on purpose: `stop_host` (silent, as if powered off — its containers stay and come
back with it), `start_host`, `fail_creates`, `exit_container`; `batch_creates=False` plays an
Agent that predates `container.create_many`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import resource
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import zmq

from galaxy.errors import GalaxyError, InvalidInput, NotFound, ResourceUnavailable
from galaxy.mesh import Keypair, new_route, wire
from galaxy.protocol import AgentMethods, ContainerRequest
from galaxy.protocol.resman import ResManApi

REGISTER_RETRY = 2.0          # first wait for a registration answer; doubles per try up to the cap
REGISTER_RETRY_MAX = 10.0     # 10,000 hosts retrying every 2 s re-registered 5x over a busy ResMan
# A host's list digest is this process's epoch and the host's change count: cheap, and a restarted fleet
# (whose counts start again) never repeats a digest ResMan holds.
EPOCH = os.urandom(4).hex()


@dataclass
class SimHostSpec:
    """What one simulated host offers."""

    id: str
    pool: str = "default"
    labels: tuple[str, ...] = ()
    cpu: float = 16.0
    memory: int = 64 << 30
    disks: tuple[tuple[str, int], ...] = (("ssd", 512 << 30),)     # (medium, capacity)
    port_range: tuple[int, int] = (20000, 20999)
    address: str = ""


@dataclass(eq=False)
class SimHost:
    spec: SimHostSpec
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: dict[str, tuple[float, int, dict[str, int]]] = field(default_factory=dict)
    ports_used: set[int] = field(default_factory=set)
    fail_next: int = 0
    up: bool = True
    registered: bool = False
    creates: int = 0
    destroys: int = 0
    socket: Any = None
    fd: int = -1                        # the socket's zmq.FD, registered with its worker's epoll
    last_beat: float = 0.0
    register_sent: float = 0.0
    register_wait: float = REGISTER_RETRY
    changes: int = 0                    # bumped on every change of the container list (the digest)

    @property
    def id(self) -> str:
        return self.spec.id

    # ---- the Agent's bookkeeping, without the kernel --------------------------------------------
    def free(self) -> dict[str, Any]:
        cpu = self.spec.cpu - sum(c for c, _, _ in self.held.values())
        mem = self.spec.memory - sum(m for _, m, _ in self.held.values())
        disks = {medium: cap for medium, cap in self.spec.disks}
        for _, _, used in self.held.values():
            for medium, size in used.items():
                if medium in disks:
                    disks[medium] -= size
        lo, hi = self.spec.port_range
        return {"cpu": round(cpu, 6), "memory": mem, "disks": disks, "ports": hi - lo + 1 - len(self.ports_used)}

    def digest(self) -> str:
        return f"{EPOCH}.{self.changes}"

    def resources(self, known: Any = None) -> dict[str, Any]:
        digest = self.digest()
        if known == digest:
            return {"unchanged": digest, "free": self.free()}
        return {"capacity": {"cpu": self.spec.cpu, "memory": self.spec.memory}, "free": self.free(),
                "containers": list(self.containers.values()), "digest": digest}

    def facts(self) -> dict[str, Any]:
        s = self.spec
        return {"id": s.id, "pool": s.pool, "labels": list(s.labels), "address": s.address or "127.0.0.1",
                "port_range": list(s.port_range),
                "disks": [{"path": f"/sim/{s.id}/{m}", "medium": m, "capacity": c} for m, c in s.disks],
                **self.resources()}

    def create(self, body: Any) -> dict[str, Any]:
        req = ContainerRequest.from_wire(body)
        existing = self.containers.get(req.id)
        if existing is not None:
            return existing                     # a retried create: same answer, nothing doubled
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ResourceUnavailable(f"simulated failure creating {req.id} on {self.id}", field="id")
        free = self.free()
        if req.cpu > free["cpu"] + 1e-9:
            raise ResourceUnavailable(f"not enough cpu: asked {req.cpu:g}, free {free['cpu']:g}", field="cpu")
        if req.memory > free["memory"]:
            raise ResourceUnavailable("not enough memory", field="memory")
        disks: dict[str, int] = {}
        for d in req.disks:
            disks[d.medium] = disks.get(d.medium, 0) + d.size
        for medium, size in disks.items():
            if medium != "tmpfs" and size > free["disks"].get(medium, 0):
                raise ResourceUnavailable(f"not enough {medium} disk", field="disks")
        ports = self._ports(req)
        self.held[req.id] = (req.cpu, req.memory, disks)
        self.ports_used.update(ports.values())
        self.creates += 1
        info = {"id": req.id, "group": req.group, "state": "running", "cpu": req.cpu, "memory": req.memory,
                "ports": ports, "exit": None,
                "disks": [{"medium": d.medium, "size": d.size, "path": d.path} for d in req.disks],
                "created_at": time.time(), "pid": 1000 + self.creates}
        self.containers[req.id] = info
        self.changes += 1
        return info

    def _ports(self, req: ContainerRequest) -> dict[str, int]:
        lo, hi = self.spec.port_range
        fixed = {p.port for p in req.ports if p.port is not None}
        if fixed & self.ports_used:
            raise ResourceUnavailable(f"port {sorted(fixed & self.ports_used)[0]} is taken", field="ports")
        given: dict[str, int] = {}
        candidates = (p for p in range(lo, hi + 1) if p not in self.ports_used and p not in fixed)
        for p in req.ports:
            if p.port is not None:
                given[p.name] = p.port
            else:
                port = next(candidates, None)
                if port is None:
                    raise ResourceUnavailable("no free port in the range", field="ports")
                given[p.name] = port
        return given

    def destroy(self, container_id: str) -> bool:
        info = self.containers.pop(container_id, None)
        if info is None:
            return False
        self.held.pop(container_id, None)
        self.ports_used.difference_update(info["ports"].values())
        self.destroys += 1
        self.changes += 1
        return True


class _Worker:
    """One thread, its share of the hosts, their sockets and one epoll.

    A socket's `zmq.FD` becomes readable when commands reach the socket (a message arrived, the
    connection changed), and reading the socket or asking its `EVENTS` consumes that signal. So a
    host is read until its socket says `Again`, and after every send on it (which may consume the
    signal of a message that arrived meanwhile) its `EVENTS` is asked; a host with input waiting goes
    to `ready` and is read in this same round, epoll or not.
    """

    def __init__(self, fleet: SimFleet, name: str) -> None:
        self.fleet = fleet
        self.epoll = select.epoll()
        self.sockets: dict[int, SimHost] = {}       # zmq.FD -> host
        self.ready: list[SimHost] = []
        self.commands: deque[Callable[[], None]] = deque()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.epoll.register(self.wake_fd, select.EPOLLIN)
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.running = True
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def post(self, fn: Callable[[], None]) -> None:
        self.commands.append(fn)
        os.eventfd_write(self.wake_fd, 1)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))

    # ---- sockets ------------------------------------------------------------------------------
    def connect(self, host: SimHost) -> None:
        f = self.fleet
        sock = f.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.routing_id = new_route(host.id.encode())   # as a mesh Client does: no one else can take it
        sock.curve_serverkey = f.server_public.encode()
        sock.curve_publickey = f.keypair.public.encode()
        sock.curve_secretkey = f.keypair.secret.encode()
        sock.reconnect_ivl = 100
        sock.reconnect_ivl_max = 2000
        sock.sndhwm = 10_000
        sock.connect(f.endpoint)
        host.socket = sock
        host.fd = sock.getsockopt(zmq.FD)
        host.registered = False
        host.register_wait = REGISTER_RETRY
        self.sockets[host.fd] = host
        self.epoll.register(host.fd, select.EPOLLIN)
        self.register(host)

    def disconnect(self, host: SimHost) -> None:
        sock = host.socket
        if sock is not None:
            self.epoll.unregister(host.fd)
            del self.sockets[host.fd]
            sock.close(0)
            host.socket, host.fd = None, -1
        host.registered = False

    def send(self, host: SimHost, data: bytes) -> None:
        sock = host.socket
        if sock is not None:
            try:
                sock.send(data, zmq.NOBLOCK)
                host.last_beat = time.monotonic()   # any message is a sign of life: no heartbeat due
            except zmq.Again:
                self.fleet.stats["send_dropped"] += 1
            if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self.ready.append(host)

    def register(self, host: SimHost) -> None:
        host.register_sent = time.monotonic()
        self.send(host, wire.encode(next(self.ids), wire.REQ, ResManApi.REGISTER, host.facts()))

    # ---- loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        interval = self.fleet.heartbeat_interval
        next_scan = 0.0
        while self.running:
            now = time.monotonic()
            wait = 0.05 if not self.timers else max(0.0, min(0.05, self.timers[0][0] - now))
            for fd, _ in self.epoll.poll(0.0 if self.ready else wait + 0.001):
                if fd == self.wake_fd:
                    try:
                        os.eventfd_read(self.wake_fd)
                    except BlockingIOError:
                        pass
                    continue
                host = self.sockets.get(fd)
                if host is not None:
                    self.ready.append(host)
            ready, self.ready = self.ready, []
            for host in ready:
                if host.socket is not None:
                    self.receive(host, host.socket)
            while self.commands:
                self.commands.popleft()()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if now < next_scan:
                continue
            # Heartbeats and register retries need a look at every host, but not on every wake-up: under
            # load the loop wakes thousands of times a second and the scan would dominate the worker.
            next_scan = now + interval / 10
            for host in self.sockets.values():
                if now - host.last_beat >= interval:       # nothing sent for an interval, as the mesh Client
                    self.send(host, wire.HEARTBEAT)
                if not host.registered and now - host.register_sent >= host.register_wait:
                    host.register_wait = min(REGISTER_RETRY_MAX, host.register_wait * 2)
                    self.register(host)
        for host in list(self.sockets.values()):
            self.disconnect(host)
        self.epoll.close()
        os.close(self.wake_fd)

    def receive(self, host: SimHost, sock: Any) -> None:
        stats = self.fleet.stats
        for _ in range(256):
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if data == wire.HEARTBEAT:
                continue
            try:
                msg = wire.parse(data)
            except wire.WireError:
                stats["malformed"] += 1
                continue
            if msg.type == wire.REQ:
                stats["requests"] += 1
                self.serve(host, msg)
            elif msg.type in (wire.REP, wire.ERR) and msg.method == ResManApi.REGISTER:
                host.registered = msg.type == wire.REP
                host.register_wait = REGISTER_RETRY
                stats["registered" if host.registered else "register_refused"] += 1
        self.ready.append(host)      # more may wait: read on in the next round, after the others

    def serve(self, host: SimHost, msg: wire.Message) -> None:
        delay = self.fleet.create_delay if msg.method in (AgentMethods.CREATE, AgentMethods.CREATE_MANY) else 0.0
        if delay > 0:
            self.later(delay, lambda: self.answer(host, msg))
        else:
            self.answer(host, msg)

    def answer(self, host: SimHost, msg: wire.Message) -> None:
        if host.socket is None:
            return
        try:
            body = self.handle(host, msg.method, msg.body)
            data = wire.encode(msg.id, wire.REP, msg.method, body)
        except GalaxyError as err:
            data = wire.encode_error(msg.id, msg.method, err)
        self.send(host, data)

    def handle(self, host: SimHost, method: str, body: Any) -> Any:
        if method == AgentMethods.RESOURCES:
            answer = host.resources(body.get("digest") if isinstance(body, dict) else None)
            if "unchanged" in answer:
                self.fleet.stats["polls_unchanged"] += 1
            return answer
        if method == AgentMethods.CREATE:
            self.fleet.stats["create_requests"] += 1
            return self.create(host, body)
        if method == AgentMethods.CREATE_MANY and self.fleet.batch_creates:
            self.fleet.stats["create_many_requests"] += 1
            return AgentMethods.serve_create_many(body, lambda one: self.create(host, one))
        if method == AgentMethods.DESTROY:
            cid = body.get("id") if isinstance(body, dict) else None
            if not isinstance(cid, str):
                raise InvalidInput("expected a container id", field="id")
            done = host.destroy(cid)
            if done and self.fleet.state_events:
                self.event(host, {"id": cid, "state": "destroyed"})
            return {"id": cid, "destroyed": done}
        if method == AgentMethods.LIST:
            return list(host.containers.values())
        raise NotFound(f"no method {method!r}", field="method")

    def create(self, host: SimHost, body: Any) -> dict[str, Any]:
        return host.create(body)        # no `container.state` event: the answer says it runs, as the Agent's

    def event(self, host: SimHost, info: dict[str, Any]) -> None:
        self.send(host, wire.encode(next(self.ids), wire.EVT, ResManApi.CONTAINER_STATE, info))


class SimFleet:
    """Many fake Agents connected to one ResMan endpoint (see the module docs)."""

    def __init__(self, endpoint: str, server_public: str, keypair: Keypair, hosts: Iterable[SimHostSpec], *,
                 threads: int = 2, heartbeat_interval: float = 1.0, create_delay: float = 0.0,
                 state_events: bool = True, batch_creates: bool = True) -> None:
        self.endpoint = endpoint
        self.batch_creates = batch_creates      # False: answer container.create_many not_found (an old Agent)
        self.server_public = server_public
        self.keypair = keypair
        self.heartbeat_interval = heartbeat_interval
        self.create_delay = create_delay
        self.state_events = state_events
        self.hosts: dict[str, SimHost] = {}
        for spec in hosts:
            if spec.id in self.hosts:
                raise InvalidInput(f"host {spec.id} listed twice", field="hosts")
            self.hosts[spec.id] = SimHost(spec)
        self.stats: dict[str, int] = dict.fromkeys(
            ("requests", "registered", "register_refused", "malformed", "send_dropped", "create_requests",
             "create_many_requests", "polls_unchanged"), 0)
        _raise_fd_limit(len(self.hosts) * 2 + 1024)
        self.context: zmq.Context[Any] = zmq.Context(io_threads=max(1, threads // 2))
        self.context.set(zmq.MAX_SOCKETS, len(self.hosts) + 1024)   # a context option, not a socket default
        self._workers = [_Worker(self, f"simfleet-{i}") for i in range(max(1, threads))]
        self._owner: dict[str, _Worker] = {}
        for i, host_id in enumerate(self.hosts):
            self._owner[host_id] = self._workers[i % len(self._workers)]

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SimFleet:
        for worker in self._workers:
            worker.thread.start()
        for host_id, host in self.hosts.items():
            self._owner[host_id].post(functools.partial(self._owner[host_id].connect, host))
        return self

    def close(self) -> None:
        for worker in self._workers:
            worker.running = False
            os.eventfd_write(worker.wake_fd, 1)
        for worker in self._workers:
            worker.thread.join(timeout=10)
        self.context.term()

    def __enter__(self) -> SimFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on(self, host_id: str, fn: Callable[[_Worker, SimHost], None], wait: bool = True) -> None:
        host = self.hosts.get(host_id)
        if host is None:
            raise NotFound(f"no simulated host {host_id!r}", field="host")
        worker = self._owner[host_id]
        done = threading.Event()

        def run() -> None:
            try:
                fn(worker, host)
            finally:
                done.set()
        worker.post(run)
        if wait:
            done.wait(10)

    # ---- control ------------------------------------------------------------------------------
    def connect_to(self, endpoint: str, server_public: str) -> None:
        """A new ResMan leader: every live host reconnects there and registers again."""
        self.endpoint, self.server_public = endpoint, server_public
        for host_id, host in self.hosts.items():
            if host.up:
                self._on(host_id, _reconnect, wait=False)

    def stop_host(self, host_id: str) -> None:
        """Power the host off: its socket closes, it stops answering; its containers stay."""
        def stop(w: _Worker, h: SimHost) -> None:
            h.up = False
            w.disconnect(h)
        self._on(host_id, stop)

    def start_host(self, host_id: str) -> None:
        """Power it on again: it reconnects and registers with the containers it still has."""
        def start(w: _Worker, h: SimHost) -> None:
            h.up = True
            if h.socket is None:
                w.connect(h)
        self._on(host_id, start)

    def fail_creates(self, host_id: str, count: int) -> None:
        def arm(w: _Worker, h: SimHost) -> None:
            h.fail_next = count
        self._on(host_id, arm)

    def exit_container(self, container_id: str, code: int = 1) -> None:
        """The container's PID 1 ended: the Agent marks it exited and tells ResMan."""
        for host_id, host in self.hosts.items():
            if container_id in host.containers:
                def end(w: _Worker, h: SimHost) -> None:
                    info = h.containers.get(container_id)
                    if info is not None:
                        info["state"] = "exited"
                        info["exit"] = {"code": code}
                        h.changes += 1
                        w.event(h, info)
                self._on(host_id, end)
                return
        raise NotFound(f"no simulated container {container_id!r}", field="container")

    # ---- observing (a snapshot; values may move while it is taken) ----------------------------
    def containers(self) -> dict[str, list[str]]:
        """container id -> the hosts that have it (more than one = a duplicate)."""
        where: dict[str, list[str]] = {}
        for host_id, host in list(self.hosts.items()):
            for cid in list(host.containers):
                where.setdefault(cid, []).append(host_id)
        return where

    def registered(self) -> int:
        return sum(1 for h in self.hosts.values() if h.registered)

    def used_cpu(self) -> float:
        return sum(sum(c for c, _, _ in list(h.held.values())) for h in self.hosts.values())


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(wanted, soft), hard), hard))


def sim_hosts(count: int, *, prefix: str = "sim", pool: str = "default", labels: Callable[[int], Iterable[str]] | None = None,
              first: int = 1, **spec: Any) -> list[SimHostSpec]:
    """`count` host specs named `<prefix>-<first:05d>`..., all alike except labels (a function of the index)."""
    return [SimHostSpec(f"{prefix}-{i:05d}", pool, tuple(labels(i)) if labels else (), **spec)
            for i in range(first, first + count)]


def _reconnect(worker: _Worker, host: SimHost) -> None:
    worker.disconnect(host)
    worker.connect(host)


__all__ = ["SimFleet", "SimHost", "SimHostSpec", "sim_hosts"]
