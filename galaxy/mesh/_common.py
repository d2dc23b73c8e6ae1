"""Small pieces the Server and Client I/O loops share: the pending-request record and helpers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import zmq

from galaxy.errors import GalaxyError, InternalError, InvalidInput  # noqa: F401  (InternalError re-exported)

NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq converts enum flags on every call

log = logging.getLogger("galaxy.mesh")


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

    __slots__ = ("body", "error")

    def __init__(self, body: Any, error: BaseException | None) -> None:
        self.body = body
        self.error = error

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

    __slots__ = ("id", "future", "done", "data", "peer", "method", "timeout", "attempts", "deadline")

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


def resolve(pend: Pending, result: Any = None, error: BaseException | None = None) -> None:
    """End a request: call its `done`, or complete its future unless the owner cancelled it."""
    if pend.done is not None:
        try:
            pend.done(Outcome(result, error))
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
