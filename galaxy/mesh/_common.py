"""Small pieces the Server and Client I/O loops share: the pending-request record and helpers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import zmq

from galaxy.errors import GalaxyError, InternalError, InvalidInput  # noqa: F401  (InternalError re-exported)

NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq converts enum flags on every call

log = logging.getLogger("galaxy.mesh")

# A Galaxy Client's ROUTER-side address ("route") is its identity, a NUL, and a random nonce of its own:
# libzmq routes by that address and, with ROUTER_HANDOVER, gives it to whichever connection claims it
# last. The nonce is never shown to another peer (it travels in the CURVE handshake), so no other
# connection can claim a Client's route and receive what the server sends it; the server reads the
# identity (the part before the NUL) and binds it to the connection's key itself.
ROUTE_SEP = b"\x00"
NONCE_BYTES = 12
MAX_IDENTITY = 255 - len(ROUTE_SEP) - NONCE_BYTES   # libzmq allows 255 bytes of routing id


def new_route(identity: bytes) -> bytes:
    """A fresh route for ``identity`` (checked: no NUL in it); one per Client, kept across reconnects,
    so libzmq hands the route over at once when the same Client dials again."""
    return identity + ROUTE_SEP + secrets.token_bytes(NONCE_BYTES)


def identity_of(route: bytes) -> bytes:
    """The identity a route claims: the part before the first NUL (a Galaxy Client), else the whole
    route (a bare DEALER's routing id, or one libzmq made up, which starts with a NUL)."""
    if not route or route[0] == 0:
        return route
    cut = route.find(ROUTE_SEP)
    return route if cut < 0 else route[:cut]


def drain_frames(recv: Callable[..., Any]) -> int:
    """Read and discard the rest of a multi-frame message; returns how many frames that was."""
    count = 0
    while True:
        count += 1
        if not recv(NOBLOCK, copy=False).more:
            return count


class Outcome:
    """How a request ended, handed to a `done` callback: the answer's body or the error, with the
    two calls of a done Future (`result()` raises the error), so a caller can take either."""

    __slots__ = ("body", "error", "key_name")

    def __init__(self, body: Any, error: BaseException | None, key_name: str | None = None) -> None:
        self.body = body
        self.error = error
        self.key_name = key_name  # KeyRing name of the key that answered (a server's request); else None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.body

    def exception(self) -> BaseException | None:
        return self.error


class Pending:
    """A request this node sent and still waits for: its end goes to `future`, or to `done`.

    `done` (an `Outcome` → None, run in the I/O thread, so it must not block) serves callers that
    send thousands of requests a second: a Future costs a Condition and a lock per request, which
    at 10,000 polls a second was a sixth of ResMan's CPU."""

    __slots__ = ("id", "future", "done", "data", "peer", "method", "timeout", "attempts", "deadline", "route",
                 "key")

    def __init__(self, msg_id: int, future: Future[Any] | None, data: bytes, peer: bytes | None, method: str,
                 timeout: float, attempts: int, done: Callable[[Outcome], None] | None = None) -> None:
        self.id = msg_id
        self.future = future
        self.done = done
        self.data = data
        self.peer = peer
        self.method = method
        self.timeout = timeout
        self.attempts = attempts  # re-sends left after the first attempt
        self.deadline = 0.0
        # Where it went and to which key: only a reply from that connection and that key ends it.
        self.route: bytes | None = None
        self.key = ""


def resolve(pend: Pending, result: Any = None, error: BaseException | None = None,
            key_name: str | None = None) -> None:
    """End a request: call its `done`, or complete its future unless the owner cancelled it."""
    if pend.done is not None:
        try:
            pend.done(Outcome(result, error, key_name))
        except Exception:       # a caller's bug must not end the I/O thread
            log.exception("done callback of %r failed", pend.method)
        return
    assert pend.future is not None
    try:
        if error is not None:
            pend.future.set_exception(error)
        else:
            pend.future.set_result(result)
    except InvalidStateError:
        pass


def check_positive(value: float, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"must be a positive number, got {value!r}", field=field)
    return float(value)
