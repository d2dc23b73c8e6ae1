"""Cheap steady-state polls and create answers that stand in for the `running` event.

A poll carries the digest of the last full report ResMan applied for the host; a host whose list is
unchanged answers "unchanged" and ResMan matches the list it holds. These tests check what a user
would notice if that went wrong: a vanished or exited container must still be replaced, a stray one
still destroyed, and a create still counts as running without any event.
"""

from __future__ import annotations

import pytest

from galaxy.testing.fleet import SimHost, SimHostSpec, sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running


def test_sim_host_answers_unchanged_only_for_its_current_digest() -> None:
    host = SimHost(SimHostSpec("sim-galaxy-digest"))
    full = host.resources()
    assert full["containers"] == [] and isinstance(full["digest"], str)
    assert host.resources(full["digest"]) == {"unchanged": full["digest"], "free": host.free()}
    host.create({"id": "web.00000001", "group": "web", **template()})
    after = host.resources(full["digest"])
    assert "unchanged" not in after and [c["id"] for c in after["containers"]] == ["web.00000001"]
    assert after["digest"] != full["digest"]
    host.destroy("web.00000001")
    assert host.resources(after["digest"])["containers"] == []


@pytest.mark.zk
def test_steady_polls_are_unchanged_and_a_create_needs_no_event(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(2))
    rm.call("group.create", group_body("web", 4))
    wait_running(rm, "web", 4)
    assert rm.engine.stats["created"] == 4
    wait_until(lambda: fleet.stats["polls_unchanged"] >= 10, timeout=10, what="unchanged poll answers")
    # the steady state keeps the group as it is: nothing replaced, nothing destroyed
    assert rm.engine.stats["exited"] == 0 and rm.engine.stats["unknown_destroyed"] == 0
    assert len(fleet.containers()) == 4


@pytest.mark.zk
def test_a_vanished_container_is_replaced_despite_unchanged_polls(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(1))
    rm.call("group.create", group_body("web", 2))
    first = wait_running(rm, "web", 2)
    wait_until(lambda: fleet.stats["polls_unchanged"] >= 3, timeout=10, what="unchanged poll answers")
    gone = first[0]["id"]
    # The Agent loses it without a word (no event): only the next full list can tell ResMan.
    fleet._on("sim-00001", lambda w, h: h.destroy(gone))
    wait_until(lambda: gone not in {c["id"] for c in wait_running(rm, "web", 2)}, timeout=15,
               what="the vanished container replaced")
    assert rm.engine.stats["exited"] >= 1


@pytest.mark.zk
def test_a_stray_container_is_destroyed_after_unchanged_polls(make_resman, make_fleet) -> None:
    rm = make_resman()
    fleet = make_fleet(rm, sim_hosts(1))
    rm.call("group.create", group_body("web", 1))
    wait_running(rm, "web", 1)
    wait_until(lambda: fleet.stats["polls_unchanged"] >= 3, timeout=10, what="unchanged poll answers")
    fleet._on("sim-00001", lambda w, h: h.create({"id": "ghost.abcdef01", "group": "ghost", **template()}))
    wait_until(lambda: "ghost.abcdef01" not in fleet.containers(), timeout=15, what="the stray destroyed")
    assert len(wait_running(rm, "web", 1)) == 1
