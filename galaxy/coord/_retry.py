"""Retry what ZooKeeper says may succeed later, and nothing else.

A ConnectionLoss or OperationTimeout means the request's fate is unknown and the client is
reconnecting; a session expiry means kazoo is building a new session. Every other error (NoNode,
NodeExists, BadVersion, our own GalaxyErrors) is an answer and surfaces at once. Backoff is
exponential with jitter so a herd of clients does not reconnect in step, and bounded by a deadline
after which the caller gets galaxy.errors.Unreachable.

Callers must make the retried call idempotent (e.g. check before create) because a lost
connection may hide a request that did succeed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionExpiredError

from galaxy.errors import Unreachable

T = TypeVar("T")

RETRYABLE: tuple[type[BaseException], ...] = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)
FIRST_DELAY = 0.05
MAX_DELAY = 1.0


def backoff_delays(first: float = FIRST_DELAY, maximum: float = MAX_DELAY) -> Callable[[], float]:
    """A generator of sleeps: doubling from ``first`` up to ``maximum``, each jittered to 50–100 %."""
    current = first

    def next_delay() -> float:
        nonlocal current
        delay = current * random.uniform(0.5, 1.0)
        current = min(current * 2, maximum)
        return delay

    return next_delay


def retry_call(fn: Callable[[], T], *, deadline: float | None, abort: threading.Event | None = None,
               on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Call ``fn`` until it does not raise a retryable error, ``deadline`` seconds pass, or ``abort`` is set.

    ``deadline=None`` retries for as long as ``abort`` stays clear (a campaigning standby). When
    aborted, the last retryable error is re-raised so the caller sees why it stopped.
    """
    until = None if deadline is None else time.monotonic() + deadline
    next_delay = backoff_delays()
    attempts = 0
    while True:
        attempts += 1
        try:
            return fn()
        except RETRYABLE as err:
            if on_retry is not None:
                on_retry(err)
            delay = next_delay()
            now = time.monotonic()
            if until is not None and now + delay > until:
                raise Unreachable(f"ZooKeeper did not answer for {deadline:g} s "
                                  f"({attempts} attempts; last: {type(err).__name__})") from err
            if abort is not None:
                if abort.wait(delay):
                    raise
            else:
                time.sleep(delay)


def retrying(fn: Callable[..., T], *args: Any, deadline: float = 30.0, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried kazoo-style on ConnectionLoss / OperationTimeout / SessionExpired.

    Raises galaxy.errors.Unreachable once ``deadline`` seconds have passed without an answer.
    """
    return retry_call(lambda: fn(*args, **kwargs), deadline=deadline)
