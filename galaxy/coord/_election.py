"""Leader election for the replicas of one role (kazoo's lock recipe, rebuilt for fencing).

Each contender creates an ephemeral sequential node ``<uuid>__lock__<seq>`` (kazoo's naming, so
kazoo's own Lock/Election read the same directory) holding its identity, and watches only its
predecessor; the lowest sequence leads. The uuid prefix lets a create retried after a lost
connection find the node the first attempt made instead of queueing twice.

Built here rather than on ``kazoo.recipe.election`` because Galaxy needs three things that recipe
hides: the winning node's path and version (the fence for state writes), a Leadership that turns
inactive on SUSPENDED and lost on LOST, and a ``stop()`` that resigns in milliseconds.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import WatchedEvent

from galaxy.coord._leadership import Leadership
from galaxy.coord._paths import Paths
from galaxy.coord._retry import retry_call
from galaxy.errors import GalaxyError, InvalidInput

log = logging.getLogger(__name__)

NODE_MARK = "__lock__"
_CONTENDER = re.compile(r"__lock__(\d{10})$")
POLL = 0.2  # how often a waiting standby looks at a caller-owned stop event
STOP_JOIN = 5.0


def _sequence(name: str) -> str:
    match = _CONTENDER.search(name)
    return match.group(1) if match else ""


class Election:
    """Campaign for ``role`` in cluster ``paths`` as ``identity``; the winner is handed a Leadership."""

    def __init__(self, client: KazooClient, paths: Paths, role: str, identity: str) -> None:
        if not isinstance(identity, str) or not identity:
            raise InvalidInput("must be a non-empty string", field="identity")
        self.path = paths.election(role)
        self.role = role
        self.identity = identity
        self._client = client
        self._wake = threading.Event()
        self._stop: threading.Event = threading.Event()
        self._node: str | None = None
        self._leadership: Leadership | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # ---- public -----------------------------------------------------------------------------------
    def run(self, on_elected: Callable[[Leadership], None], stop: threading.Event | None = None) -> None:
        """Campaign until ``stop`` is set; each time elected, call ``on_elected(leadership)`` here.

        When ``on_elected`` returns (it should once ``leadership.lost`` is set) the lock is released
        and the campaign starts again. If it raises, the lock is released and the error propagates.
        """
        if stop is not None:
            self._stop = stop
        self._client.add_listener(self._on_state)
        try:
            while not self._stop.is_set():
                leadership = self._campaign()
                if leadership is None:
                    break
                try:
                    on_elected(leadership)
                finally:
                    self._leadership = None
                    self._node = None
                    leadership.resign()
        finally:
            self._client.remove_listener(self._on_state)
            self._withdraw()

    def start(self, on_elected: Callable[[Leadership], None]) -> threading.Thread:
        """``run`` in a daemon thread; ``stop()`` ends it. An error ``on_elected`` raised is kept in ``error``."""
        if self._thread is not None and self._thread.is_alive():
            raise InvalidInput("this election is already running", field="election")
        self._stop = threading.Event()

        def body() -> None:
            try:
                self.run(on_elected, self._stop)
            except BaseException as err:  # kept for the owner; a daemon thread has nobody to raise to
                self.error = err
                log.exception("election %s of %s ended with an error", self.path, self.identity)

        self._thread = threading.Thread(target=body, name=f"galaxy-election-{self.role}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = STOP_JOIN) -> None:
        """Stop campaigning and resign at once if leading (a standby takes over in milliseconds)."""
        self._stop.set()
        self._wake.set()
        leadership = self._leadership
        if leadership is not None:
            leadership.resign()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def leadership(self) -> Leadership | None:
        """The current Leadership while this contender holds the lock, else None."""
        return self._leadership

    def contenders(self) -> list[str]:
        """Identities of everyone campaigning, the leader first."""
        try:
            children = retry_call(lambda: self._client.get_children(self.path), deadline=10.0)
        except NoNodeError:
            return []
        names = sorted((c for c in children if _CONTENDER.search(c)), key=_sequence)
        identities: list[str] = []
        for name in names:
            try:
                data, _ = retry_call(lambda n=name: self._client.get(f"{self.path}/{n}"),  # type: ignore[misc]
                                     deadline=10.0)
            except NoNodeError:
                continue
            identities.append(data.decode("utf-8", "replace"))
        return identities

    # ---- one round --------------------------------------------------------------------------------
    def _campaign(self) -> Leadership | None:
        """Queue up and wait for our turn; the Leadership when elected, None when stopped."""
        prefix = uuid.uuid4().hex + NODE_MARK
        try:
            retry_call(lambda: self._client.ensure_path(self.path), deadline=None, abort=self._stop)
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    children = retry_call(lambda: self._client.get_children(self.path), deadline=None,
                                          abort=self._stop)
                except NoNodeError:  # someone removed the election directory: recreate it
                    retry_call(lambda: self._client.ensure_path(self.path), deadline=None, abort=self._stop)
                    continue
                mine = next((c for c in children if c.startswith(prefix)), None)
                if mine is None:
                    # First round, or the session expired and took our node: (re)join the queue.
                    created = retry_call(lambda: self._create(prefix), deadline=None, abort=self._stop)
                    self._node = created
                    continue
                self._node = mine
                queue = sorted((c for c in children if _CONTENDER.search(c)), key=_sequence)
                position = queue.index(mine)
                if position == 0:
                    leadership = self._take(mine)
                    if leadership is not None:
                        return leadership
                    continue
                predecessor = f"{self.path}/{queue[position - 1]}"
                if retry_call(lambda p=predecessor: self._client.exists(p, watch=self._on_watch),  # type: ignore[misc]
                              deadline=None, abort=self._stop) is None:
                    continue
                while not self._wake.wait(POLL):
                    if self._stop.is_set():
                        break
        except KazooException:
            if not self._stop.is_set():
                raise
        return None

    def _create(self, prefix: str) -> str:
        # A create retried after ConnectionLoss may already have happened: look for it first.
        try:
            children = self._client.get_children(self.path)
        except NoNodeError:
            children = []
        for child in children:
            if child.startswith(prefix):
                return child
        self._drop_stale(children)
        path = self._client.create(f"{self.path}/{prefix}", self.identity.encode("utf-8"),
                                   ephemeral=True, sequence=True, makepath=True)
        return path.rsplit("/", 1)[1]

    def _drop_stale(self, children: list[str]) -> None:
        """Delete queue nodes this session made as this identity in an earlier round.

        A round ends with the lock node deleted (``Leadership.resign``), but that delete can fail
        while the connection is down; if the session then survives (a ZooKeeper ensemble restarts
        every session's clock when it elects a new leader), the old node would stay at the head of
        the queue with nobody leading behind it until the process exits.
        """
        session = self._client.client_id[0] if self._client.client_id else None
        for child in children:
            if not _CONTENDER.search(child):
                continue
            path = f"{self.path}/{child}"
            try:
                data, stat = self._client.get(path)
            except NoNodeError:
                continue
            if stat.ephemeralOwner == session and data == self.identity.encode("utf-8"):
                log.info("%s removes its stale election node %s", self.identity, path)
                try:
                    self._client.delete(path, version=stat.version)
                except NoNodeError:
                    pass

    def _take(self, node: str) -> Leadership | None:
        path = f"{self.path}/{node}"
        stat = retry_call(lambda: self._client.exists(path), deadline=None, abort=self._stop)
        session = self._client.client_id[0] if self._client.client_id else None
        if stat is None or stat.ephemeralOwner != session:
            return None  # our session changed under us; the node is not ours to lead with
        leadership = Leadership(self._client, self.identity, path, stat.version)
        self._leadership = leadership
        leadership.start()
        if self._stop.is_set():
            leadership.resign()
            self._leadership = None
            return None
        log.info("%s elected %s (%s)", self.identity, self.role, path)
        return leadership

    def _withdraw(self) -> None:
        """Leave the queue when stopping as a standby, so nobody waits on a node that will not lead."""
        node, self._node = self._node, None
        if node is None:
            return
        try:
            retry_call(lambda: self._client.delete(f"{self.path}/{node}"), deadline=2.0)
        except NoNodeError:
            pass
        except (KazooException, GalaxyError) as err:  # best effort: the session's end removes it anyway
            log.debug("could not withdraw %s: %s", node, err)

    def _on_watch(self, event: WatchedEvent) -> None:
        self._wake.set()

    def _on_state(self, state: str) -> bool:
        self._wake.set()
        return False
