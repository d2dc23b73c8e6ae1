"""What Server and Client share: one I/O thread that owns every socket, and the plumbing around it.

ZeroMQ sockets are not thread-safe, so each node touches its sockets only from its own I/O thread.
Other threads hand it work through a deque plus an eventfd wake-up (an eventfd, unlike an inproc
PAIR socket, may be written from any number of threads). Handlers declared ``blocking`` run on a
small thread pool and post their encoded reply back the same way. Outgoing requests wait in a
table keyed by id with their deadlines in a heap, so a timeout or retry costs one heap operation.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import zmq

from galaxy.errors import Conflict, GalaxyError, InvalidInput, Timeout, Unreachable
from galaxy.mesh import wire
from galaxy.mesh._common import InternalError, Outcome, Pending, check_positive, resolve
from galaxy.mesh.types import Request

log = logging.getLogger("galaxy.mesh")

Handler = Callable[[Request], Any]
F = TypeVar("F", bound=Handler)

STAT_NAMES = (
    "received", "replied", "errors_sent", "dropped_malformed", "dropped_unauthorized", "heartbeats",
    "events", "events_unhandled", "duplicates", "requests_sent", "retries", "timeouts",
    "orphan_replies", "replies_refused", "send_dropped", "unroutable", "handler_errors", "loop_errors",
)
class Node:
    """The I/O thread, outbox, pending table, routes and counters of one mesh endpoint."""

    tick_fraction = 0.5  # how often (in heartbeat intervals) the periodic tick runs

    def __init__(self, *, name: str, heartbeat_interval: float, liveness: int, max_frame: int,
                 workers: int) -> None:
        self.name = name
        self._interval = check_positive(heartbeat_interval, "heartbeat_interval")
        if not isinstance(liveness, int) or liveness < 1:
            raise InvalidInput(f"must be an integer >= 1, got {liveness!r}", field="liveness")
        if not isinstance(max_frame, int) or max_frame < 1024:
            raise InvalidInput(f"must be an integer >= 1024, got {max_frame!r}", field="max_frame")
        if not isinstance(workers, int) or workers < 1:
            raise InvalidInput(f"must be an integer >= 1, got {workers!r}", field="workers")
        self._liveness = liveness
        self._max_frame = max_frame
        self._workers = workers
        self._routes: dict[str, tuple[Handler, bool]] = {}
        self._event_handlers: dict[str, tuple[Handler, bool]] = {}
        self._outbox: deque[Pending | Callable[[], object]] = deque()
        self._post_lock = threading.Lock()
        self._sleeping = False  # the I/O thread is (about to be) blocked in poll: a post must wake it
        self._closed = False
        self._running = False
        self._wake_fd = -1
        self._pending: dict[int, Pending] = {}
        self._timers: list[tuple[float, int]] = []
        self._ids = itertools.count(secrets.randbits(40) + 1)
        self._stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._io_ident = 0
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._poller = zmq.Poller()
        self._readers: dict[Any, Callable[[], None]] = {}
        self._next_tick = 0.0

    # ---- registration -------------------------------------------------------------------------

    def route(self, method: str, fn: F | None = None, *, blocking: bool = False) -> Any:
        """Serve requests for ``method`` with ``fn(req) -> reply body``; usable as a decorator.

        ``blocking=False`` runs ``fn`` in the I/O thread, so it must return quickly;
        ``blocking=True`` runs it on the worker pool.
        """
        def register(handler: F) -> F:
            self._routes[self._check_method(method)] = (handler, blocking)
            return handler
        return register if fn is None else register(fn)

    def on_event(self, method: str, fn: F | None = None, *, blocking: bool = False) -> Any:
        """Run ``fn(req)`` for each ``evt`` message named ``method``; its return value is ignored."""
        def register(handler: F) -> F:
            self._event_handlers[self._check_method(method)] = (handler, blocking)
            return handler
        return register if fn is None else register(fn)

    @staticmethod
    def _check_method(method: str) -> str:
        if not isinstance(method, str) or not method or len(method) > wire.MAX_METHOD:
            raise InvalidInput(f"a method is a string of 1..{wire.MAX_METHOD} characters", field="method")
        if method.startswith(wire.RESERVED_PREFIX):
            raise InvalidInput(f"methods starting with {wire.RESERVED_PREFIX!r} are the mesh's own",
                               field="method")
        return method

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start (a snapshot)."""
        return dict(self._stats)

    # ---- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            raise Conflict(f"{self.name} was already started")
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._ctx = zmq.Context(io_threads=1)
        self._thread = threading.Thread(target=self._main, name=f"mesh-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def _stop(self) -> None:
        thread = self._thread
        if thread is None or self._closed:
            return
        try:
            self._post(self._halt)
        except Unreachable:
            pass  # stopped meanwhile by another thread
        if threading.get_ident() != self._io_ident:
            thread.join()

    def _halt(self) -> None:
        self._running = False

    def _main(self) -> None:
        self._io_ident = threading.get_ident()
        try:
            self._open()
            self._poller.register(self._wake_fd, zmq.POLLIN)
            self._readers[self._wake_fd] = self._on_wake
        except BaseException as err:  # reported to start()'s caller
            self._start_error = err if isinstance(err, GalaxyError) else Unreachable(
                f"{self.name}: cannot open its socket: {err}")
            self._ready.set()
            self._shutdown()
            return
        self._running = True
        self._next_tick = time.monotonic() + self._interval * self.tick_fraction
        self._ready.set()
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        poll = self._poller.poll
        readers = self._readers
        outbox = self._outbox
        while self._running:
            try:
                now = time.monotonic()
                wait = self._next_tick - now
                if self._timers and self._timers[0][0] - now < wait:
                    wait = self._timers[0][0] - now
                if outbox:
                    wait = 0
                if wait > 0:
                    with self._post_lock:   # a post after this look finds _sleeping set, and wakes us
                        if outbox:
                            wait = 0
                        else:
                            self._sleeping = True
                ready = poll(max(0, int(wait * 1000) + 1) if wait > 0 else 0)
                self._sleeping = False
                for sock, _ in ready:
                    readers[sock]()
                while outbox:
                    item = outbox.popleft()
                    if isinstance(item, Pending):
                        self._launch(item)
                    else:
                        item()
                self._run_timers(time.monotonic())
            except Exception:  # keep the I/O thread alive whatever one step did
                self._stats["loop_errors"] += 1
                log.exception("%s: error in the mesh I/O loop", self.name)

    def _on_wake(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass

    def _shutdown(self) -> None:
        with self._post_lock:
            self._closed = True
        self._running = False
        gone = Unreachable(f"{self.name} is closed")
        while self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, Pending):
                resolve(item, error=gone)
        for pend in self._pending.values():
            resolve(pend, error=gone)
        self._pending.clear()
        try:
            self._close_sockets()
        finally:
            if self._ctx is not None:
                self._ctx.destroy(linger=0)
            with self._post_lock:
                if self._wake_fd >= 0:
                    os.close(self._wake_fd)
                    self._wake_fd = -1
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- hooks for Server / Client --------------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _close_sockets(self) -> None:
        raise NotImplementedError

    def _transmit(self, pend: Pending) -> bool:
        """Send ``pend.data`` to its peer; False (after failing the future) if that is impossible."""
        raise NotImplementedError

    def _tick(self, now: float) -> None:
        raise NotImplementedError

    # ---- cross-thread hand-off ----------------------------------------------------------------

    def _post(self, item: Pending | Callable[[], object]) -> None:
        with self._post_lock:  # held across the write: shutdown closes the eventfd under this lock
            if self._closed or self._thread is None:
                raise Unreachable(f"{self.name} is not running")
            self._outbox.append(item)
            # Only a sleeping I/O thread needs the eventfd: an awake one looks at the outbox (under
            # this lock) before it sleeps again. One write per sleep, not per message: each write is
            # a system call that lets the other thread take the GIL, thousands of times a second.
            if self._sleeping:
                self._sleeping = False
                os.eventfd_write(self._wake_fd, 1)

    def _in_io_thread(self) -> bool:
        return threading.get_ident() == self._io_ident

    def _pool_submit(self, fn: Callable[..., Any], *args: Any) -> None:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=f"mesh-{self.name}")
                pool = self._pool
        try:
            pool.submit(fn, *args)
        except RuntimeError:  # shutting down
            pass

    def _notify(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback on the pool, so a slow one never stalls the I/O thread."""
        self._pool_submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: callback %r failed", self.name, fn)

    # ---- outgoing requests ----------------------------------------------------------------------

    def _new_request(self, peer: bytes | None, method: str, body: Any, timeout: float,
                     retries: int, done: Callable[[Outcome], None] | None = None) -> Pending:
        """Encode a request in the caller's thread (spreading the CPU) and return its Pending
        (with a Future unless `done` takes the outcome)."""
        if type(method) is not str or not 0 < len(method) <= wire.MAX_METHOD:
            raise InvalidInput(f"a method is a string of 1..{wire.MAX_METHOD} characters", field="method")
        msg_id = next(self._ids)
        data = wire.encode(msg_id, wire.REQ, method, body)
        if len(data) > self._max_frame:
            raise InvalidInput(f"request of {len(data)} bytes exceeds the {self._max_frame}-byte frame limit",
                               field="body")
        return Pending(msg_id, None if done is not None else Future(), data, peer, method, timeout, retries, done)

    def _launch(self, pend: Pending) -> None:
        if self._transmit(pend):
            self._stats["requests_sent"] += 1
            self._track(pend, time.monotonic())

    def _track(self, pend: Pending, now: float) -> None:
        pend.deadline = now + pend.timeout
        self._pending[pend.id] = pend
        heapq.heappush(self._timers, (pend.deadline, pend.id))

    def _run_timers(self, now: float) -> None:
        if now >= self._next_tick:
            self._next_tick = now + self._interval * self.tick_fraction
            self._tick(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, msg_id = heapq.heappop(timers)
            pend = self._pending.get(msg_id)
            if pend is None or pend.deadline != deadline:
                continue  # answered, or re-armed since
            if pend.attempts > 0:
                pend.attempts -= 1
                self._stats["retries"] += 1
                if self._transmit(pend):
                    self._track(pend, now)
                else:
                    self._forget(pend)
                continue
            self._forget(pend)
            self._stats["timeouts"] += 1
            resolve(pend, error=Timeout(f"no reply to {pend.method!r} within {pend.timeout:g}s",
                                               field="timeout"))

    def _forget(self, pend: Pending) -> None:
        self._pending.pop(pend.id, None)

    def _complete(self, msg: wire.Message, route: bytes | None, key: str, key_name: str | None = None) -> None:
        """A rep/err arrived over connection `route` with `key`: resolve the request it answers — only
        if it went to that very connection and key. Ids are a counter, so a peer that got one request
        can guess the ids of requests sent to others; a reply from anyone else is refused, and the
        request keeps waiting for its own peer's."""
        pend = self._pending.get(msg.id)
        if pend is None:
            self._stats["orphan_replies"] += 1
            return
        if pend.route != route or pend.key != key:
            self._stats["replies_refused"] += 1
            return
        self._forget(pend)
        if msg.type == wire.REP:
            resolve(pend, msg.body, key_name=key_name)
        else:
            resolve(pend, error=GalaxyError.from_wire(msg.body), key_name=key_name)

    # ---- incoming requests and events -----------------------------------------------------------

    def _invoke(self, fn: Handler, req: Request) -> tuple[bytes, bool]:
        """Run a handler; returns (encoded rep or err, is_error). Never raises."""
        try:
            body = fn(req)
        except GalaxyError as err:
            return wire.encode_error(req.id, req.method, err), True
        except Exception as err:
            self._stats["handler_errors"] += 1
            log.exception("%s: handler for %r failed", self.name, req.method)
            return wire.encode_error(req.id, req.method, InternalError(
                f"{req.method}: {type(err).__name__}: {err}")), True
        try:
            data = wire.encode(req.id, wire.REP, req.method, body)
        except InvalidInput as err:
            log.error("%s: reply of %r cannot be encoded: %s", self.name, req.method, err)
            return wire.encode_error(req.id, req.method, InternalError(
                f"{req.method}: reply cannot be encoded: {err.message}")), True
        if len(data) > self._max_frame:
            return wire.encode_error(req.id, req.method, InternalError(
                f"{req.method}: reply of {len(data)} bytes exceeds the {self._max_frame}-byte limit")), True
        return data, False

    def _run_event(self, req: Request) -> None:
        entry = self._event_handlers.get(req.method)
        if entry is None:
            self._stats["events_unhandled"] += 1
            return
        self._stats["events"] += 1
        fn, blocking = entry
        if blocking:
            self._pool_submit(self._guarded, fn, req)
        else:
            self._guarded(fn, req)
