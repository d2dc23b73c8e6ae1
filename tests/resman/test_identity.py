"""Impersonation of Agents on a real ResMan: a host's name on the mesh is its Agent key's alone.

Create requests carry jobs' worker keys, so whoever answers to a host's name gets them. Each test
plays an attacker with a real CURVE key (a user with no grants, or another host's Agent key) on a
real connection, and checks what a user would see: the attempt refused, nothing sent to the
attacker, the counters moved, and the real Agent still served.
"""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.errors import IdentityRefused, PermissionDenied
from galaxy.mesh import Client, Keypair, Outcome, Request
from galaxy.protocol import AgentMethods
from galaxy.protocol.resman import ResManApi
from galaxy.resman import agentio
from galaxy.testing.fleet import SimFleet, SimHostSpec, sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import Keys, ResManUnderTest, group_body, wait_running

pytestmark = pytest.mark.zk

AGENT_METHODS = (AgentMethods.RESOURCES, AgentMethods.CREATE, AgentMethods.CREATE_MANY, AgentMethods.DESTROY,
                 AgentMethods.LIST, AgentMethods.LOGS)


class Impostor:
    """A mesh client under a host's name, answering every Agent method and noting what it was sent."""

    def __init__(self, rm: ResManUnderTest, keys: Keys, keypair: Keypair, identity: str) -> None:
        self.received: list[str] = []
        self.client = Client(rm.endpoint, keys.resman.public, keypair, identity, heartbeat_interval=0.5,
                             timeout=3.0, retries=0)
        for method in AGENT_METHODS:
            self.client.route(method, self._serve)
        self.client.start()

    def _serve(self, req: Request) -> Any:
        self.received.append(req.method)
        return {"results": []}

    def register(self, host: str) -> Any:
        return self.client.call(ResManApi.REGISTER, {"id": host, "capacity": {"cpu": 64.0, "memory": 1 << 40},
                                                      "free": {"cpu": 64.0, "memory": 1 << 40}, "containers": []})

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def mallory(keys: Keys) -> Keypair:
    """A user's key with no record in state/users: admitted by the mesh, allowed nothing."""
    pair = Keypair.generate()
    keys.ring.add(pair.public, "mallory")
    return pair


def hosts_of(rm: ResManUnderTest) -> dict[str, str]:
    return {h["id"]: h["status"] for h in rm.call("hosts.list", {})}


def test_a_user_key_posing_as_an_existing_agent_is_refused_and_the_agent_keeps_working(
        make_resman, make_fleet, keys: Keys, mallory: Keypair) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(2))
    impostor = Impostor(rm, keys, mallory, "sim-00001")
    try:
        with pytest.raises(IdentityRefused):
            impostor.register("sim-00001")
        assert rm.server.stats["identity_refused"] >= 1
        polls = rm.engine.stats["polls"]
        rm.call("group.create", group_body("web", 4))
        placed = wait_running(rm, "web", 4)
        assert {c["host"] for c in placed} <= {"sim-00001", "sim-00002"}
        assert sum(len(h.containers) for h in fleet.hosts.values()) == 4
        wait_until(lambda: rm.engine.stats["polls"] > polls + 2, timeout=10, what="the real hosts still polled")
        assert impostor.received == []               # no poll, no create, no worker key
        assert hosts_of(rm) == {"sim-00001": "alive", "sim-00002": "alive"}
        assert rm.server.peers()["sim-00001"].key == keys.agent.public
    finally:
        impostor.close()


def test_a_user_key_posing_as_a_new_agent_cannot_register_nor_keep_the_real_agent_out(
        make_resman, make_fleet, keys: Keys, mallory: Keypair) -> None:
    rm = make_resman()
    make_fleet(rm, sim_hosts(1))
    impostor = Impostor(rm, keys, mallory, "sim-00009")   # a host ResMan has never seen
    try:
        with pytest.raises(PermissionDenied):
            impostor.register("sim-00009")
        assert "sim-00009" not in hosts_of(rm)
        # The real Agent comes: its name is its own, whoever took it first.
        newcomer = SimFleet(rm.endpoint, keys.resman.public, keys.agent, [SimHostSpec("sim-00009")],
                            heartbeat_interval=0.5).start()
        try:
            wait_until(lambda: newcomer.registered() == 1, timeout=20, what="the real sim-00009 registered")
            rm.call("group.create", group_body("web", 2, max_per_host=1))
            assert {c["host"] for c in wait_running(rm, "web", 2)} == {"sim-00001", "sim-00009"}
            with pytest.raises(IdentityRefused):
                impostor.register("sim-00009")
            assert impostor.received == [] and rm.server.peers()["sim-00009"].key == keys.agent.public
        finally:
            newcomer.close()
    finally:
        impostor.close()


def test_an_agent_key_used_for_another_host_is_refused(make_resman, make_fleet, keys: Keys,
                                                       mallory: Keypair) -> None:
    """Per-host keys (what the playbook hands out): `agent-host-a` speaks for host-a only, and
    host-a's name is reserved for it even before host-a first connects."""
    host_a = Keypair.generate()
    keys.ring.add(host_a.public, "agent-host-a")
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(1))
    stolen = SimFleet(rm.endpoint, keys.resman.public, host_a,
                      [SimHostSpec("sim-00001"), SimHostSpec("host-b")], heartbeat_interval=0.5).start()
    impostor = Impostor(rm, keys, mallory, "host-a")
    try:
        wait_until(lambda: rm.server.stats["identity_refused"] >= 2, timeout=10,
                   what="host-a's key refused as sim-00001 and as host-b")
        with pytest.raises(IdentityRefused):
            impostor.register("host-a")                      # a user taking host-a's reserved name
        rm.call("group.create", group_body("web", 2))
        wait_running(rm, "web", 2)
        assert len(fleet.hosts["sim-00001"].containers) == 2
        assert stolen.registered() == 0 and stolen.stats["requests"] == 0
        assert set(hosts_of(rm)) == {"sim-00001"}
    finally:
        impostor.close()
        stolen.close()


def test_the_same_agent_reconnecting_takes_its_name_over_at_once(make_resman, make_fleet, keys: Keys) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(2))
    registered = fleet.stats["registered"]
    fleet.stop_host("sim-00001")          # a restart faster than ResMan notices the old connection gone
    fleet.start_host("sim-00001")
    wait_until(lambda: fleet.stats["registered"] > registered, timeout=10, what="sim-00001 registered again")
    rm.call("group.create", group_body("web", 2, max_per_host=1))
    assert {c["host"] for c in wait_running(rm, "web", 2)} == {"sim-00001", "sim-00002"}
    assert rm.server.stats["identity_refused"] == 0


def test_a_poll_answer_not_from_the_hosts_key_is_ignored(make_resman, keys: Keys) -> None:
    """The mesh already refuses such an answer (tests/mesh/test_identity.py); ResMan checks again
    where an answer becomes a host's state: an answer from an unregistered host registers it."""
    rm = make_resman()
    entry = rm.engine.hosts.load("sim-00042", {}, rm.engine.clock())
    facts = {"id": "sim-00042", "capacity": {"cpu": 8.0, "memory": 1 << 33}, "free": {"cpu": 8.0, "memory": 1 << 33},
             "containers": []}
    def answer(key_name: str) -> None:
        now = rm.engine.clock()
        agentio.polled(rm.engine, entry, now, now, Outcome(facts, None, key_name))
    for key_name in ("mallory", "agent-sim-00007", "appmaster"):
        rm.engine.post(lambda k=key_name: answer(k))
    wait_until(lambda: rm.engine.stats["answers_refused"] == 3, timeout=5, what="the answers refused")
    assert not entry.registered
    rm.engine.post(lambda: answer("agent-sim-00042"))
    wait_until(lambda: entry.registered, timeout=5, what="the host's own answer taken as its registration")
