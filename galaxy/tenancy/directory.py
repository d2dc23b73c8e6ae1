"""Every daemon's live view of users, pools and pool policies, kept from ZooKeeper, and the keys it lets in.

Users are records in ``state/users`` written by the AppMaster leader; pools are names in
``state/pools`` (declared by an administrator, or by ResMan when a host first registers in one, as
Nomad does); a pool's policy is ``state/policies/<pool>`` (galaxy.tenancy.policy). A Directory watches
all three and keeps the daemon's KeyRing in step: a user's key is admitted
when their record appears and removed the moment it goes — and since the mesh checks the key of every
message, a removed user's connection is cut at its next message, not at its next connect.

The daemon that made a change applies it to its own Directory before answering (``apply_user`` /
``forget_user``, ``apply_policy``), so the caller never sees the change not yet in effect there; others follow within
a ZooKeeper watch round trip.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cbor2
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from galaxy.coord import Paths, WatchHandle
from galaxy.errors import GalaxyError
from galaxy.mesh import KeyRing
from galaxy.tenancy.model import DEFAULT_POOL, User
from galaxy.tenancy.policy import POLICIES, PoolPolicy
from galaxy.tenancy.principal import Principal, resolve

log = logging.getLogger(__name__)

USERS = "users"
POOLS = "pools"


class Directory:
    def __init__(self, zk: KazooClient, paths: Paths, keyring: KeyRing | None = None) -> None:
        self.zk = zk
        self.paths = paths
        self.keyring = keyring
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._pools: frozenset[str] = frozenset({DEFAULT_POOL})
        self._policies: dict[str, PoolPolicy] = {}
        self._admitted: dict[str, str] = {}      # public key -> user name, keys this Directory added
        self._synced = threading.Event()
        self._policies_synced = threading.Event()
        self._watches: list[WatchHandle[Any]] = []

    # ---- life ------------------------------------------------------------------------------------
    def start(self) -> Directory:
        self._watches = [
            WatchHandle(self.zk, self._read_users, self._set_users, "tenancy-users"),
            WatchHandle(self.zk, self._read_pools, self._set_pools, "tenancy-pools"),
            WatchHandle(self.zk, self._read_policies, self._set_policies, "tenancy-policies"),
        ]
        return self

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once users and pool policies have been read from ZooKeeper at least once."""
        if not self._synced.wait(timeout):
            return False
        return self._policies_synced.wait(timeout)

    def close(self) -> None:
        for watch in self._watches:
            watch.cancel()
        self._watches = []

    # ---- reads -----------------------------------------------------------------------------------
    def principal(self, key_name: str | None) -> Principal:
        with self._lock:
            return resolve(key_name, self._users)

    def user(self, name: str) -> User | None:
        with self._lock:
            return self._users.get(name)

    def users(self) -> dict[str, User]:
        with self._lock:
            return dict(self._users)

    def pools(self) -> frozenset[str]:
        with self._lock:
            return self._pools

    def has_pool(self, pool: str) -> bool:
        with self._lock:
            return pool in self._pools

    def policy(self, pool: str) -> PoolPolicy:
        """The pool's policy; a pool without one (or whose record cannot be read) allows nothing."""
        with self._lock:
            return self._policies.get(pool) or PoolPolicy()

    # ---- local application of this daemon's own writes -----------------------------------------
    def apply_user(self, user: User) -> None:
        with self._lock:
            users = dict(self._users)
            users[user.name] = user
            self._install(users)

    def forget_user(self, name: str) -> None:
        with self._lock:
            users = dict(self._users)
            users.pop(name, None)
            self._install(users)

    def apply_pools(self, pools: set[str] | frozenset[str]) -> None:
        with self._lock:
            self._pools = frozenset(pools) | {DEFAULT_POOL}

    def add_pool(self, pool: str) -> None:
        """This daemon declared ``pool``: in effect here at once (a read-modify-write under the lock,
        so a watch update landing meanwhile is not lost)."""
        with self._lock:
            self._pools = self._pools | {pool}

    def drop_pool(self, pool: str) -> None:
        with self._lock:
            self._pools = (self._pools - {pool}) | {DEFAULT_POOL}
            self._policies.pop(pool, None)

    def apply_policy(self, pool: str, policy: PoolPolicy) -> None:
        """This daemon wrote ``pool``'s policy: in effect here before anyone hears of it."""
        with self._lock:
            self._policies = {**self._policies, pool: policy}

    # ---- ZooKeeper -------------------------------------------------------------------------------
    def _read_users(self, watch: Any) -> dict[str, bytes]:
        return read_records(self.zk, self.paths.state(USERS), watch)

    def _read_pools(self, watch: Any) -> frozenset[str]:
        base = self.paths.state(POOLS)
        if self.zk.exists(base, watch=watch) is None:
            return frozenset()
        return frozenset(self.zk.get_children(base, watch=watch))

    def _read_policies(self, watch: Any) -> dict[str, bytes]:
        return read_records(self.zk, self.paths.state(POLICIES), watch)

    def _set_policies(self, raw: dict[str, bytes]) -> None:
        policies: dict[str, PoolPolicy] = {}
        for pool, data in raw.items():
            try:
                policies[pool] = PoolPolicy.from_dict(cbor2.loads(data))
            except (GalaxyError, ValueError, TypeError, cbor2.CBORDecodeError) as err:
                log.error("state/policies/%s is unreadable; the pool allows nothing beyond the default: %s",
                          pool, err)
        with self._lock:
            self._policies = policies
        self._policies_synced.set()

    def _set_users(self, raw: dict[str, bytes]) -> None:
        users: dict[str, User] = {}
        for name, data in raw.items():
            try:
                record = cbor2.loads(data)
                user = User.from_dict(record if isinstance(record, dict) else {})
            except (GalaxyError, ValueError, TypeError, cbor2.CBORDecodeError) as err:
                log.error("state/users/%s is unreadable, the user is locked out: %s", name, err)
                continue
            users[name] = user
        with self._lock:
            self._install(users)
        self._synced.set()

    def _set_pools(self, names: frozenset[str]) -> None:
        self.apply_pools(names)

    def _install(self, users: dict[str, User]) -> None:
        """Make `users` current and the KeyRing match it (caller holds the lock)."""
        self._users = users
        if self.keyring is None:
            return
        wanted = {u.key: u.name for u in users.values()}
        for key, name in list(self._admitted.items()):
            if wanted.get(key) != name:
                self.keyring.remove(key)
                del self._admitted[key]
        for key, name in wanted.items():
            if key in self._admitted:
                continue
            if self.keyring.name_of(key) is not None:   # a trusted-keys file holds it: leave it to that
                continue
            self.keyring.add(key, name)
            self._admitted[key] = name


def read_records(zk: KazooClient, base: str, watch: Any) -> dict[str, bytes]:
    """Every child of ``base`` with its data, each read armed with ``watch`` (none if ``base`` is absent)."""
    if zk.exists(base, watch=watch) is None:
        return {}
    out: dict[str, bytes] = {}
    for name in zk.get_children(base, watch=watch):
        try:
            data, _ = zk.get(f"{base}/{name}", watch=watch)
        except NoNodeError:
            continue
        out[name] = data
    return out
