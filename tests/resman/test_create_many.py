"""Creates go to an Agent as one `container.create_many` per round; an older Agent gets single creates."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.errors import GalaxyError, InvalidInput, ResourceUnavailable
from galaxy.protocol import AgentMethods
from galaxy.testing.fleet import SimHostSpec, sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running


def test_serve_create_many_keeps_each_failure_to_its_container() -> None:
    def create(body: Any) -> dict[str, Any]:
        if body["id"] == "g.bad":
            raise ResourceUnavailable("not enough cpu", field="cpu")
        return {"id": body["id"], "state": "running"}

    answer = AgentMethods.serve_create_many({"containers": [{"id": "g.a"}, {"id": "g.bad"}, {"id": "g.b"}]}, create)
    results = answer["results"]
    assert [r["id"] for r in results] == ["g.a", "g.bad", "g.b"]
    assert results[0]["container"]["state"] == "running" and results[2]["container"]["id"] == "g.b"
    err = GalaxyError.from_wire(results[1]["error"])
    assert isinstance(err, ResourceUnavailable) and err.field == "cpu"


def test_serve_create_many_refuses_a_body_without_a_list() -> None:
    with pytest.raises(InvalidInput) as caught:
        AgentMethods.serve_create_many({"containers": "g.a"}, lambda body: {})
    assert caught.value.field == "containers"


@pytest.mark.zk
def test_a_round_of_creates_for_one_agent_is_one_request(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(1, cpu=16.0))
    rm.call("group.create", group_body("batched", 8, container=template(cpu=1.0)))
    wait_running(rm, "batched", 8)
    assert len(fleet.hosts["sim-00001"].containers) == 8
    assert fleet.stats["create_many_requests"] >= 1
    assert fleet.stats["create_many_requests"] + fleet.stats["create_requests"] < 8


@pytest.mark.zk
def test_an_agent_without_create_many_gets_single_creates(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(1, cpu=16.0), batch_creates=False)
    rm.call("group.create", group_body("singles", 8, container=template(cpu=1.0)))
    wait_running(rm, "singles", 8)
    assert len(fleet.hosts["sim-00001"].containers) == 8
    assert fleet.stats["create_many_requests"] == 0 and fleet.stats["create_requests"] == 8
    assert rm.engine.hosts.entries["sim-00001"].batch_creates is False
    assert rm.engine.stats["create_failed"] == 0


@pytest.mark.zk
def test_failures_inside_a_batch_send_only_those_containers_elsewhere(make_resman, make_fleet) -> None:
    rm = make_resman()
    # Smaller hosts first: bin-pack then picks sim-00001, then sim-00002, whatever order they register in.
    fleet = make_fleet(rm, [SimHostSpec(f"sim-0000{i}", cpu=cpu) for i, cpu in ((1, 6.0), (2, 7.0), (3, 8.0))])
    for host in ("sim-00001", "sim-00002"):      # the two failures of one batch fail again on the
        fleet.fail_creates(host, 2)              # next host, then land on the third
    rm.call("group.create", group_body("partial", 6, container=template(cpu=1.0)))
    wait_running(rm, "partial", 6)
    wait_until(lambda: sum(len(h.containers) for h in fleet.hosts.values()) == 6, timeout=10,
               what="six containers on the Agents")
    assert rm.engine.stats["create_failed"] >= 2
    where = fleet.containers()
    assert all(len(hosts) == 1 for hosts in where.values())
