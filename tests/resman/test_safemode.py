"""A standby that takes over serves from state and Agent reports, in safe mode until most reported."""

from __future__ import annotations

import pytest

from galaxy.testing.fleet import sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, wait_running

pytestmark = pytest.mark.zk


def test_takeover_waits_for_agents_and_moves_nothing_until_then(make_resman, make_fleet) -> None:
    rm1 = make_resman()
    fleet = make_fleet(rm1, sim_hosts(4, cpu=4.0))
    rm1.call("group.create", group_body("web", 8, max_per_host=2))
    before = {c["id"]: c["host"] for c in wait_running(rm1, "web", 8)}
    rm1.close()
    fleet.stop_host("sim-00001")
    fleet.stop_host("sim-00002")
    rm2 = make_resman()
    status = rm2.call("safemode.status", {})
    assert status["safe_mode"] is True and status["agents_known"] == 4
    fleet.connect_to(rm2.endpoint, rm1.keys.resman.public)
    # two of four report; the other two go silent past lost_after: still nothing is moved
    wait_until(lambda: sum(h["status"] == "lost" for h in rm2.call("hosts.list", {})) == 2 and
               rm2.engine.hosts.get("sim-00001").lost_handled is False, timeout=20, what="two hosts lost")
    rounds = rm2.engine.stats["rounds"]
    wait_until(lambda: rm2.engine.stats["rounds"] > rounds + 10, timeout=10, what="more rounds")
    assert rm2.call("safemode.status", {})["agents_reported"] == 2
    assert rm2.engine.stats["placed"] == 0 and rm2.engine.stats["unknown_destroyed"] == 0
    shown = rm2.call("group.show", {"group": "web"})
    assert {c["id"]: c["host"] for c in shown["containers"]} == before
    fleet.start_host("sim-00001")
    fleet.start_host("sim-00002")
    wait_until(lambda: not rm2.call("safemode.status", {})["safe_mode"], timeout=20, what="safe mode left")
    after = {c["id"]: c["host"] for c in wait_running(rm2, "web", 8)}
    assert after == before                                          # nothing restarted, nothing moved
    where = fleet.containers()
    assert {cid: hosts[0] for cid, hosts in where.items()} == before and all(len(h) == 1 for h in where.values())


def test_administrator_safe_mode_holds_placements(make_resman, make_fleet) -> None:
    rm = make_resman()
    make_fleet(rm, sim_hosts(2))
    assert rm.call("safemode.status", {})["safe_mode"] is False
    entered = rm.call("safemode.enter", {})
    assert entered["safe_mode"] is True and entered["reason"] == "entered by an administrator"
    rm.call("group.create", group_body("web", 3))
    rounds = rm.engine.stats["rounds"]
    wait_until(lambda: rm.engine.stats["rounds"] > rounds + 10, timeout=10, what="more rounds")
    assert rm.call("group.list", {})[0]["ready"] == 0
    assert rm.call("safemode.leave", {})["safe_mode"] is False
    wait_running(rm, "web", 3)
