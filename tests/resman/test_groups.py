"""Groups end to end: a real ResMan (ZooKeeper, mesh) driving a simulated fleet."""

from __future__ import annotations

import pytest

from galaxy.errors import Conflict, InvalidInput, NotFound
from galaxy.testing.fleet import sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running

pytestmark = pytest.mark.zk


def test_group_is_placed_and_converges_to_its_count(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(5, cpu=8.0, memory=32 << 30))
    assert rm.call("group.create", group_body("web", 12)) == {"group": "web", "version": 1}
    containers = wait_running(rm, "web", 12)
    assert all(c["id"].startswith("web.") and c["address"] == "127.0.0.1" for c in containers)
    where = fleet.containers()
    assert sorted(where) == sorted(c["id"] for c in containers)
    assert all(len(hosts) == 1 for hosts in where.values())
    listed = rm.call("group.list", {})
    assert listed == [{"group": "web", "pool": "default", "owner": "tester", "replicas": 12, "version": 1,
                       "ready": 12, "pending": 0}]
    assert rm.call("group.scale", {"group": "web", "replicas": 4}) == {"group": "web", "replicas": 4}
    wait_running(rm, "web", 4)
    wait_until(lambda: len(fleet.containers()) == 4, timeout=10, what="surplus destroyed on the agents")


def test_create_is_idempotent_and_conflicts_on_another_spec(make_resman) -> None:
    rm = make_resman()
    body = group_body("api", 2)
    assert rm.call("group.create", body)["version"] == 1
    assert rm.call("group.create", body)["version"] == 1
    with pytest.raises(Conflict):
        rm.call("group.create", {**body, "replicas": 3})


@pytest.mark.parametrize(("body", "field"), [
    ({"group": "Bad_Name", "owner": "x", "replicas": 1, "container": template()}, "group"),
    ({"group": "ok", "owner": "x", "replicas": -1, "container": template()}, "replicas"),
    ({"group": "ok", "owner": "x", "replicas": 1, "container": template(cpu=0)}, "container.cpu"),
    ({"group": "ok", "owner": "x", "replicas": 1, "container": {**template(), "id": "x"}}, "container.id"),
    ({"group": "ok", "owner": "x", "replicas": 1, "priority": "urgent", "container": template()}, "priority"),
    ({"group": "ok", "owner": "x", "replicas": 1, "colour": "red", "container": template()}, "colour"),
])
def test_bad_group_bodies_name_the_field(make_resman, body, field) -> None:
    rm = make_resman()
    with pytest.raises(InvalidInput) as err:
        rm.call("group.create", body)
    assert err.value.field == field


def test_unknown_group_is_not_found_and_remove_is_idempotent(make_resman) -> None:
    rm = make_resman()
    with pytest.raises(NotFound):
        rm.call("group.show", {"group": "nope"})
    assert rm.call("group.remove", {"group": "nope"}) == {"group": "nope", "removed": False}


def test_remove_destroys_every_container(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(3))
    rm.call("group.create", group_body("batch", 6, priority="batch"))
    wait_running(rm, "batch", 6)
    assert rm.call("group.remove", {"group": "batch"})["removed"] is True
    wait_until(lambda: not fleet.containers(), timeout=10, what="all containers destroyed")
    assert rm.call("group.list", {}) == []


def test_new_template_replaces_containers_at_most_a_step_at_a_time(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(4, cpu=16.0), create_delay=0.05)
    rm.call("group.create", group_body("web", 6, update_step=2))
    old = {c["id"] for c in wait_running(rm, "web", 6)}
    assert rm.call("group.update", {"group": "web", "container": template(cpu=0.5)}) == {"group": "web", "version": 2}
    peak_new_starting = 0
    least_running = 6

    def rolled() -> bool:
        nonlocal peak_new_starting, least_running
        shown = rm.call("group.show", {"group": "web"})
        live = [c for c in shown["containers"] if c["state"] != "destroying"]
        peak_new_starting = max(peak_new_starting, sum(c["version"] == 2 and c["state"] != "running" for c in live))
        least_running = min(least_running, sum(c["state"] == "running" for c in live))
        return len(live) == 6 and all(c["version"] == 2 and c["state"] == "running" for c in live)
    wait_until(rolled, timeout=30, interval=0.02, what="the rolling update")
    assert peak_new_starting <= 2
    assert least_running >= 6
    wait_until(lambda: not old & set(fleet.containers()), timeout=10, what="old versions destroyed")
    assert all(info["cpu"] == 0.5 for h in fleet.hosts.values() for info in h.containers.values())
