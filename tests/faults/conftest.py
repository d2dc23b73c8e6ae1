"""Partitions between test hosts (issue 15, item 5): shared cluster fixture and invariant checks.

Each module starts one :class:`FaultCluster` — a :class:`~galaxy.testing.faults.SpreadCluster` (every
ResMan and AppMaster replica on a test host of its own, ZooKeeper alone on host 1) with the
per-Agent extras of the ResMan multi-host tests — and one :class:`~galaxy.testing.faults.Faults`
injector. After the module: every fault rule removed, the cluster stopped, and nothing left behind
(namespaces, processes, loop devices, the Agents' cgroups, fault chains).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from galaxy.coord import Credential, Leadership, Paths, StateStore, connect
from galaxy.errors import NotLeader
from galaxy.mesh import Client
from galaxy.testing.faults import Faults, SpreadCluster
from galaxy.testing.netns import TestHost, in_netns
from tests.resman_multihost.conftest import MultiHostCluster, all_real_containers, cluster_factory
from tests.resman_multihost.conftest import poll as multihost_poll

T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root, pytest.mark.zk]


class FaultCluster(SpreadCluster, MultiHostCluster):
    """Leaders on hosts of their own (SpreadCluster) + the Agents' helpers of MultiHostCluster."""

    def call_role(self, role: str, method: str, body: Any = None, timeout: float = 10.0) -> Any:
        with self.client(role) as client:
            return client.call(method, body, timeout=timeout)


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    injector = Faults()
    try:
        yield injector
    finally:
        assert not injector.close(), "fault rules could not be removed"


@pytest.fixture(scope="module")
def make_cluster(tmp_path_factory: pytest.TempPathFactory, faults: Faults) -> Iterator[Callable[..., FaultCluster]]:
    """``make_cluster(env={...}, **LocalCluster kwargs)``: one started FaultCluster per module."""
    def fault_failures(local: FaultCluster) -> list[str]:
        return ([f"fault teardown: {p}" for p in faults.close()]
                + [f"fault rules left: {x}" for x in faults.leftovers(local.state.namespaces)])

    with cluster_factory(tmp_path_factory, FaultCluster, "gxft", fault_failures) as make:
        yield make


# ---- waiting ---------------------------------------------------------------------------------------

poll = functools.partial(multihost_poll, interval=0.2)   # the multi-host poll, polled a little faster


# ---- ZooKeeper: fences ------------------------------------------------------------------------------

def election_fence(cluster: FaultCluster, role: str, identity: str) -> tuple[str, int]:
    """The (lock node path, version) ``identity`` holds in ``role``'s election: its write fence."""
    paths = Paths(cluster.cluster)
    with cluster.zk() as zk:
        base = paths.election(role)
        for child in zk.get_children(base):
            data, stat = zk.get(f"{base}/{child}")
            if data.decode(errors="replace") == identity:
                return f"{base}/{child}", stat.version
    raise AssertionError(f"{identity} holds no node in the {role} election")


def contenders(cluster: FaultCluster, role: str) -> list[str]:
    """Identities campaigning for ``role`` now (lowest sequence, the leader, first)."""
    paths = Paths(cluster.cluster)
    with cluster.zk() as zk:
        base = paths.election(role)
        children = sorted(zk.get_children(base), key=lambda c: c.rsplit("__lock__", 1)[-1])
        return [zk.get(f"{base}/{child}")[0].decode(errors="replace") for child in children]


def write_with_fence_refused(cluster: FaultCluster, identity: str, fence: tuple[str, int], key: str) -> bool:
    """A state write fenced on a deposed leader's lock node — exactly what that leader's own
    StateStore sends — is refused (NotLeader) and leaves nothing behind. True when refused."""
    paths = Paths(cluster.cluster)
    with in_netns(cluster.control.name):
        zk = connect(cluster.zk_hosts, timeout=15.0, credential=Credential.load(cluster.zk_auth_path), ca=cluster.zk_ca)
    try:
        old = Leadership(zk, identity, fence[0], fence[1])      # never started: holds only the fence
        store = StateStore(zk, paths, leadership=old)
        try:
            store.put("faultprobe", key, {"by": identity, "at": time.time()})
        except NotLeader:
            return StateStore(zk, paths).get("faultprobe", key) is None
        return False
    finally:
        zk.stop()
        zk.close()


# ---- mesh from a given test host ------------------------------------------------------------------

@contextlib.contextmanager
def client_at(cluster: FaultCluster, host: TestHost, endpoint: str, public_key: str,
              key: str = "admin") -> Iterator[Client]:
    """A mesh client made inside ``host`` (its sockets and I/O thread live there) to ``endpoint``."""
    with in_netns(host.name):
        client = Client(endpoint, public_key, cluster.keypair(key),
                        f"{key}-fault-{os.getpid()}-{uuid.uuid4().hex[:6]}", retries=0).start()
    try:
        yield client
    finally:
        client.close()


class InNetns:
    """One worker thread that lives in a test host's namespace for good (for the SDK, which makes its
    connections from the calling thread): ``run(fn, *args)`` → a Future."""

    def __init__(self, host: TestHost) -> None:
        from galaxy.testing.netns import enter_netns
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=enter_netns,
                                                           initargs=(host.name,))

    def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> concurrent.futures.Future[T]:
        return self._pool.submit(fn, *args, **kw)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---- invariants -----------------------------------------------------------------------------------

def group_view(cluster: FaultCluster, group: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.call_role("resman", "group.show", {"group": group})
    return result


def group_exact(cluster: FaultCluster, group: str, replicas: int) -> dict[str, int] | None:
    """container id -> agent index when ResMan runs exactly ``replicas`` containers of ``group`` and the
    kernel of the hosts holds exactly those, each on its own host only; else None."""
    shown = group_view(cluster, group)
    running = {c["id"]: cluster.agent_index(c["host"]) for c in shown["containers"] if c["state"] == "running"}
    if len(running) != replicas or len(shown["containers"]) != replicas:
        return None
    if all_real_containers(cluster, group) != {cid: [i] for cid, i in running.items()}:
        return None
    return running


def duplicates(cluster: FaultCluster, group: str) -> dict[str, list[int]]:
    """Containers of ``group`` that the kernel holds on more than one host (never allowed)."""
    return {cid: hosts for cid, hosts in all_real_containers(cluster, group).items() if len(hosts) > 1}
