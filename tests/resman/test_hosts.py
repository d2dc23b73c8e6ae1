"""Hosts: failed creations, lost hosts and their return, drain, admin state, exits, unknown containers."""

from __future__ import annotations

import pytest

from galaxy.tenancy import POOLS
from galaxy.testing.fleet import SimHostSpec, sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running

pytestmark = pytest.mark.zk


def test_failed_creation_is_requeued_elsewhere_and_the_host_avoided(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(3, cpu=4.0))
    fleet.fail_creates("sim-00001", 100)
    rm.call("host.offline", {"host": "sim-00003"})
    rm.call("group.create", group_body("web", 2, max_per_host=1))
    # one container fits only on sim-00001, which fails: it waits, avoiding that host, and says so
    shown = wait_until(lambda: (s := rm.call("group.show", {"group": "web"}))["reason"] and s, timeout=10,
                       what="the failed creation explained")
    assert "1 avoided after failures" in shown["reason"]
    assert [c["host"] for c in shown["containers"] if c["state"] == "running"] == ["sim-00002"]
    assert rm.engine.stats["create_failed"] >= 1 and not fleet.hosts["sim-00001"].containers
    rm.call("host.online", {"host": "sim-00003"})
    assert {c["host"] for c in wait_running(rm, "web", 2)} == {"sim-00002", "sim-00003"}


def test_lost_host_is_rescheduled_and_its_return_does_not_double(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(3, cpu=4.0))
    rm.call("group.create", group_body("web", 6, max_per_host=3))
    before = wait_running(rm, "web", 6)
    victim = before[0]["host"]
    moved = {c["id"] for c in before if c["host"] == victim}
    fleet.stop_host(victim)

    def moved_away() -> list[dict] | None:
        now = wait_running(rm, "web", 6)
        return now if victim not in {c["host"] for c in now} else None
    after = wait_until(moved_away, timeout=20, what="the lost host's containers placed elsewhere")
    assert not moved & {c["id"] for c in after}                     # replacements are new containers
    assert any(h["id"] == victim and h["status"] == "lost" for h in rm.call("hosts.list", {}))
    fleet.start_host(victim)                                       # it comes back with its old copies
    wait_until(lambda: not fleet.hosts[victim].containers, timeout=10, what="the old copies destroyed")
    where = fleet.containers()
    assert len(where) == 6 and all(len(h) == 1 for h in where.values())
    assert sorted(where) == sorted(c["id"] for c in wait_running(rm, "web", 6))


def test_drain_moves_containers_at_most_a_step_at_a_time(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(3, cpu=8.0), create_delay=0.05)
    rm.call("group.create", group_body("web", 6, update_step=2))
    wait_running(rm, "web", 6)
    busiest = max(fleet.hosts.values(), key=lambda h: len(h.containers)).id
    peak = 0

    def drained() -> bool:
        nonlocal peak
        shown = rm.call("group.show", {"group": "web"})
        live = [c for c in shown["containers"] if c["state"] != "destroying"]
        peak = max(peak, len(live))
        # The sim host drops a container before it answers the destroy, and ResMan forgets it only when
        # the answer arrives: the host's count in hosts.list is part of "drained", not a check after it.
        host = {h["id"]: h for h in rm.call("hosts.list", {})}[busiest]
        return (not fleet.hosts[busiest].containers and sum(c["state"] == "running" for c in live) == 6
                and host["containers"] == 0)
    assert rm.call("host.drain", {"host": busiest}) == {"host": busiest, "admin": "draining"}
    wait_until(drained, timeout=20, interval=0.02, what="the host drained")
    assert peak <= 6 + 2                                            # never more than a step above the count
    hosts = {h["id"]: h for h in rm.call("hosts.list", {})}
    assert hosts[busiest]["admin"] == "draining" and hosts[busiest]["containers"] == 0


def test_offline_host_gets_nothing_new_and_admin_state_persists(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(2))
    rm.call("host.offline", {"host": "sim-00001"})
    rm.call("host.label", {"host": "sim-00002", "labels": ["ssd", "fast"]})
    rm.call("group.create", group_body("web", 4, labels=["ssd"]))
    assert {c["host"] for c in wait_running(rm, "web", 4)} == {"sim-00002"}
    assert rm.call("host.unlabel", {"host": "sim-00002", "labels": ["fast"]})["labels"] == ["ssd"]
    rm.store.put(POOLS, "spare", {"created": 1.0, "by": "test"})      # a host moves only to a declared pool
    wait_until(lambda: rm.directory.has_pool("spare"), timeout=10, what="pool spare declared")
    assert rm.call("host.move", {"host": "sim-00001", "pool": "spare"}) == {"host": "sim-00001", "pool": "spare"}
    rm.close()
    rm2 = make_resman()
    fleet.connect_to(rm2.endpoint, rm.keys.resman.public)
    wait_until(lambda: rm2.engine.reported_count() == 2, timeout=20, what="agents re-registered")
    hosts = {h["id"]: h for h in rm2.call("hosts.list", {})}
    assert hosts["sim-00001"]["admin"] == "offline" and hosts["sim-00001"]["pool"] == "spare"
    assert hosts["sim-00002"]["labels"] == ["ssd"]


def test_unplaceable_group_says_why(make_resman, make_fleet) -> None:
    rm = make_resman()
    make_fleet(rm, sim_hosts(2))
    rm.call("group.create", group_body("big", 1, container=template(cpu=64.0)))
    shown = wait_until(lambda: (s := rm.call("group.show", {"group": "big"}))["reason"] and s, timeout=10,
                       what="a reason")
    assert shown["reason"] == "no host in pool default fits (2 hosts checked: 2 not enough cpu)"
    assert shown["containers"][0]["state"] == "pending"
    rm.call("group.create", group_body("gpu", 1, labels=["gpu"]))
    wait_until(lambda: rm.call("group.show", {"group": "gpu"})["reason"] == "no host in pool default has label gpu",
               timeout=10, what="the label reason")


def test_exited_container_is_replaced(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(2))
    rm.call("group.create", group_body("web", 2))
    first = wait_running(rm, "web", 2)
    fleet.exit_container(first[0]["id"], code=3)
    wait_until(lambda: first[0]["id"] not in {c["id"] for c in wait_running(rm, "web", 2)}, timeout=15,
               what="the exited container replaced")
    assert first[0]["id"] not in fleet.containers()


def test_containers_no_group_wants_are_destroyed(make_resman, make_fleet) -> None:
    rm = make_resman()
    spec = SimHostSpec("sim-stray")
    fleet = make_fleet(rm, [spec])
    rm.call("group.create", group_body("web", 1))
    wait_running(rm, "web", 1)
    rm.close()
    fleet.hosts["sim-stray"].create({"id": "ghost.abcdef01", "group": "ghost", **template()})
    rm2 = make_resman()
    fleet.connect_to(rm2.endpoint, rm.keys.resman.public)
    wait_until(lambda: "ghost.abcdef01" not in fleet.containers(), timeout=20, what="the stray destroyed")
    assert len(wait_running(rm2, "web", 1)) == 1


def test_a_hosts_trace_is_served_by_resman(make_resman, make_fleet) -> None:
    """Clients cannot read trace/ in ZooKeeper (daemons only): ResMan serves a host's trace."""
    from galaxy.errors import NotFound

    rm = make_resman()
    make_fleet(rm, sim_hosts(1, cpu=4.0))
    rm.call("host.offline", {"host": "sim-00001"})
    events = wait_until(lambda: rm.call("host.trace", {"host": "sim-00001", "limit": 10}), timeout=10,
                        what="the host's trace")
    assert "offline" in {e["event"] for e in events}
    with pytest.raises(NotFound):
        rm.call("host.trace", {"host": "sim-09999"})
