"""The ROUTER side of the mesh: serves many DEALER peers on one socket and can call any of them.

Every message is attributed to the CURVE key of the connection it came over (libzmq's ``User-Id``
property, set by our ZAP handler), and that key is looked up in the KeyRing on every message, so
removing a key silences an already-connected peer at once. A peer exists from its first message
until it has been silent for ``liveness`` heartbeat intervals or its key is removed.

Identity = key. A peer's identity (what handlers see as ``Request.peer`` and what ``request`` and
``send_event`` address) is bound to the key that first used it, while it is connected and for
``bind_grace`` seconds after it is gone. Another key claiming it is refused — counted in
``identity_refused``, logged with the identity and the key's fingerprint, a request answered with
``IdentityRefused`` — and never becomes the peer; the same key from a new connection takes the
identity over at once, as does another key with the same name in the ring (a rotation: the old and
the new key of one principal, both trusted during the roll). An ``identity_policy`` may refuse more, and may name an identity's owner,
who takes it back from anyone else (ResMan: a host's name is its Agent key's only). A reply is
accepted only from the connection and key the request went to.
"""

from __future__ import annotations

import errno
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from galaxy.errors import Conflict, IdentityRefused, InvalidInput, NotFound, Unreachable
from galaxy.mesh import wire
from galaxy.mesh._common import NOBLOCK, Outcome, Pending, check_positive, drain_frames, identity_of, resolve
from galaxy.mesh._node import Handler, Node
from galaxy.mesh.keys import Keypair, KeyRing, fingerprint
from galaxy.mesh.types import PeerInfo, Request
from galaxy.mesh.zap import DOMAIN, ZapHandler

SNDMORE_NOBLOCK = int(zmq.NOBLOCK | zmq.SNDMORE)
REPLY_CACHE = 64  # recent replies kept per connection, so a retried request is answered, not re-run
BATCH = 512  # messages read per wake-up before the outbox and timers get a turn
SERVER_STATS = ("peers_joined", "peers_lost", "heartbeats_implied", "identity_refused")
BIND_GRACE = 30.0   # seconds an identity stays bound to the key of a peer that is gone
REFUSAL_LOG_EVERY = 60.0  # one log line per (identity, key) refused per this many seconds

log = logging.getLogger("galaxy.mesh")


class IdentityPolicy:
    """What identities mean on one server beyond "bound to the first key that holds it".

    The default refuses nothing and makes no key an owner. Both methods run in the I/O thread when a
    connection claims an identity (never per message), so they must be quick and must not block."""

    def refuse(self, identity: str, key_name: str | None) -> str | None:
        """Why the key named `key_name` may not hold `identity` at all; None if it may."""
        return None

    def owns(self, identity: str, key_name: str | None) -> bool:
        """Is `identity` this key's by right? Its owner takes it over from a holder that does not own
        it — so whoever takes a name first (a user's client, say) cannot keep its owner out."""
        return False


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
    """One connection as the server knows it: its route (libzmq's address for it), the identity it
    claimed, and the key it proved."""

    __slots__ = ("route", "identity", "name", "key", "key_name", "last_seen", "replies", "outstanding",
                 "serial")

    def __init__(self, route: bytes, identity: bytes, key: str, key_name: str, now: float, serial: int) -> None:
        self.route = route
        self.identity = identity
        self.name = _text(identity)
        self.key = key
        self.key_name = key_name
        self.last_seen = now
        self.serial = serial  # Request.conn: tells two connections of one identity apart
        self.replies: dict[int, tuple[str, bytes | None]] = {}  # id -> (method, reply; None = running)
        self.outstanding: set[int] = set()  # ids of our requests this peer has not answered

    def info(self) -> PeerInfo:
        return PeerInfo(self.name, self.key, self.key_name, self.last_seen)


class Server(Node):
    """Binds a CURVE ROUTER at ``endpoint``; see the package docs for the protocol."""

    def __init__(self, endpoint: str, keypair: Keypair, keyring: KeyRing, *, heartbeat_interval: float = 1.0,
                 liveness: int = 3, max_frame: int = wire.DEFAULT_MAX_FRAME, workers: int = 4,
                 name: str = "server", bind_grace: float = BIND_GRACE) -> None:
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
        self._peers: dict[bytes, _Peer] = {}        # route -> every connection heard from
        self._named: dict[bytes, _Peer] = {}        # identity -> the connection that answers to it now
        self._released: dict[bytes, tuple[str, str, float]] = {}  # identity -> (key, key_name, until): gone
        self._bind_grace = check_positive(bind_grace, "bind_grace")
        self._next_release_sweep = 0.0
        self._refusals_logged: dict[tuple[bytes, str], float] = {}
        self._serials = itertools.count(1)
        self.identity_policy = IdentityPolicy()
        self._sent_at: dict[bytes, float] = {}      # route -> when we last sent it anything
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
        return {p.name: p.info() for p in list(self._named.values()) if p.key in ring}

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
        # A Client that dials again takes its route over from its dead connection at once. Only that
        # Client knows its route (identity + nonce), so no other connection can take it; identities
        # are bound to keys above libzmq (_claim), whatever route claims them.
        sock.router_handover = 1
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
        self._named.clear()

    def _send_to_peer(self, route: bytes, data: bytes) -> bool:
        assert self._sock is not None
        try:
            send = self._sock.send
            send(route, SNDMORE_NOBLOCK)  # ROUTER_MANDATORY fails here if the peer is gone or full
            send(data, NOBLOCK)
            self._sent_at[route] = time.monotonic()
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
                route = recv(NOBLOCK)
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
            peer = peers.get(route)
            data = frame.bytes
            if peer is None or peer.key != key:
                claimed = self._claim(route, key, key_name, now)
                if isinstance(claimed, str):
                    self._answer_refused(route, data, extra, claimed)
                    continue
                peer = claimed
            else:
                peer.last_seen = now
                peer.key_name = key_name
            if data == heartbeat and not extra:
                stats["heartbeats"] += 1
                self._echo(route, now)
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
                    self._echo(route, now)
                else:
                    self._run_event(Request(peer.name, key, key_name, msg.method, msg.body, msg.id, peer.serial))
            else:
                self._complete(msg, route, key, key_name)

    def _echo(self, route: bytes, now: float) -> None:
        """Answer a heartbeat — unless this peer heard from us within half an interval: any message
        counts as life to a Client, so at 10,000 busy hosts most echoes would say nothing new.
        A peer then hears from us at least every 1.5 intervals, well inside its liveness."""
        if now - self._sent_at.get(route, 0.0) >= self._echo_after:
            self._send_to_peer(route, wire.HEARTBEAT)
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
            self._send_to_peer(peer.route, wire.encode_error(err.reply_id, err.method, err))

    def _serve(self, peer: _Peer, msg: wire.Message) -> None:
        cache = peer.replies
        seen = cache.get(msg.id)
        if seen is not None and seen[0] == msg.method:
            self._stats["duplicates"] += 1
            if seen[1] is not None:
                self._send_to_peer(peer.route, seen[1])
            return  # still running: its reply goes out when it is done
        entry = self._routes.get(msg.method)
        if entry is None:
            data = wire.encode_error(msg.id, msg.method, NotFound(f"no method {msg.method!r}", field="method"))
            self._reply(peer, msg.id, msg.method, data, True)
            return
        fn, blocking = entry
        req = Request(peer.name, peer.key, peer.key_name, msg.method, msg.body, msg.id, peer.serial)
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
        if self._peers.get(peer.route) is peer:
            self._remember(peer.replies, msg_id, method, data)
        if peer.key not in self._keyring:  # revoked while a blocking handler ran
            self._stats["dropped_unauthorized"] += 1
            return
        self._stats["errors_sent" if failed else "replied"] += 1
        self._send_to_peer(peer.route, data)  # to the connection that asked, whoever holds the identity now

    def _send_if_admitted(self, identity: bytes, data: bytes) -> None:
        peer = self._named.get(identity)
        if peer is None or peer.key not in self._keyring:
            self._stats["unroutable"] += 1
            return
        self._send_to_peer(peer.route, data)

    # ---- membership ---------------------------------------------------------------------------

    def _claim(self, route: bytes, key: str, key_name: str, now: float) -> _Peer | str:
        """A connection we do not know (or a route that now carries another key) speaks: decide who it
        may be. Returns its peer, or why its identity is refused.

        The identity is the one the route names; it is bound to the key of the peer that holds it, or
        held it less than ``bind_grace`` ago (unless that key was removed from the ring). The same key
        from another connection takes the identity over at once (a restarted peer), and so does
        another key of the same principal (the same name in the ring: a key being rotated, old and new
        both trusted while the roll lasts); another principal's key is refused unless the policy says
        it owns the identity and the holder does not; and any claim the policy refuses is refused."""
        old = self._peers.get(route)
        if old is not None:  # libzmq handed a bare route (no nonce) to a new connection: the old one is gone
            self._lose(old, now)
        identity = identity_of(route)
        name = _text(identity)
        current = self._named.get(identity)
        if current is not None and current.key not in self._keyring:
            self._lose(current, now)  # revoked, not yet reaped by the tick: it holds nothing any more
            current = None
        holder = (current.key, current.key_name) if current is not None else self._released_holder(identity, now)
        policy = self.identity_policy
        try:
            if holder is not None and holder[0] != key and holder[1] != key_name:
                if not (policy.owns(name, key_name) and not policy.owns(name, holder[1])):
                    return self._refuse_claim(identity, key, key_name, f"identity {name!r} is bound to another key",
                                              f"held by key {fingerprint(holder[0])} ({holder[1]})")
                log.warning("%s: identity %r taken from key %s (%s) by its owner, key %s (%s)", self.name, name,
                            fingerprint(holder[0]), holder[1], fingerprint(key), key_name)
                if current is not None:
                    self._lose(current, now)
                    current = None
                self._released.pop(identity, None)
            why = policy.refuse(name, key_name)
        except Exception:  # a policy's bug must not end the I/O thread; nor may it let a claim through
            log.exception("%s: the identity policy failed on %r", self.name, name)
            why = "the identity policy failed"
        if why:
            return self._refuse_claim(identity, key, key_name, why, "by policy")
        peer = _Peer(route, identity, key, key_name, now, next(self._serials))
        self._peers[route] = peer
        self._named[identity] = peer
        self._released.pop(identity, None)
        if current is not None:  # the same key on a new connection: it answers to the identity from now on
            self._retire(current)
            return peer
        self._stats["peers_joined"] += 1
        info = peer.info()
        for fn in self._joined:
            self._notify(fn, info)
        return peer

    def _released_holder(self, identity: bytes, now: float) -> tuple[str, str] | None:
        """The key (and its name) a gone peer's identity is still bound to, in its grace; else None."""
        held = self._released.get(identity)
        if held is None:
            return None
        key, key_name, until = held
        if until <= now or key not in self._keyring:
            del self._released[identity]
            return None
        return key, key_name

    def _refuse_claim(self, identity: bytes, key: str, key_name: str, why: str, detail: str) -> str:
        """Count a refused claim and log it (once a minute per identity and key: a refused peer keeps
        sending heartbeats, and an attacker must not be able to flood the log)."""
        self._stats["identity_refused"] += 1
        now = time.monotonic()
        mark = (identity, key)
        if self._refusals_logged.get(mark, 0.0) <= now:
            if len(self._refusals_logged) >= 1024:
                self._refusals_logged.clear()
            self._refusals_logged[mark] = now + REFUSAL_LOG_EVERY
            log.warning("%s: refused identity %r claimed by key %s (%s): %s, %s", self.name, _text(identity),
                        fingerprint(key), key_name, why, detail)
        return why

    def _answer_refused(self, route: bytes, data: bytes, extra: int, why: str) -> None:
        """A refused connection's request gets IdentityRefused (so its caller learns why at once instead
        of timing out); anything else it sends is dropped. Sent to its own route: nothing but the error."""
        if extra:
            return
        try:
            msg = wire.parse(data, self._max_frame)
        except wire.WireError:
            return
        if msg.type == wire.REQ:
            self._send_to_peer(route, wire.encode_error(msg.id, msg.method, IdentityRefused(why, field="identity")))
            self._sent_at.pop(route, None)

    def _retire(self, peer: _Peer) -> None:
        """A newer connection of the same key took `peer`'s identity: requests we sent to the old one
        fail now (their caller may retry on the new one), and the old one stays only to be answered
        (its own calls) until it goes silent — it never answers to the identity again."""
        gone = Unreachable(f"peer {peer.name!r} reconnected; the request went to its old connection",
                           field="peer")
        for msg_id in peer.outstanding:
            pend = self._pending.pop(msg_id, None)
            if pend is not None:
                resolve(pend, error=gone)
        peer.outstanding.clear()

    def _lose(self, peer: _Peer, now: float) -> None:
        del self._peers[peer.route]
        self._sent_at.pop(peer.route, None)
        lost = Unreachable(f"peer {peer.name!r} was lost", field="peer")
        for msg_id in peer.outstanding:
            pend = self._pending.pop(msg_id, None)
            if pend is not None:
                resolve(pend, error=lost)
        if self._named.get(peer.identity) is not peer:
            return  # a retired connection: the identity lives on elsewhere
        del self._named[peer.identity]
        if peer.key in self._keyring:
            self._released[peer.identity] = (peer.key, peer.key_name, now + self._bind_grace)
        self._stats["peers_lost"] += 1
        info = peer.info()
        for fn in self._lost:
            self._notify(fn, info)

    def _tick(self, now: float) -> None:
        cutoff = now - self._interval * self._liveness
        ring = self._keyring
        for peer in [p for p in self._peers.values() if p.last_seen < cutoff or p.key not in ring]:
            self._lose(peer, now)
        if now >= self._next_release_sweep:  # forget bindings whose grace is over
            self._next_release_sweep = now + min(self._bind_grace, 10.0)
            for identity in [i for i, (key, _, until) in self._released.items() if until <= now or key not in ring]:
                del self._released[identity]

    # ---- outgoing requests --------------------------------------------------------------------

    def _transmit(self, pend: Pending) -> bool:
        """Send to the connection that answers to the identity now, and note it and its key: only
        they may answer (Node._complete)."""
        assert pend.peer is not None
        peer = self._named.get(pend.peer)
        if peer is None or peer.key not in self._keyring or not self._send_to_peer(peer.route, pend.data):
            self._pending.pop(pend.id, None)
            resolve(pend, error=Unreachable(f"peer {_text(pend.peer)!r} is not connected", field="peer"))
            return False
        pend.route = peer.route
        pend.key = peer.key
        peer.outstanding.add(pend.id)
        return True

    def _forget(self, pend: Pending) -> None:
        self._pending.pop(pend.id, None)
        if pend.route is not None:
            peer = self._peers.get(pend.route)
            if peer is not None:
                peer.outstanding.discard(pend.id)
