"""The ROUTER side of the mesh: serves many DEALER peers on one socket and can call any of them.

Every message is attributed to the CURVE key of the connection it came over (libzmq's ``User-Id``
property, set by our ZAP handler), and that key is looked up in the KeyRing on every message, so
removing a key silences an already-connected peer at once. A peer exists from its first message
until it has been silent for ``liveness`` heartbeat intervals or its key is removed.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from galaxy.errors import Conflict, InvalidInput, NotFound, Unreachable
from galaxy.mesh import wire
from galaxy.mesh._common import NOBLOCK, Outcome, Pending, check_positive, drain_frames, resolve
from galaxy.mesh._node import Handler, Node
from galaxy.mesh.keys import Keypair, KeyRing
from galaxy.mesh.types import PeerInfo, Request
from galaxy.mesh.zap import DOMAIN, ZapHandler

SNDMORE_NOBLOCK = int(zmq.NOBLOCK | zmq.SNDMORE)
REPLY_CACHE = 64  # recent replies kept per peer, so a retried request is answered, not re-run
BATCH = 512  # messages read per wake-up before the outbox and timers get a turn
SERVER_STATS = ("peers_joined", "peers_lost", "heartbeats_implied")


def _text(identity: bytes) -> str:
    return identity.decode("utf-8", "surrogateescape")


def _connectable(endpoint: str) -> str:
    """``tcp://0.0.0.0:5555`` (what ``*`` binds to) as an address a local peer can connect to."""
    if endpoint.startswith("tcp://0.0.0.0:"):
        return "tcp://127.0.0.1:" + endpoint.rsplit(":", 1)[1]
    if endpoint.startswith("tcp://[::]:"):
        return "tcp://[::1]:" + endpoint.rsplit(":", 1)[1]
    return endpoint


class _Peer:
    __slots__ = ("identity", "name", "key", "key_name", "last_seen", "replies", "outstanding")

    def __init__(self, identity: bytes, key: str, key_name: str, now: float) -> None:
        self.identity = identity
        self.name = _text(identity)
        self.key = key
        self.key_name = key_name
        self.last_seen = now
        self.replies: dict[int, tuple[str, bytes | None]] = {}  # id -> (method, reply; None = running)
        self.outstanding: set[int] = set()  # ids of our requests this peer has not answered

    def info(self) -> PeerInfo:
        return PeerInfo(self.name, self.key, self.key_name, self.last_seen)


class Server(Node):
    """Binds a CURVE ROUTER at ``endpoint``; see the package docs for the protocol."""

    def __init__(self, endpoint: str, keypair: Keypair, keyring: KeyRing, *, heartbeat_interval: float = 1.0,
                 liveness: int = 3, max_frame: int = wire.DEFAULT_MAX_FRAME, workers: int = 4,
                 name: str = "server") -> None:
        super().__init__(name=name, heartbeat_interval=heartbeat_interval, liveness=liveness,
                         max_frame=max_frame, workers=workers)
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise InvalidInput(f"an endpoint looks like tcp://host:port or ipc://path, got {endpoint!r}",
                               field="endpoint")
        if not isinstance(keypair, Keypair):
            raise InvalidInput("keypair must be a galaxy.mesh.Keypair", field="keypair")
        self._bind_to = endpoint
        self._endpoint = endpoint
        self._keypair = keypair
        self._keyring = keyring
        self._peers: dict[bytes, _Peer] = {}
        self._sent_at: dict[bytes, float] = {}      # identity -> when we last sent it anything
        self._echo_after = heartbeat_interval / 2
        self._sock: zmq.Socket[bytes] | None = None
        self._zap: ZapHandler | None = None
        self._joined: list[Callable[[PeerInfo], Any]] = []
        self._lost: list[Callable[[PeerInfo], Any]] = []
        for stat in SERVER_STATS:
            self._stats[stat] = 0

    # ---- public API -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The bound endpoint, with the real port when bound to port 0 / ``*``."""
        return self._endpoint

    @property
    def public_key(self) -> str:
        return self._keypair.public

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def on_peer_joined(self, fn: Callable[[PeerInfo], Any]) -> Callable[[PeerInfo], Any]:
        self._joined.append(fn)
        return fn

    def on_peer_lost(self, fn: Callable[[PeerInfo], Any]) -> Callable[[PeerInfo], Any]:
        self._lost.append(fn)
        return fn

    def start(self) -> Server:
        self._start()
        return self

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def peers(self) -> dict[str, PeerInfo]:
        """Live peers by identity (peers whose key was removed are left out at once)."""
        ring = self._keyring
        return {p.name: p.info() for p in list(self._peers.values()) if p.key in ring}

    def request_async(self, peer: str, method: str, body: Any = None, *, timeout: float = 5.0) -> Future[Any]:
        """Ask a connected peer; the future fails with Unreachable if it is not connected."""
        pend = self._new_request(self._identity(peer), method, body, check_positive(timeout, "timeout"), 0)
        self._post(pend)
        assert pend.future is not None
        return pend.future

    def request_callback(self, peer: str, method: str, body: Any, *, timeout: float,
                         done: Callable[[Outcome], None]) -> None:
        """Ask a connected peer; `done(outcome)` runs in the I/O thread when it ends (answer, error,
        timeout, or the peer unreachable), so it must be quick and must not block. The cheap path
        for callers that send thousands of requests a second (ResMan's polls and creates)."""
        self._post(self._new_request(self._identity(peer), method, body, check_positive(timeout, "timeout"), 0,
                                     done))

    def request(self, peer: str, method: str, body: Any = None, *, timeout: float = 5.0) -> Any:
        if self._in_io_thread():
            raise InvalidInput("request() inside a non-blocking handler would deadlock; use "
                               "request_async or route(..., blocking=True)", field="method")
        return self.request_async(peer, method, body, timeout=timeout).result()

    def send_event(self, peer: str, method: str, body: Any = None) -> None:
        """Fire and forget; silently lost if the peer is not connected."""
        ident = self._identity(peer)
        self._check_method(method)
        data = wire.encode(next(self._ids), wire.EVT, method, body)
        self._post(lambda: self._send_if_admitted(ident, data))

    @staticmethod
    def _identity(peer: str) -> bytes:
        if not isinstance(peer, str) or not peer:
            raise InvalidInput("a peer is named by its non-empty identity", field="peer")
        return peer.encode("utf-8", "surrogateescape")

    # ---- socket -------------------------------------------------------------------------------

    def _open(self) -> None:
        assert self._ctx is not None
        self._zap = ZapHandler(self._ctx, self._keyring, self._stats, self.name)
        sock = self._ctx.socket(zmq.ROUTER)
        self._sock = sock
        sock.linger = 0
        sock.curve_server = True
        sock.curve_secretkey = self._keypair.secret.encode()
        sock.zap_domain = DOMAIN
        sock.router_mandatory = 1
        sock.router_handover = 1  # a reconnecting peer takes its identity over from a dead connection
        sock.maxmsgsize = 2 * self._max_frame  # hard cap; frames between the two get a protocol err
        sock.backlog = 1024
        sock.tcp_keepalive = 1
        sock.tcp_keepalive_idle = 30
        sock.tcp_keepalive_intvl = 10
        sock.tcp_keepalive_cnt = 3
        try:
            sock.bind(self._bind_to)
        except zmq.ZMQError as err:
            kind = Conflict if err.errno == errno.EADDRINUSE else InvalidInput
            raise kind(f"cannot bind {self._bind_to}: {err}", field="endpoint") from None
        self._endpoint = _connectable(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        for target, reader in ((self._zap.socket, self._zap.handle), (sock, self._on_router)):
            self._poller.register(target, zmq.POLLIN)
            self._readers[target] = reader

    def _close_sockets(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
        if self._zap is not None:
            self._zap.close()
        self._peers.clear()

    def _send_to_peer(self, identity: bytes, data: bytes) -> bool:
        assert self._sock is not None
        try:
            send = self._sock.send
            send(identity, SNDMORE_NOBLOCK)  # ROUTER_MANDATORY fails here if the peer is gone or full
            send(data, NOBLOCK)
            self._sent_at[identity] = time.monotonic()
            return True
        except zmq.Again:
            self._stats["send_dropped"] += 1
        except zmq.ZMQError as err:
            if err.errno != errno.EHOSTUNREACH:
                raise
            self._stats["unroutable"] += 1
        return False

    # ---- incoming -----------------------------------------------------------------------------

    def _on_router(self) -> None:
        sock = self._sock
        assert sock is not None
        recv = sock.recv
        stats = self._stats
        name_of = self._keyring.name_of
        peers = self._peers
        heartbeat = wire.HEARTBEAT
        for _ in range(BATCH):
            try:
                identity = recv(NOBLOCK)
            except zmq.Again:
                return
            frame = recv(NOBLOCK, copy=False)  # a ROUTER message always has a frame after the identity
            extra = 0
            if frame.more:
                extra = drain_frames(recv)
            stats["received"] += 1
            try:
                key = str(frame.get("User-Id"))
            except zmq.ZMQError:  # no ZAP identity: cannot happen with CURVE, never trusted anyway
                key = ""
            key_name = name_of(key)
            if key_name is None:  # the key was removed from the ring after the peer connected
                stats["dropped_unauthorized"] += 1
                continue
            now = time.monotonic()
            peer = peers.get(identity)
            if peer is None or peer.key != key:
                peer = self._join(identity, key, key_name, now)
            else:
                peer.last_seen = now
                peer.key_name = key_name
            data = frame.bytes
            if data == heartbeat and not extra:
                stats["heartbeats"] += 1
                self._echo(identity, now)
                continue
            try:
                if extra:
                    raise wire.WireError(f"a message is exactly one frame, got {extra + 1}",
                                         reply_id=self._salvage_id(data))
                msg = wire.parse(data, self._max_frame)
            except wire.WireError as err:
                self._refuse(peer, err)
                continue
            kind = msg.type
            if kind == wire.REQ:
                self._serve(peer, msg)
            elif kind == wire.EVT:
                if msg.method == wire.HEARTBEAT_METHOD:
                    stats["heartbeats"] += 1
                    self._echo(identity, now)
                else:
                    self._run_event(Request(peer.name, key, key_name, msg.method, msg.body, msg.id))
            else:
                self._complete(msg, identity)

    def _echo(self, identity: bytes, now: float) -> None:
        """Answer a heartbeat — unless this peer heard from us within half an interval: any message
        counts as life to a Client, so at 10,000 busy hosts most echoes would say nothing new.
        A peer then hears from us at least every 1.5 intervals, well inside its liveness."""
        if now - self._sent_at.get(identity, 0.0) >= self._echo_after:
            self._send_to_peer(identity, wire.HEARTBEAT)
        else:
            self._stats["heartbeats_implied"] += 1

    def _salvage_id(self, data: bytes) -> int | None:
        try:
            return wire.parse(data, self._max_frame * 2).id
        except wire.WireError as err:
            return err.reply_id

    def _refuse(self, peer: _Peer, err: wire.WireError) -> None:
        self._stats["dropped_malformed"] += 1
        if err.reply_id is not None:
            self._stats["errors_sent"] += 1
            self._send_to_peer(peer.identity, wire.encode_error(err.reply_id, err.method, err))

    def _serve(self, peer: _Peer, msg: wire.Message) -> None:
        cache = peer.replies
        seen = cache.get(msg.id)
        if seen is not None and seen[0] == msg.method:
            self._stats["duplicates"] += 1
            if seen[1] is not None:
                self._send_to_peer(peer.identity, seen[1])
            return  # still running: its reply goes out when it is done
        entry = self._routes.get(msg.method)
        if entry is None:
            data = wire.encode_error(msg.id, msg.method, NotFound(f"no method {msg.method!r}", field="method"))
            self._reply(peer, msg.id, msg.method, data, True)
            return
        fn, blocking = entry
        req = Request(peer.name, peer.key, peer.key_name, msg.method, msg.body, msg.id)
        if blocking:
            self._remember(cache, msg.id, msg.method, None)
            self._pool_submit(self._serve_blocking, peer, fn, req)
        else:
            data, failed = self._invoke(fn, req)
            self._reply(peer, msg.id, msg.method, data, failed)

    def _serve_blocking(self, peer: _Peer, fn: Handler, req: Request) -> None:
        data, failed = self._invoke(fn, req)
        try:
            self._post(lambda: self._reply(peer, req.id, req.method, data, failed))
        except Unreachable:
            pass  # the server stopped while the handler ran

    @staticmethod
    def _remember(cache: dict[int, tuple[str, bytes | None]], msg_id: int, method: str,
                  data: bytes | None) -> None:
        cache[msg_id] = (method, data)
        if len(cache) > REPLY_CACHE:
            del cache[next(iter(cache))]

    def _reply(self, peer: _Peer, msg_id: int, method: str, data: bytes, failed: bool) -> None:
        if self._peers.get(peer.identity) is peer:
            self._remember(peer.replies, msg_id, method, data)
        if peer.key not in self._keyring:  # revoked while a blocking handler ran
            self._stats["dropped_unauthorized"] += 1
            return
        self._stats["errors_sent" if failed else "replied"] += 1
        self._send_to_peer(peer.identity, data)

    def _send_if_admitted(self, identity: bytes, data: bytes) -> None:
        peer = self._peers.get(identity)
        if peer is None or peer.key not in self._keyring:
            self._stats["unroutable"] += 1
            return
        self._send_to_peer(identity, data)

    # ---- membership ---------------------------------------------------------------------------

    def _join(self, identity: bytes, key: str, key_name: str, now: float) -> _Peer:
        old = self._peers.get(identity)
        if old is not None:  # same identity, another key: a new incarnation took the identity over
            self._lose(old)
        peer = _Peer(identity, key, key_name, now)
        self._peers[identity] = peer
        self._stats["peers_joined"] += 1
        info = peer.info()
        for fn in self._joined:
            self._notify(fn, info)
        return peer

    def _lose(self, peer: _Peer) -> None:
        del self._peers[peer.identity]
        self._sent_at.pop(peer.identity, None)
        self._stats["peers_lost"] += 1
        lost = Unreachable(f"peer {peer.name!r} was lost", field="peer")
        for msg_id in peer.outstanding:
            pend = self._pending.pop(msg_id, None)
            if pend is not None:
                resolve(pend, error=lost)
        info = peer.info()
        for fn in self._lost:
            self._notify(fn, info)

    def _tick(self, now: float) -> None:
        cutoff = now - self._interval * self._liveness
        ring = self._keyring
        for peer in [p for p in self._peers.values() if p.last_seen < cutoff or p.key not in ring]:
            self._lose(peer)

    # ---- outgoing requests --------------------------------------------------------------------

    def _transmit(self, pend: Pending) -> bool:
        assert pend.peer is not None
        peer = self._peers.get(pend.peer)
        if peer is None or peer.key not in self._keyring or not self._send_to_peer(pend.peer, pend.data):
            self._pending.pop(pend.id, None)
            resolve(pend, error=Unreachable(f"peer {_text(pend.peer)!r} is not connected", field="peer"))
            return False
        peer.outstanding.add(pend.id)
        return True

    def _forget(self, pend: Pending) -> None:
        self._pending.pop(pend.id, None)
        if pend.peer is not None:
            peer = self._peers.get(pend.peer)
            if peer is not None:
                peer.outstanding.discard(pend.id)
