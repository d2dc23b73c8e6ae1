"""ResMan under test: a real ZooKeeper (a chroot per test), a real fenced leadership, the real mesh
Server with the ResMan routes (authority checked against a real Directory), and a simulated fleet of
Agents speaking the real protocol."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from galaxy.coord import Election, Leadership, Paths, StateStore, connect
from galaxy.mesh import Client, Keypair, KeyRing, Server
from galaxy.resman import Engine, ResManSettings, serve
from galaxy.resman.state import load
from galaxy.tenancy import Directory
from galaxy.testing.fleet import SimFleet, SimHostSpec
from galaxy.testing.netns import wait_until
from galaxy.trace import Tracer

FAST = dict(poll_interval=0.2, lost_after=5, safe_mode_timeout=20.0, backoff_min=0.2, backoff_max=1.0,
            avoid_for=30.0)


class Keys:
    def __init__(self) -> None:
        self.resman = Keypair.generate()
        self.agent = Keypair.generate()
        self.admin = Keypair.generate()
        self.appmaster = Keypair.generate()
        self.ring = KeyRing()
        self.ring.add(self.agent.public, "agent")
        self.ring.add(self.admin.public, "admin")
        self.ring.add(self.appmaster.public, "appmaster")


class ResManUnderTest:
    """One ResMan leader in this process: election, fenced store, engine, server."""

    def __init__(self, zk_hosts: str, keys: Keys, settings: ResManSettings, name: str = "resman-1") -> None:
        self.keys = keys
        self.paths = Paths("test")
        self.zk: KazooClient = connect(zk_hosts, session_timeout=4.0)
        self.election = Election(self.zk, self.paths, "resman", name)
        elected = threading.Event()
        self.leadership: Leadership | None = None

        def lead(leadership: Leadership) -> None:
            self.leadership = leadership
            elected.set()
            leadership.lost.wait()
        self.election.start(lead)
        if not elected.wait(20):
            raise RuntimeError("ResMan under test was never elected")
        assert self.leadership is not None
        self.store = StateStore(self.zk, self.paths, leadership=self.leadership)
        self.tracer = Tracer(self.zk, self.paths, "resman")
        self.server = Server("tcp://127.0.0.1:0", keys.resman, keys.ring, heartbeat_interval=0.5,
                             name="resman-test", workers=4)
        self.engine = Engine(settings, server=self.server, store=self.store, tracer=self.tracer)
        self.engine.load(load(self.store))
        # Who each key is (users, pools), as the daemon's RoleService has it: admits users' keys to the ring.
        self.directory = Directory(self.zk, self.paths, keys.ring).start()
        if not self.directory.wait_synced(20):
            raise RuntimeError("the Directory of the ResMan under test never read ZooKeeper")
        serve(self.engine, self.server, self.directory)
        self.server.start()
        self.engine.start()
        self._client: Client | None = None

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def call(self, method: str, body: Any = None, timeout: float = 10.0) -> Any:
        if self._client is None:
            self._client = Client(self.endpoint, self.keys.resman.public, self.keys.admin, "admin-test",
                                  heartbeat_interval=0.5).start()
        return self._client.call(method, body, timeout=timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.engine.stop()
        self.server.stop()
        self.tracer.close()
        self.directory.close()
        self.election.stop()
        self.zk.stop()
        self.zk.close()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def make_resman(zk_hosts: str, keys: Keys) -> Iterator[Callable[..., ResManUnderTest]]:
    made: list[ResManUnderTest] = []

    def make(**settings: Any) -> ResManUnderTest:
        rm = ResManUnderTest(zk_hosts, keys, ResManSettings(**{**FAST, **settings}), f"resman-{len(made) + 1}")
        made.append(rm)
        return rm
    yield make
    for rm in reversed(made):
        rm.close()


@pytest.fixture
def make_fleet(keys: Keys) -> Iterator[Callable[..., SimFleet]]:
    made: list[SimFleet] = []

    def make(rm: ResManUnderTest, hosts: list[SimHostSpec], **kw: Any) -> SimFleet:
        fleet = SimFleet(rm.endpoint, keys.resman.public, keys.agent, hosts, heartbeat_interval=0.5, **kw).start()
        made.append(fleet)
        wait_until(lambda: fleet.registered() == len(hosts), timeout=30, what="simulated hosts registered")
        wait_until(lambda: rm.engine.reported_count() >= len(hosts), timeout=30, what="ResMan saw the hosts")
        return fleet
    yield make
    for fleet in made:
        fleet.close()


def template(cpu: float = 1.0, memory: int = 1 << 30, **extra: Any) -> dict[str, Any]:
    return {"cpu": cpu, "memory": memory, "user": "nobody", "argv": ["/bin/sleep", "1000"], **extra}


def group_body(name: str, replicas: int, **kw: Any) -> dict[str, Any]:
    container = kw.pop("container", None) or template()
    return {"group": name, "owner": "tester", "pool": kw.pop("pool", "default"), "replicas": replicas,
            "container": container, **kw}


def running(rm: ResManUnderTest, group: str) -> list[dict[str, Any]]:
    shown = rm.call("group.show", {"group": group})
    return [c for c in shown["containers"] if c["state"] == "running"]


def wait_running(rm: ResManUnderTest, group: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        shown = rm.call("group.show", {"group": group})
        ok = [c for c in shown["containers"] if c["state"] == "running"]
        return ok if len(ok) == count and len(shown["containers"]) == count else None
    result: list[dict[str, Any]] = wait_until(ready, timeout=timeout, interval=0.1,
                                              what=f"{count} running containers of {group}")
    return result
