"""The pull loop: send the worker's state to the master on an interval (at once on a change), hand the
reply back to the state machine, and notice when no master has answered for a while.

It runs on its own thread and only ever reads a published snapshot, so a master that times out never
delays the state machine, and a slow deploy never delays a report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from galaxy.errors import GalaxyError
from galaxy.protocol.pod import EXEC_RESULT, REPORT

log = logging.getLogger(__name__)

Transport = Callable[[str, Any], Any]
MIN_INTERVAL = 0.05
MAX_INTERVAL = 60.0
OUTBOX_LIMIT = 64


class Reporter:
    """``snapshot()`` gives (seq, body); ``deliver(seq, reply)`` and ``master_seen(bool)`` go back."""

    def __init__(self, transport: Transport, snapshot: Callable[[], tuple[int, dict[str, Any]]],
                 deliver: Callable[[int, Any], None], master_seen: Callable[[bool], None], *,
                 interval: float, lost_after: float) -> None:
        self._transport = transport
        self._snapshot = snapshot
        self._deliver = deliver
        self._master_seen = master_seen
        self._interval = interval
        self._lost_after = lost_after
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._outbox: deque[dict[str, Any]] = deque(maxlen=OUTBOX_LIMIT)
        self._outbox_lock = threading.Lock()
        self._last_ok = time.monotonic()
        self._lost = False
        self.reports_sent = 0
        self._thread = threading.Thread(target=self._run, name="galaxy-reporter", daemon=True)

    def start(self) -> Reporter:
        self._thread.start()
        return self

    def poke(self) -> None:
        """The state changed: report now instead of at the next interval."""
        self._wake.set()

    def queue_exec_result(self, body: dict[str, Any]) -> None:
        with self._outbox_lock:
            self._outbox.append(body)
        self._wake.set()

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10.0)

    def final_report(self) -> bool:
        """One last report (the worker is exiting); True if the master took it."""
        _seq, body = self._snapshot()
        try:
            self._transport(REPORT, body)
            return True
        except GalaxyError:
            return False

    @property
    def master_lost(self) -> bool:
        return self._lost

    def _run(self) -> None:
        interval = self._interval
        while not self._closing.is_set():
            self._wake.clear()
            seq, body = self._snapshot()
            answered = False
            try:
                reply = self._transport(REPORT, body)
                answered = True
            except GalaxyError as err:
                if not err.retryable:  # the master answered, with a refusal: it is there
                    answered = True
                    log.warning("the master refused report %d: %s", seq, err)
                else:
                    log.debug("report %d not answered: %s", seq, err)
                reply = None
            except Exception:  # a broken transport must not end the pull loop
                log.exception("report %d failed", seq)
                reply = None
            self.reports_sent += 1
            now = time.monotonic()
            if answered:
                self._last_ok = now
                if self._lost:
                    self._lost = False
                    self._master_seen(True)
                if reply is not None:
                    interval = _interval_of(reply, self._interval)
                    self._deliver(seq, reply)
                self._flush_outbox()
            elif not self._lost and now - self._last_ok > self._lost_after:
                self._lost = True
                self._master_seen(False)
            self._wake.wait(interval)

    def _flush_outbox(self) -> None:
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    return
                body = self._outbox[0]
            try:
                self._transport(EXEC_RESULT, body)
            except GalaxyError as err:
                if err.retryable:
                    return  # keep it for the next answered report
                log.warning("the master refused exec result %s: %s", body.get("exec_id"), err)
            with self._outbox_lock:
                if self._outbox and self._outbox[0] is body:
                    self._outbox.popleft()


def _interval_of(reply: Any, default: float) -> float:
    value = reply.get("interval") if isinstance(reply, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return min(MAX_INTERVAL, max(MIN_INTERVAL, float(value)))
    return default
