"""The leader record: how clients and peers find the active ResMan / AppMaster.

``<role>/leader`` is an ephemeral znode holding JSON ``{"identity", "endpoint", "public_key"}``
(JSON so any ZooKeeper client can read it). Ephemeral, so it vanishes with the holder's session;
written with the leadership's fence, so a deposed holder cannot overwrite its successor's record;
and registered with the Leadership, so a resign removes it in the same transaction as the lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
from kazoo.protocol.states import ZnodeStat

from galaxy.coord._leadership import Leadership
from galaxy.coord._paths import Paths
from galaxy.coord._retry import retry_call
from galaxy.coord._txn import first_failure
from galaxy.coord._watch import Watcher, WatchHandle
from galaxy.errors import Conflict, InvalidInput, NotLeader, ProtocolError

log = logging.getLogger(__name__)

DEADLINE = 30.0
_ATTEMPTS = 5


@dataclass(frozen=True)
class LeaderInfo:
    """Who leads a role and how to reach it (``public_key`` is the CURVE key, Z85 text)."""

    identity: str
    endpoint: str
    public_key: str

    def __post_init__(self) -> None:
        for name in ("identity", "endpoint", "public_key"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInput("expected a string", field=name)
        if not self.identity:
            raise InvalidInput("must not be empty", field="identity")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str = "leader record") -> LeaderInfo:
        try:
            body = json.loads(data.decode("utf-8"))
            return cls(identity=body["identity"], endpoint=body["endpoint"], public_key=body["public_key"])
        except (ValueError, KeyError, TypeError, InvalidInput) as err:
            raise ProtocolError(f"malformed {where}: {err}") from err


def publish_leader(client: KazooClient, paths: Paths, role: str, info: LeaderInfo, *,
                   leadership: Leadership | None = None) -> None:
    """Write ``info`` as the ephemeral leader record of ``role``, replacing any stale one.

    With ``leadership``, the write is fenced (NotLeader if it is lost) and the record is deleted
    together with the lock when it resigns.
    """
    path = paths.leader(role)
    if leadership is not None and leadership.lost.is_set():
        raise NotLeader(f"{info.identity} no longer leads {role}: {leadership.reason}")
    retry_call(lambda: client.ensure_path(path.rsplit("/", 1)[0]), deadline=DEADLINE)
    data = info.to_json()
    for _ in range(_ATTEMPTS):
        stat = retry_call(lambda: client.exists(path), deadline=DEADLINE)

        def commit(stat: ZnodeStat | None = stat) -> list[Any]:
            tx = client.transaction()
            if leadership is not None:
                tx.check(*leadership.fence)
            if stat is not None:
                tx.delete(path, version=stat.version)
            tx.create(path, data, ephemeral=True)
            return tx.commit()  # type: ignore[no-any-return]

        results = retry_call(commit, deadline=DEADLINE)
        failed = first_failure(results)
        if failed is None:
            if leadership is not None:
                leadership.own(path)
            return
        index, error = failed
        if leadership is not None and index == 0:
            raise NotLeader(f"{info.identity} no longer leads {role}: its lock node is gone")
        if not isinstance(error, NoNodeError | NodeExistsError | BadVersionError):
            raise error
        # The record changed between our look and our write: look again.
    raise Conflict(f"the {role} leader record kept changing; gave up after {_ATTEMPTS} attempts")


def read_leader(client: KazooClient, paths: Paths, role: str) -> LeaderInfo | None:
    """The current leader record of ``role``, or None when nobody has published one."""
    path = paths.leader(role)
    try:
        data, _ = retry_call(lambda: client.get(path), deadline=DEADLINE)
    except NoNodeError:
        return None
    return LeaderInfo.from_json(data, path)


def watch_leader(client: KazooClient, paths: Paths, role: str,
                 callback: Callable[[LeaderInfo | None], None]) -> WatchHandle[LeaderInfo | None]:
    """Call ``callback`` with the leader record now and on every change (None while there is none)."""
    path = paths.leader(role)

    def read(watch: Watcher) -> LeaderInfo | None:
        while True:
            try:
                data, _ = client.get(path, watch=watch)
            except NoNodeError:
                if client.exists(path, watch=watch) is None:
                    return None
                continue  # created in between: read it
            try:
                return LeaderInfo.from_json(data, path)
            except ProtocolError as err:
                log.warning("ignoring %s", err)
                return None

    return WatchHandle(client, read, callback, f"leader-{role}")
