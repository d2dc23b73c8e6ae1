"""One role's leader, followed through ZooKeeper: the SDK's only path to ResMan or the AppMaster.

The link watches ``<role>/leader`` and keeps one mesh connection to the endpoint it names. When the
record changes, the old connection is closed and a new one opened, so a caller never sees a
failover unless a *write* was in flight. The retry rules follow from what the caller can know:

* Reads are idempotent: on Timeout, Unreachable or NotLeader the link re-reads the leader record and
  asks again, until the overall deadline.
* A write is sent only right after the leader answered a ``status`` probe on the same connection, so
  a dead or unreachable leader is found before the write leaves; a write that never left provably
  never ran and is retried like a read. NotLeader also proves it did
  not run. Once sent, a lost leader means the outcome is unknown: the link raises
  :class:`OutcomeUnknown` naming the operation instead of risking running it twice.

A fresh mesh client per leader (rather than ``Client.connect_to``, which re-sends calls in flight to
the new peer) is what makes that last rule hold: the new leader never sees a write the old one may
already have applied.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Paths, WatchHandle, watch_leader
from galaxy.errors import GalaxyError, NotLeader, RetryableError, Timeout, Unreachable
from galaxy.mesh import Client as MeshClient
from galaxy.mesh import Keypair
from galaxy.sdk.errors import OutcomeUnknown

CONNECT_WAIT = 3.0       # how long a write waits for the leader to answer a probe before re-resolving
PROBE = "status"         # served by every replicated daemon while it leads
RETRY_PAUSE = 0.1        # between attempts at a read, so a dead endpoint is not hammered
HEARTBEAT = 1.0


class _Link:
    """A mesh client aimed at one leader."""

    def __init__(self, leader: LeaderInfo, keypair: Keypair, identity: str, timeout: float) -> None:
        self.leader = leader
        self.mesh = MeshClient(leader.endpoint, leader.public_key, keypair, identity,
                               heartbeat_interval=HEARTBEAT, timeout=timeout, retries=1, name=f"sdk-{identity}")
        self.mesh.start()

    def answers(self, timeout: float) -> bool:
        """True if the leader answers a ``status`` probe now: the link is up and it still leads."""
        try:
            self.mesh.call(PROBE, {}, timeout=max(timeout, 0.01), retries=0)
        except (Timeout, Unreachable, NotLeader):
            return False
        return True

    def close(self) -> None:
        self.mesh.close()


class LeaderLink:
    """Calls to whichever replica of ``role`` leads cluster ``paths`` now."""

    def __init__(self, zk: KazooClient, paths: Paths, role: str, keypair: Keypair, *,
                 timeout: float = 10.0, deadline: float = 30.0) -> None:
        self.role = role
        self._zk = zk
        self._paths = paths
        self._keypair = keypair
        self._timeout = timeout
        self._deadline = deadline
        self._identity = f"sdk-{uuid.uuid4().hex[:12]}"
        self._cond = threading.Condition()
        self._leader: LeaderInfo | None = None
        self._seen = False             # the watch has delivered at least one reading
        self._link: _Link | None = None
        self._watch: WatchHandle[LeaderInfo | None] | None = None
        self._closed = False

    # ---- leader tracking ----------------------------------------------------------------------

    def _on_leader(self, info: LeaderInfo | None) -> None:
        with self._cond:
            old = self._link
            if old is not None and (info is None or old.leader != info):
                self._link = None
            else:
                old = None
            self._leader = info
            self._seen = True
            self._cond.notify_all()
        if old is not None:
            old.close()  # calls in flight there fail Unreachable: reads go again, writes say so

    def leader(self, wait: float = 0.0) -> LeaderInfo | None:
        """The leader record as last seen (waiting up to ``wait`` s for one to appear)."""
        self._ensure_watch()
        end = time.monotonic() + wait
        with self._cond:
            while (not self._seen or self._leader is None) and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._leader

    def _ensure_watch(self) -> None:
        with self._cond:
            if self._watch is not None or self._closed:
                return
            self._watch = watch_leader(self._zk, self._paths, self.role, self._on_leader)

    def _current(self, end: float) -> _Link:
        """The link to the current leader, opened if needed; Unreachable when none appears by ``end``."""
        self._ensure_watch()
        with self._cond:
            while not self._closed:
                if self._link is not None:
                    return self._link
                if self._seen and self._leader is not None:
                    self._link = _Link(self._leader, self._keypair, self._identity, self._timeout)
                    return self._link
                left = end - time.monotonic()
                if left <= 0:
                    raise Unreachable(f"no {self.role} leader in cluster {self._paths.cluster!r} "
                                      f"(nothing at {self._paths.leader(self.role)}): is the cluster running?")
                self._cond.wait(left)
            raise Unreachable(f"the connection to the {self.role} is closed")

    def _drop(self, link: _Link) -> None:
        """Forget a link that failed, so the next attempt opens a fresh one to whoever leads then."""
        with self._cond:
            if self._link is not link:
                return
            self._link = None
        link.close()

    # ---- calls ----------------------------------------------------------------------------------

    def call(self, method: str, body: Any = None, *, write: bool, timeout: float | None = None) -> Any:
        """One request to the leader, retried across leader changes as the module docstring describes."""
        end = time.monotonic() + self._deadline + (timeout or 0.0)
        last: GalaxyError | None = None
        while True:
            if time.monotonic() >= end:
                raise self._gave_up(method, last)
            link = self._current(end)
            if write and not link.answers(min(CONNECT_WAIT, end - time.monotonic())):
                last = Unreachable(f"the {self.role} at {link.leader.endpoint} does not answer")
                self._drop(link)
                continue  # never sent: provably did not run
            try:
                return link.mesh.call(method, body, timeout=timeout, retries=0 if timeout else None)
            except NotLeader as err:
                last = err
                self._drop(link)
            except (Timeout, Unreachable) as err:
                if write:
                    raise OutcomeUnknown(
                        f"{method}: the {self.role} {link.leader.identity} at {link.leader.endpoint} went away "
                        f"before answering, so it may or may not have been applied; check the current state "
                        f"and retry if needed ({err.message})", method=method) from None
                last = err
                self._drop(link)
            time.sleep(RETRY_PAUSE)

    def _gave_up(self, method: str, last: GalaxyError | None) -> RetryableError:
        detail = f": {last.message}" if last is not None else ""
        return Unreachable(f"{method}: no answer from the {self.role} of cluster {self._paths.cluster!r} "
                           f"within {self._deadline:g}s{detail}")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            link, self._link = self._link, None
            watch, self._watch = self._watch, None
            self._cond.notify_all()
        if watch is not None:
            watch.cancel()
        if link is not None:
            link.close()
