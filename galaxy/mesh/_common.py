"""Small pieces the Server and Client I/O loops share: the pending-request record and helpers."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import zmq

from galaxy.errors import GalaxyError, InternalError, InvalidInput  # noqa: F401  (InternalError re-exported)

NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq converts enum flags on every call


def drain_frames(recv: Callable[..., Any]) -> int:
    """Read and discard the rest of a multi-frame message; returns how many frames that was."""
    count = 0
    while True:
        count += 1
        if not recv(NOBLOCK, copy=False).more:
            return count


class Pending:
    """A request this node sent and still waits for."""

    __slots__ = ("id", "future", "data", "peer", "method", "timeout", "attempts", "deadline")

    def __init__(self, msg_id: int, future: Future[Any], data: bytes, peer: bytes | None, method: str,
                 timeout: float, attempts: int) -> None:
        self.id = msg_id
        self.future = future
        self.data = data
        self.peer = peer
        self.method = method
        self.timeout = timeout
        self.attempts = attempts  # re-sends left after the first attempt
        self.deadline = 0.0


def resolve(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Complete a future unless its owner already cancelled it."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def check_positive(value: float, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"must be a positive number, got {value!r}", field=field)
    return float(value)
