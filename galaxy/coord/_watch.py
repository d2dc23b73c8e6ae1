"""Keep a callback told about one piece of ZooKeeper data, whatever happens to the connection.

ZooKeeper watches fire once and say only "something changed", and they can be missed across a
session loss. So a watch here is a loop in its own thread: read the data (re-arming every watch
the read needs), hand the value to the callback if it differs from the last one, then sleep until
a watch fires or the client reconnects. Callbacks therefore run on that thread, may take their
time, and never stall kazoo's event thread; each sees the latest value, not every intermediate one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState

from galaxy.coord._retry import backoff_delays, retry_call
from galaxy.errors import GalaxyError

log = logging.getLogger(__name__)

T = TypeVar("T")
Watcher = Callable[[Any], None]
_UNSET: Any = object()
CANCEL_JOIN = 5.0


class WatchHandle(Generic[T]):
    """A running watch; ``cancel()`` stops it (no callback starts after cancel returns)."""

    def __init__(self, client: KazooClient, read: Callable[[Watcher], T], callback: Callable[[T], None],
                 name: str) -> None:
        self._client = client
        self._read = read
        self._callback = callback
        self._dirty = threading.Event()
        self._cancelled = threading.Event()
        self._callback_lock = threading.Lock()
        self.name = name
        client.add_listener(self._on_state)
        self._thread = threading.Thread(target=self._loop, name=f"galaxy-watch-{name}", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        self._dirty.set()
        self._client.remove_listener(self._on_state)
        if self._thread is not threading.current_thread():
            with self._callback_lock:  # wait out a callback in progress
                pass
            self._thread.join(CANCEL_JOIN)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _poke(self, _event: Any = None) -> None:
        self._dirty.set()

    def _on_state(self, state: str) -> bool:
        if state == KazooState.CONNECTED:
            self._dirty.set()  # watches may have been missed while away: read again
        return False

    def _loop(self) -> None:
        last: Any = _UNSET
        pause = backoff_delays()
        while not self._cancelled.is_set():
            self._dirty.clear()
            try:
                value = retry_call(lambda: self._read(self._poke), deadline=None, abort=self._cancelled)
            except (KazooException, GalaxyError) as err:
                if self._cancelled.is_set():
                    return
                log.warning("watch %s: read failed: %s", self.name, err)
                self._cancelled.wait(pause())
                continue
            pause = backoff_delays()
            if value != last:
                last = value
                with self._callback_lock:
                    if self._cancelled.is_set():
                        return
                    try:
                        self._callback(value)
                    except Exception:  # a faulty callback must not end the watch
                        log.exception("watch %s: callback failed", self.name)
            self._dirty.wait()
