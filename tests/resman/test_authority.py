"""Authority on every ResMan method, pools declared by registration, and many-to-many labels.

A real ResMan leader (ZooKeeper, fenced store, mesh Server) with a real Directory; users are records
in `state/users` written as the AppMaster would, and each caller is a mesh Client holding its own key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from galaxy.errors import GalaxyError, IdentityRefused, NotFound, PermissionDenied
from galaxy.mesh import Client, Keypair
from galaxy.protocol.resman import ResManApi
from galaxy.tenancy import POOLS, USERS, User
from galaxy.testing.fleet import sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import ResManUnderTest, group_body

pytestmark = [pytest.mark.zk]

A_HOST, B_HOST = "galaxy-a-00001", "galaxy-b-00001"      # pools "default" and "gpu"


class Callers:
    """One mesh Client per principal, all talking to the same ResMan."""

    def __init__(self, rm: ResManUnderTest) -> None:
        self.rm = rm
        self.pairs: dict[str, Keypair] = {"agent": rm.keys.agent, "appmaster": rm.keys.appmaster,
                                          "admin": rm.keys.admin}
        self.clients: dict[str, Client] = {}

    def add_user(self, user: User, pair: Keypair) -> None:
        self.rm.store.put(USERS, user.name, user.to_dict())
        wait_until(lambda: self.rm.keys.ring.name_of(pair.public) == user.name, timeout=10,
                   what=f"{user.name}'s key admitted")
        self.pairs[user.name] = pair

    def call(self, who: str, method: str, body: Any) -> Any:
        client = self.clients.get(who)
        if client is None:
            client = Client(self.rm.endpoint, self.rm.keys.resman.public, self.pairs[who], f"galaxy-test-{who}",
                            heartbeat_interval=0.5).start()
            self.clients[who] = client
        return client.call(method, body, timeout=10.0)

    def outcome(self, who: str, method: str, body: Any) -> str:
        """"denied", or "allowed" when the call got past authority (any other answer or error)."""
        try:
            self.call(who, method, body)
        except PermissionDenied:
            return "denied"
        except GalaxyError:
            return "allowed"
        return "allowed"

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture
def cluster(make_resman, make_fleet) -> Iterator[tuple[ResManUnderTest, Callers]]:
    rm = make_resman()
    make_fleet(rm, sim_hosts(1, prefix="galaxy-a") + sim_hosts(1, prefix="galaxy-b", pool="gpu"))
    callers = Callers(rm)
    alice, bob = Keypair.generate(), Keypair.generate()
    callers.add_user(User.new("alice", alice.public).granted("default", ["host.admin", "job.read"]), alice)
    callers.add_user(User.new("bob", bob.public).granted("gpu", ["job.read"]), bob)
    try:
        yield rm, callers
    finally:
        callers.close()


WHO = ("agent", "appmaster", "admin", "alice", "bob")
AM_OR_ADMIN = {"appmaster", "admin"}
# method -> (body, who gets past authority). alice holds host.admin on "default" (A_HOST's pool);
# bob holds only job.read on "gpu".
TABLE: dict[str, tuple[Any, set[str]]] = {
    ResManApi.REGISTER: ({}, {"agent"}),
    ResManApi.GROUP_CREATE: (group_body("galaxy-authz", 0), AM_OR_ADMIN),
    ResManApi.GROUP_UPDATE: ({"group": "galaxy-authz", "replicas": 0}, AM_OR_ADMIN),
    ResManApi.GROUP_SCALE: ({"group": "galaxy-authz", "replicas": 0}, AM_OR_ADMIN),
    ResManApi.GROUP_LIST: ({}, AM_OR_ADMIN),
    ResManApi.GROUP_SHOW: ({"group": "galaxy-authz"}, AM_OR_ADMIN),
    ResManApi.GROUP_EXTRA: ({"group": "galaxy-nosuch", "count": 1}, AM_OR_ADMIN),
    ResManApi.GROUP_RELEASE: ({"group": "galaxy-nosuch", "container": "x"}, AM_OR_ADMIN),
    ResManApi.GROUP_REMOVE: ({"group": "galaxy-nosuch"}, AM_OR_ADMIN),
    ResManApi.CONTAINER_LOGS: ({"container": "galaxy-nosuch.1"}, AM_OR_ADMIN),
    ResManApi.HOSTS_LIST: ({}, {"appmaster", "admin", "alice", "bob"}),
    ResManApi.HOST_TRACE: ({"host": A_HOST}, {"appmaster", "admin", "alice"}),   # who may see the host
    ResManApi.HOST_OFFLINE: ({"host": A_HOST}, {"admin", "alice"}),
    ResManApi.HOST_ONLINE: ({"host": A_HOST}, {"admin", "alice"}),
    ResManApi.HOST_DRAIN: ({"host": A_HOST}, {"admin", "alice"}),
    ResManApi.HOST_LABEL: ({"host": A_HOST, "labels": ["galaxy-x"]}, {"admin", "alice"}),
    ResManApi.HOST_UNLABEL: ({"host": A_HOST, "labels": ["galaxy-x"]}, {"admin", "alice"}),
    ResManApi.HOST_MOVE: ({"host": A_HOST, "pool": "default"}, {"admin", "alice"}),
    ResManApi.SAFEMODE_STATUS: ({}, {"admin"}),
    ResManApi.SAFEMODE_ENTER: ({}, {"admin"}),
    ResManApi.SAFEMODE_LEAVE: ({}, {"admin"}),
}


def test_every_method_checks_the_callers_key(cluster) -> None:
    rm, callers = cluster
    assert set(TABLE) == {v for k, v in vars(ResManApi).items() if k.isupper()} - {ResManApi.CONTAINER_STATE}
    got = {method: {who for who in WHO if callers.outcome(who, method, body) == "allowed"}
           for method, (body, _) in TABLE.items()}
    assert got == {method: allowed for method, (_, allowed) in TABLE.items()}
    assert rm.engine.safe.on is False


def test_a_denial_names_what_is_missing_and_changes_nothing(cluster) -> None:
    rm, callers = cluster
    with pytest.raises(PermissionDenied) as denied:
        callers.call("bob", ResManApi.HOST_OFFLINE, {"host": A_HOST})
    assert denied.value.field == "pool" and "host.admin" in denied.value.message and "'default'" in denied.value.message
    with pytest.raises(PermissionDenied) as denied:
        callers.call("alice", ResManApi.GROUP_CREATE, group_body("galaxy-sneaky", 1))
    assert denied.value.field == "key" and "AppMaster" in denied.value.message
    with pytest.raises(PermissionDenied) as denied:
        callers.call("appmaster", ResManApi.SAFEMODE_ENTER, {})
    assert "administrator" in denied.value.message
    hosts = {h["id"]: h for h in callers.call("admin", ResManApi.HOSTS_LIST, {})}
    assert hosts[A_HOST]["admin"] == "online" and "galaxy-sneaky" not in rm.engine.groups
    assert rm.store.get("hosts", A_HOST) == {"admin": "online", "pool": None, "labels": None}
    assert rm.engine.safe.on is False


def test_users_list_only_the_hosts_of_pools_they_hold_a_grant_in(cluster) -> None:
    _, callers = cluster
    assert [h["id"] for h in callers.call("alice", ResManApi.HOSTS_LIST, {})] == [A_HOST]
    assert [h["id"] for h in callers.call("bob", ResManApi.HOSTS_LIST, {})] == [B_HOST]
    assert [h["id"] for h in callers.call("appmaster", ResManApi.HOSTS_LIST, {})] == [A_HOST, B_HOST]


def test_move_needs_host_admin_on_both_pools_and_a_declared_pool(cluster) -> None:
    rm, callers = cluster
    wait_until(lambda: rm.directory.has_pool("gpu"), timeout=10, what="pool gpu declared")
    with pytest.raises(PermissionDenied) as denied:
        callers.call("alice", ResManApi.HOST_MOVE, {"host": A_HOST, "pool": "gpu"})
    assert "'gpu'" in denied.value.message
    with pytest.raises(NotFound) as missing:
        callers.call("admin", ResManApi.HOST_MOVE, {"host": A_HOST, "pool": "galaxy-nowhere"})
    assert missing.value.field == "pool"
    hosts = {h["id"]: h for h in callers.call("admin", ResManApi.HOSTS_LIST, {})}
    assert hosts[A_HOST]["pool"] == "default"
    alice = rm.directory.user("alice")
    assert alice is not None
    callers.add_user(alice.granted("gpu", ["host.admin"]), callers.pairs["alice"])
    wait_until(lambda: rm.directory.principal("alice").allows("host.admin", "gpu"), timeout=10, what="grant seen")
    assert callers.call("alice", ResManApi.HOST_MOVE, {"host": A_HOST, "pool": "gpu"}) == {"host": A_HOST,
                                                                                          "pool": "gpu"}
    assert rm.store.get("hosts", A_HOST)["pool"] == "gpu"


def test_a_pool_an_agent_registers_in_is_declared(cluster) -> None:
    rm, _ = cluster
    record: Callable[[], dict[str, Any] | None] = lambda: rm.store.get(POOLS, "gpu")  # noqa: E731
    declared = wait_until(record, timeout=10, what="state/pools/gpu written")
    assert declared["by"] == "resman" and declared["created"] > 0
    assert rm.directory.has_pool("gpu")


def test_labels_many_hosts_many_labels_in_one_call_all_or_nothing(cluster) -> None:
    rm, callers = cluster
    both = {"hosts": [A_HOST, B_HOST], "labels": ["galaxy-ssd", "galaxy-fast"]}
    with pytest.raises(PermissionDenied):
        callers.call("alice", ResManApi.HOST_LABEL, both)          # no host.admin on gpu: neither host changes
    assert all(h["labels"] == [] for h in callers.call("admin", ResManApi.HOSTS_LIST, {}))
    answer = callers.call("admin", ResManApi.HOST_LABEL, both)
    assert answer == {"hosts": [{"host": A_HOST, "labels": ["galaxy-fast", "galaxy-ssd"]},
                                {"host": B_HOST, "labels": ["galaxy-fast", "galaxy-ssd"]}]}
    answer = callers.call("admin", ResManApi.HOST_UNLABEL, {"hosts": [B_HOST], "labels": ["galaxy-fast"]})
    assert answer == {"hosts": [{"host": B_HOST, "labels": ["galaxy-ssd"]}]}
    assert rm.store.get("hosts", A_HOST)["labels"] == ["galaxy-fast", "galaxy-ssd"]
    assert rm.store.get("hosts", B_HOST)["labels"] == ["galaxy-ssd"]


def test_a_per_host_agent_key_speaks_only_for_its_own_host(cluster) -> None:
    rm, _ = cluster
    pair = Keypair.generate()
    rm.keys.ring.add(pair.public, "agent-galaxy-c-00001")

    def register(host: str) -> Any:
        facts = {"id": host, "pool": "default", "capacity": {"cpu": 1.0, "memory": 1 << 30},
                 "free": {"cpu": 1.0, "memory": 1 << 30, "disks": {}, "ports": 10}, "containers": []}
        client = Client(rm.endpoint, rm.keys.resman.public, pair, host, heartbeat_interval=0.5).start()
        try:
            return client.call(ResManApi.REGISTER, facts, timeout=10.0)
        finally:
            client.close()

    with pytest.raises(IdentityRefused) as err:         # a PermissionDenied, refused by the mesh itself:
        register("galaxy-c-00002")                        # another host's name is not this key's to use
    assert err.value.field == "identity"
    assert register("galaxy-c-00001") == {"ok": True}
