"""galaxy.mesh against bare pyzmq + cbor2, both with CURVE over tcp loopback.

1. Request/reply throughput: the server runs alone in a child process; several client processes
   each keep a window of requests in flight. Baseline: a bare ROUTER loop (recv, cbor2 decode,
   encode, send) answering bare DEALER loops, in the same process layout and with the same load.
2. One Server carrying 10,000 DEALER peers that each heartbeat once a second (raw DEALERs in two
   other processes, so the server process is measured alone): p50 / p99 latency of a probe request
   and the server process's CPU, beside a bare pyzmq ROUTER loop carrying the same peers (it echoes
   heartbeats and answers requests, without ZAP, per-message key checks or liveness tracking).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import cbor2
import psutil
import zmq

from bench._table import Row
from galaxy.mesh import Client, Keypair, KeyRing, Server

CLIENTS = 4
WINDOW = 32
MEASURE_S = 3.0
PEERS = 10_000
PEER_PROCS = 2
PROBES = 300
BODY = {"pod": "web-0001", "job": "web", "status": "RUNNING", "version": "17", "pid": 4242,
        "exit_code": None, "restarts": 0, "endpoint": "10.0.0.7:8080", "container": "c-000123",
        "pad": "x" * 40}


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- server processes ---------------------------------------------------------------------------

def _galaxy_server(conn: Connection, server_secret: tuple[str, str], client_public: str) -> None:
    _raise_nofile()
    ring = KeyRing()
    ring.add(client_public, "bench")
    server = Server("tcp://127.0.0.1:0", Keypair(*server_secret), ring, name="bench")
    server.route("echo", lambda req: req.body)
    server.route("probe", lambda req: req.body)
    with server:
        conn.send(server.endpoint)
        while True:
            cmd = conn.recv()
            if cmd == "stop":
                return
            if cmd == "peers":
                conn.send(len(server.peers()))
            elif cmd == "stats":
                conn.send(server.stats)


def _bare_server(conn: Connection, server_secret: tuple[str, str]) -> None:
    """A hand-written CURVE ROUTER loop: echoes heartbeats, answers any request with its body."""
    from galaxy.mesh.wire import HEARTBEAT

    _raise_nofile()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.curve_server = True
    sock.curve_secretkey = server_secret[1].encode()
    sock.backlog = 1024
    sock.bind("tcp://127.0.0.1:0")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    loads, dumps = cbor2.loads, cbor2.dumps
    seen: set[bytes] = set()
    while True:
        if conn.poll():
            cmd = conn.recv()
            if cmd == "stop":
                break
            conn.send(len(seen))  # "peers"
        if not poller.poll(100):
            continue
        for _ in range(512):
            try:
                ident, data = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            seen.add(ident)
            if data == HEARTBEAT:
                sock.send_multipart((ident, data))
                continue
            msg = loads(data)
            sock.send_multipart((ident, dumps({"v": 1, "id": msg["id"], "type": "rep",
                                               "method": msg["method"], "body": msg["body"]})))
    ctx.destroy(0)


def _spawn(target: Any, *args: Any) -> tuple[mp.process.BaseProcess, Connection, Any]:
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    if not parent.poll(30):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent, parent.recv()


def _finish(proc: mp.process.BaseProcess, conn: Connection) -> None:
    try:
        conn.send("stop")
    except OSError:
        pass
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join()


# ---- 1: throughput ------------------------------------------------------------------------------
# Each client is its own process (as agents and users are), for Galaxy and the baseline alike, and
# counts the replies it got between two instants given on the system-wide monotonic clock.

def _galaxy_client(conn: Connection, endpoint: str, server_public: str, client_kp: tuple[str, str],
                   index: int, window: tuple[float, float]) -> None:
    done = [0]
    running = [True]
    with Client(endpoint, server_public, Keypair(*client_kp), f"bench-{index}", name=f"bench-{index}") as client:
        client.call("echo", BODY)  # connected and warm

        def again(fut: Future[Any]) -> None:
            done[0] += 1
            if running[0]:
                client.call_async("echo", BODY).add_done_callback(again)

        for _ in range(WINDOW):
            client.call_async("echo", BODY).add_done_callback(again)
        conn.send(_count_between(done, window))
        running[0] = False


def _count_between(done: list[int], window: tuple[float, float]) -> int:
    time.sleep(max(0.0, window[0] - time.monotonic()))
    first = done[0]
    time.sleep(max(0.0, window[1] - time.monotonic()))
    return done[0] - first


def _bare_client(conn: Connection, endpoint: str, server_public: str, client_kp: tuple[str, str],
                 index: int, window: tuple[float, float]) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_serverkey = server_public.encode()
    sock.curve_publickey = client_kp[0].encode()
    sock.curve_secretkey = client_kp[1].encode()
    sock.routing_id = f"bare-{index}".encode()
    sock.connect(endpoint)
    loads, dumps = cbor2.loads, cbor2.dumps
    next_id = 0

    def send() -> None:
        nonlocal next_id
        next_id += 1
        sock.send(dumps({"v": 1, "id": next_id, "type": "req", "method": "echo", "body": BODY}))

    for _ in range(WINDOW):
        send()
    done, first = 0, -1
    while True:
        now = time.monotonic()
        if first < 0 and now >= window[0]:
            first = done
        if now >= window[1]:
            break
        if not sock.poll(100):
            continue
        for _ in range(512):
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            loads(data)
            done += 1
            send()
    conn.send(done - max(first, 0))
    ctx.destroy(0)


def _load(client: Any, endpoint: str, server_kp: Keypair, client_kp: Keypair) -> float:
    """Run CLIENTS client processes against ``endpoint``; total replies per second in the window."""
    ctx = mp.get_context("spawn")
    start = time.monotonic() + 3.0  # spawning and connecting take ~1-2 s
    window = (start, start + MEASURE_S)
    procs = []
    for i in range(CLIENTS):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client, daemon=True, args=(
            child, endpoint, server_kp.public, (client_kp.public, client_kp.secret), i, window))
        proc.start()
        procs.append((proc, parent))
    total = 0
    try:
        for _proc, parent in procs:
            if not parent.poll(window[1] - time.monotonic() + 20):
                raise RuntimeError(f"{client.__name__} gave no count")
            total += parent.recv()
    finally:
        for proc, _ in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return total / MEASURE_S


def _throughput_rows(server_kp: Keypair, client_kp: Keypair) -> list[Row]:
    keys = (server_kp.public, server_kp.secret)
    proc, conn, endpoint = _spawn(_bare_server, keys)
    try:
        bare = _load(_bare_client, endpoint, server_kp, client_kp)
    finally:
        _finish(proc, conn)
    proc, conn, endpoint = _spawn(_galaxy_server, keys, client_kp.public)
    try:
        galaxy = _load(_galaxy_client, endpoint, server_kp, client_kp)
    finally:
        _finish(proc, conn)
    return [Row("mesh", f"req/rep tcp+CURVE, {CLIENTS} client procs x {WINDOW} in flight", galaxy,
                "msg/s", bare, "bare pyzmq+cbor2", target=0.70)]


# ---- 2: 10,000 heartbeating peers ---------------------------------------------------------------

def _peer_swarm(conn: Connection, endpoint: str, server_public: str, client_kp: tuple[str, str],
                first: int, count: int) -> None:
    """``count`` raw DEALERs, each sending the mesh heartbeat once a second and draining replies."""
    from galaxy.mesh import wire

    _raise_nofile()
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, count + 64)
    socks = []
    for i in range(first, first + count):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_serverkey = server_public.encode()
        sock.curve_publickey = client_kp[0].encode()
        sock.curve_secretkey = client_kp[1].encode()
        sock.routing_id = f"peer-{i:05d}".encode()
        sock.connect(endpoint)
        socks.append(sock)
    conn.send(count)
    slices = 50  # spread each second's heartbeats over 50 slices of 20 ms
    per = (count + slices - 1) // slices
    tick = time.monotonic()
    while not conn.poll():
        for s in range(slices):
            for sock in socks[s * per:(s + 1) * per]:
                try:
                    while True:
                        sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    pass
                try:
                    sock.send(wire.HEARTBEAT, zmq.NOBLOCK)
                except zmq.Again:
                    pass
            tick += 1.0 / slices
            time.sleep(max(0.0, tick - time.monotonic()))
    ctx.destroy(0)


def _probe(client: Client, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        client.call("probe", i)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.005)
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _swarm(server: Any, args: tuple[Any, ...], server_kp: Keypair,
           client_kp: Keypair) -> tuple[list[float], float]:
    """Start ``server``, connect PEERS heartbeating peers, then probe it; (latencies, server CPU %)."""
    _raise_nofile()
    proc, conn, endpoint = _spawn(server, *args)
    swarms: list[tuple[mp.process.BaseProcess, Connection]] = []
    try:
        with Client(endpoint, server_kp.public, client_kp, "probe", name="probe") as probe:
            probe.call("probe", 0)
            per = PEERS // PEER_PROCS
            for n in range(PEER_PROCS):
                p, c, _ = _spawn(_peer_swarm, endpoint, server_kp.public,
                                 (client_kp.public, client_kp.secret), n * per, per)
                swarms.append((p, c))
            deadline = time.monotonic() + 40
            joined = 0
            while time.monotonic() < deadline:
                conn.send("peers")
                joined = conn.recv()
                if joined >= PEERS + 1:
                    break
                time.sleep(0.2)
            if joined < PEERS + 1:
                raise RuntimeError(f"only {joined - 1} of {PEERS} peers joined {server.__name__}")
            time.sleep(1.0)  # a full heartbeat round before measuring
            cpu_meter = psutil.Process(proc.pid)
            cpu_meter.cpu_percent()
            latencies = _probe(probe, PROBES)
            cpu = cpu_meter.cpu_percent()
            if server is _galaxy_server:
                conn.send("stats")
                if conn.recv()["peers_lost"]:
                    raise RuntimeError("peers were declared lost under load")
    finally:
        for p, c in swarms:
            _finish(p, c)
        _finish(proc, conn)
    return latencies, cpu


def _swarm_rows(server_kp: Keypair, client_kp: Keypair) -> list[Row]:
    keys = (server_kp.public, server_kp.secret)
    bare, bare_cpu = _swarm(_bare_server, (keys,), server_kp, client_kp)
    galaxy, galaxy_cpu = _swarm(_galaxy_server, (keys, client_kp.public), server_kp, client_kp)
    ms = 1000.0
    label = f"{PEERS} peers heartbeating 1/s"
    return [
        Row("mesh", f"probe p50, {label}", _pct(galaxy, 0.5) * ms, "ms", _pct(bare, 0.5) * ms,
            "bare pyzmq ROUTER", better="lower"),
        Row("mesh", f"probe p99, {label}", _pct(galaxy, 0.99) * ms, "ms", _pct(bare, 0.99) * ms,
            "bare pyzmq ROUTER", better="lower"),
        Row("mesh", f"server CPU, {label}", galaxy_cpu, "% core", bare_cpu, "bare pyzmq ROUTER",
            better="lower"),
    ]


def run() -> list[Row]:
    server_kp, client_kp = Keypair.generate(), Keypair.generate()
    return _throughput_rows(server_kp, client_kp) + _swarm_rows(server_kp, client_kp)


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
