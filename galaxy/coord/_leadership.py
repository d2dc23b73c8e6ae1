"""What holding an election means while it lasts, and the moment it stops.

A Leadership is the won lock node of one Election round. It follows the kazoo session rules:
SUSPENDED means "do not assume locks are valid" (``active`` turns False until the connection is back
and the node is proven still ours); LOST, or the lock node disappearing, ends it for good (``lost``
is set and stays set). A connection with no word from the server for a whole session timeout (kazoo
says SUSPENDED two thirds in) is treated as LOST on the spot: the server may expire the session then
and let another replica lead, even though this client cannot hear it yet.

Every callback here runs on kazoo's threads and never blocks: follow-up reads are asynchronous.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.protocol.states import EventType, KazooState, WatchedEvent

from galaxy.coord._retry import retry_call
from galaxy.errors import GalaxyError

log = logging.getLogger(__name__)

RESIGN_DEADLINE = 3.0


class Leadership:
    """The elected holder's view of its own lock; created by Election, handed to ``on_elected``."""

    def __init__(self, client: KazooClient, identity: str, lock_path: str, version: int) -> None:
        self.identity = identity
        self.lost = threading.Event()
        self.reason = ""
        self._client = client
        self._lock_path = lock_path
        self._version = version
        self._session_id = client.client_id[0] if client.client_id else None
        self._session_timeout = getattr(client, "_session_timeout", 10_000) / 1000.0
        self._active = True
        self._changed = threading.Condition()
        self._owned: list[str] = []
        self._suspended_timer: threading.Timer | None = None
        self._released = False

    def __repr__(self) -> str:
        state = "lost" if self.lost.is_set() else ("active" if self._active else "suspended")
        return f"Leadership({self.identity!r}, {self._lock_path!r}, {state})"

    # ---- what the holder reads ------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while this replica may act as leader: connected, node still ours, not lost."""
        return self._active and not self.lost.is_set()

    @property
    def fence(self) -> tuple[str, int]:
        """(lock node path, version): a ZooKeeper ``check`` on it makes a write conditional on leading."""
        return self._lock_path, self._version

    @property
    def lock_path(self) -> str:
        return self._lock_path

    def wait_active(self, timeout: float | None = None) -> bool:
        """Block until active again (True) or lost / timed out (False)."""
        with self._changed:
            self._changed.wait_for(lambda: self.active or self.lost.is_set(), timeout)
            return self.active

    def resign(self) -> None:
        """Stop leading now: set ``lost`` first, then delete the lock node (and leader records) so a
        standby takes over in milliseconds rather than after a session timeout.

        Also after ``lost`` was set another way: "no word from ZooKeeper for a session timeout" is the
        client's own clock, and the session may have survived it (an ensemble that elects a new
        leader restarts every session's clock), keeping the lock node — and the whole queue behind
        a replica that no longer leads. The delete is fenced on the node's version, so it removes
        nothing once the node is gone or someone else's.
        """
        self._lose("resigned")
        with self._changed:
            if self._released:
                return
            self._released = True
        self._release()

    # ---- wiring, used by Election and publish_leader --------------------------------------------
    def own(self, path: str) -> None:
        """Remember an ephemeral node (e.g. the leader record) to delete together with the lock."""
        if path not in self._owned:
            self._owned.append(path)

    def start(self) -> None:
        self._client.add_listener(self._on_state)
        self._check_node()

    def _lose(self, reason: str) -> bool:
        """Mark lost; True for the call that did it."""
        with self._changed:
            if self.lost.is_set():
                return False
            self.reason = reason
            self._active = False
            self.lost.set()
            timer, self._suspended_timer = self._suspended_timer, None
            self._changed.notify_all()
        if timer is not None:
            timer.cancel()
        self._client.remove_listener(self._on_state)
        log.info("leadership of %s lost: %s", self.identity, reason)
        return True

    def _set_active(self, active: bool) -> None:
        with self._changed:
            if self.lost.is_set():
                return
            self._active = active
            self._changed.notify_all()

    def _on_state(self, state: str) -> bool:
        if state == KazooState.LOST:
            self._lose("session lost")
            return True
        if state == KazooState.SUSPENDED:
            self._set_active(False)
            # kazoo says SUSPENDED after 2/3 of a session timeout without a word from the server
            # (an unanswered ping), and the server expires the session one session timeout after
            # it last heard us: a leader that waits the last third stops when a standby may start.
            timer = threading.Timer(self._session_timeout / 3, self._lose,
                                    args=("no word from ZooKeeper for a session timeout",))
            timer.daemon = True
            with self._changed:
                old, self._suspended_timer = self._suspended_timer, timer
            if old is not None:
                old.cancel()
            timer.start()
            return False
        # CONNECTED again (same session): valid only if the lock node is still ours.
        with self._changed:
            pending, self._suspended_timer = self._suspended_timer, None
        if pending is not None:
            pending.cancel()
        self._check_node(reactivate=True)
        return False

    def _check_node(self, reactivate: bool = False) -> None:
        if self.lost.is_set():
            return
        try:
            result = self._client.exists_async(self._lock_path, watch=self._on_node_event)
        except KazooException:
            return  # not connected; the state listener will look again
        result.rawlink(lambda res: self._on_exists(res, reactivate))

    def _on_exists(self, result: Any, reactivate: bool) -> None:
        if not result.successful():
            return  # connection trouble: SUSPENDED/LOST handling covers it
        stat = result.value
        session = self._client.client_id[0] if self._client.client_id else None
        if stat is None or stat.ephemeralOwner != session or (self._session_id and session != self._session_id):
            self._lose("lock node gone")
        elif reactivate:
            self._set_active(True)

    def _on_node_event(self, event: WatchedEvent) -> None:
        if event.type == EventType.DELETED:
            self._lose("lock node deleted")
        else:
            self._check_node()

    def _release(self) -> None:
        client = self._client

        def delete_all() -> None:
            tx = client.transaction()
            tx.check(self._lock_path, self._version)
            for path in self._owned:
                tx.delete(path)
            tx.delete(self._lock_path)
            results = tx.commit()
            if any(isinstance(r, Exception) for r in results) and self._owned:
                # A record already gone (or replaced) must not keep the lock node alive.
                try:
                    client.delete(self._lock_path, version=self._version)
                except KazooException:
                    pass

        if client.state != KazooState.CONNECTED:
            # A request now would wait for the link's return (kazoo queues it): the session's end
            # removes the node, and if the session survives, the next campaign drops it.
            log.info("not deleting lock node %s on resign: ZooKeeper unreachable", self._lock_path)
            return
        try:
            retry_call(delete_all, deadline=RESIGN_DEADLINE)
        except (KazooException, GalaxyError) as err:  # best effort: the session's end removes it anyway
            log.warning("could not delete lock node %s on resign: %s", self._lock_path, err)
