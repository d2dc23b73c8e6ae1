"""The DEALER side of the mesh: one connection to one server, requests both ways, Pirate patterns.

* Lazy Pirate: each call has a per-attempt timeout and re-sends the SAME id ``retries`` times; the
  server answers a duplicate from its reply cache, so a retried call never runs twice.
* Paranoid Pirate: a heartbeat in every interval in which nothing else was sent (or nothing was
  heard: its echo); any message counts as life, both ways; after ``liveness`` silent intervals the
  server is lost. libzmq reconnects by itself (with backoff up to ``RECONNECT_MAX_MS``), so a
  restarted server on the same endpoint is found again.
* ``connect_to`` follows a new leader: the old socket is dropped, the new one connected, and every
  call in flight is re-sent there at once.
* The DEALER's routing id is the identity plus a random nonce of this Client (``_common.new_route``),
  so no other connection can take its address on the server; a reply counts only if it came from
  the server key the call was sent to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from galaxy.errors import InvalidInput, NotFound, Unreachable
from galaxy.mesh import wire
from galaxy.mesh._common import MAX_IDENTITY, NOBLOCK, Pending, check_positive, drain_frames, new_route
from galaxy.mesh._node import Node, log
from galaxy.mesh.keys import Keypair, check_key
from galaxy.mesh.types import Request

RECONNECT_MS = 100
RECONNECT_MAX_MS = 2000
BATCH = 512


def check_identity(identity: str) -> bytes:
    """A routing identity: 1..242 bytes of UTF-8 without a NUL (the route adds a NUL and a 12-byte
    nonce, and libzmq allows 255 bytes in all)."""
    if not isinstance(identity, str):
        raise InvalidInput("identity must be a string", field="identity")
    raw = identity.encode("utf-8")
    if not 1 <= len(raw) <= MAX_IDENTITY or 0 in raw:
        raise InvalidInput(f"identity must be 1..{MAX_IDENTITY} bytes without NUL", field="identity")
    return raw


class Client(Node):
    """Connects a CURVE DEALER with routing identity ``identity`` to a Server."""

    tick_fraction = 0.25  # liveness is judged four times per interval; heartbeats go once per interval

    def __init__(self, endpoint: str, server_public: str, keypair: Keypair, identity: str, *,
                 heartbeat_interval: float = 1.0, liveness: int = 3, timeout: float = 5.0, retries: int = 2,
                 max_frame: int = wire.DEFAULT_MAX_FRAME, name: str = "client", workers: int = 2) -> None:
        super().__init__(name=name, heartbeat_interval=heartbeat_interval, liveness=liveness,
                         max_frame=max_frame, workers=workers)
        if not isinstance(keypair, Keypair):
            raise InvalidInput("keypair must be a galaxy.mesh.Keypair", field="keypair")
        self._identity = check_identity(identity)
        self._route = new_route(self._identity)
        self._target = (self._check_endpoint(endpoint), check_key(server_public, "server_public"))
        self._keypair = keypair
        self._timeout = check_positive(timeout, "timeout")
        self._retries = self._check_retries(retries)
        self._sock: zmq.Socket[bytes] | None = None
        self._connected = False
        self._last_heard = 0.0
        self._last_sent = 0.0  # any message sent is a sign of life to the server: no heartbeat then
        self._last_beat = 0.0
        self._lost_fns: list[Callable[[], Any]] = []
        self._joined_fns: list[Callable[[], Any]] = []

    @staticmethod
    def _check_endpoint(endpoint: str) -> str:
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise InvalidInput(f"an endpoint looks like tcp://host:port or ipc://path, got {endpoint!r}",
                               field="endpoint")
        return endpoint

    @staticmethod
    def _check_retries(retries: int) -> int:
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidInput(f"must be an integer >= 0, got {retries!r}", field="retries")
        return retries

    # ---- public API -------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self._identity.decode()

    @property
    def endpoint(self) -> str:
        """The server endpoint currently connected to (after ``connect_to``, the new one)."""
        return self._target[0]

    @property
    def connected(self) -> bool:
        """True if the server was heard from within the last ``liveness`` intervals."""
        return self._connected and time.monotonic() - self._last_heard <= self._interval * self._liveness

    def on_server_lost(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        self._lost_fns.append(fn)
        return fn

    def on_server_joined(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        self._joined_fns.append(fn)
        return fn

    def start(self) -> Client:
        self._start()
        return self

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call_async(self, method: str, body: Any = None, *, timeout: float | None = None,
                   retries: int | None = None) -> Future[Any]:
        pend = self._new_request(None, method, body,
                                 self._timeout if timeout is None else check_positive(timeout, "timeout"),
                                 self._retries if retries is None else self._check_retries(retries))
        self._post(pend)
        assert pend.future is not None
        return pend.future

    def call(self, method: str, body: Any = None, *, timeout: float | None = None,
             retries: int | None = None) -> Any:
        """Ask the server; raises Timeout after the retries, or the server's error as its own type."""
        if self._in_io_thread():
            raise InvalidInput("call() inside a non-blocking handler would deadlock; use call_async "
                               "or route(..., blocking=True)", field="method")
        return self.call_async(method, body, timeout=timeout, retries=retries).result()

    def send_event(self, method: str, body: Any = None) -> None:
        self._check_method(method)
        data = wire.encode(next(self._ids), wire.EVT, method, body)
        if len(data) > self._max_frame:
            raise InvalidInput(f"event of {len(data)} bytes exceeds the {self._max_frame}-byte limit",
                               field="body")
        self._post(lambda: self._send(data))

    def connect_to(self, endpoint: str, server_public: str) -> None:
        """Follow a new server (a new leader); calls in flight are re-sent to it."""
        target = (self._check_endpoint(endpoint), check_key(server_public, "server_public"))
        self._post(lambda: self._switch(target))

    # ---- socket -------------------------------------------------------------------------------

    def _open(self) -> None:
        self._connect()

    def _connect(self) -> None:
        assert self._ctx is not None
        endpoint, server_public = self._target
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.routing_id = self._route
        sock.curve_serverkey = server_public.encode()
        sock.curve_publickey = self._keypair.public.encode()
        sock.curve_secretkey = self._keypair.secret.encode()
        sock.maxmsgsize = 2 * self._max_frame
        sock.reconnect_ivl = RECONNECT_MS
        sock.reconnect_ivl_max = RECONNECT_MAX_MS
        # ZMTP-level pings let libzmq notice a half-open TCP connection and reconnect.
        sock.heartbeat_ivl = int(self._interval * self._liveness * 1000)
        sock.heartbeat_timeout = int(self._interval * self._liveness * 2000)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as err:
            sock.close(0)
            raise InvalidInput(f"cannot connect to {endpoint}: {err}", field="endpoint") from None
        self._sock = sock
        self._poller.register(sock, zmq.POLLIN)
        self._readers[sock] = self._on_dealer
        self._beat(time.monotonic())

    def _close_sockets(self) -> None:
        if self._sock is not None:
            self._poller.unregister(self._sock)
            del self._readers[self._sock]
            self._sock.close(0)
            self._sock = None

    def _switch(self, target: tuple[str, str]) -> None:
        previous = self._target
        self._close_sockets()
        self._server_silent()
        self._target = target
        try:
            self._connect()
        except InvalidInput as err:  # an endpoint libzmq cannot parse: stay with the old server
            log.error("%s: connect_to ignored: %s", self.name, err)
            self._target = previous
            self._connect()
            return
        now = time.monotonic()
        for pend in list(self._pending.values()):
            pend.key = target[1]      # asked of the new server now: only its answer counts
            self._send(pend.data)
            self._track(pend, now)

    def _send(self, data: bytes) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.send(data, NOBLOCK)
            self._last_sent = time.monotonic()
            return True
        except zmq.Again:  # queue full while the server is away: the retry timer re-sends
            self._stats["send_dropped"] += 1
            return False

    def _beat(self, now: float) -> None:
        self._last_beat = now
        self._send(wire.HEARTBEAT)

    # ---- incoming -----------------------------------------------------------------------------

    def _on_dealer(self) -> None:
        sock = self._sock
        assert sock is not None
        recv = sock.recv
        stats = self._stats
        heartbeat = wire.HEARTBEAT
        for _ in range(BATCH):
            try:
                frame = recv(NOBLOCK, copy=False)
            except zmq.Again:
                return
            stats["received"] += 1
            self._last_heard = time.monotonic()
            if not self._connected:
                self._connected = True
                for fn in self._joined_fns:
                    self._notify(fn)
            if frame.more:
                drain_frames(recv)
                stats["dropped_malformed"] += 1
                continue
            data = frame.bytes
            if data == heartbeat:
                stats["heartbeats"] += 1
                continue
            try:
                msg = wire.parse(data, self._max_frame)
            except wire.WireError as err:
                stats["dropped_malformed"] += 1
                if err.reply_id is not None:
                    stats["errors_sent"] += 1
                    self._send(wire.encode_error(err.reply_id, err.method, err))
                continue
            kind = msg.type
            if kind == wire.REP or kind == wire.ERR:
                self._complete(msg, None, self._target[1])
            elif kind == wire.REQ:
                self._serve(msg)
            elif msg.method == wire.HEARTBEAT_METHOD:
                stats["heartbeats"] += 1
            else:
                self._run_event(self._request(msg))

    def _request(self, msg: wire.Message) -> Request:
        return Request(self._target[0], self._target[1], None, msg.method, msg.body, msg.id)

    def _serve(self, msg: wire.Message) -> None:
        entry = self._routes.get(msg.method)
        if entry is None:
            self._answer(wire.encode_error(msg.id, msg.method, NotFound(f"no method {msg.method!r}",
                                                                        field="method")), True)
            return
        fn, blocking = entry
        req = self._request(msg)
        if blocking:
            self._pool_submit(self._serve_blocking, fn, req)
        else:
            self._answer(*self._invoke(fn, req))

    def _serve_blocking(self, fn: Callable[[Request], Any], req: Request) -> None:
        data, failed = self._invoke(fn, req)
        try:
            self._post(lambda: self._answer(data, failed))
        except Unreachable:  # closed while the handler ran
            pass

    def _answer(self, data: bytes, failed: bool) -> None:
        self._stats["errors_sent" if failed else "replied"] += 1
        self._send(data)

    # ---- periodic -----------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        # A heartbeat when nothing else went out for an interval (the server must hear from us), or
        # when nothing came in (its echo tells us the server lives; once an interval, not each tick).
        # An Agent polled every second sends and hears every second, so it sends none: that halves
        # what 10,000 Agents cost ResMan. One that only sends events still learns the server lives.
        iv = self._interval * 0.99
        if now - self._last_sent >= iv or (now - self._last_heard >= iv and now - self._last_beat >= iv):
            self._beat(now)
        if self._connected and now - self._last_heard > self._interval * self._liveness:
            self._server_silent()

    def _server_silent(self) -> None:
        if self._connected:
            self._connected = False
            for fn in self._lost_fns:
                self._notify(fn)

    def _transmit(self, pend: Pending) -> bool:
        pend.key = self._target[1]
        self._send(pend.data)  # a failed send is retried by the timer like a lost message
        return True
