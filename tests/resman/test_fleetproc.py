"""The out-of-process simulated fleet the scale benchmark uses: its hosts register with a real ResMan,
take containers, report their stats, and the children end when their parent closes them."""

from __future__ import annotations

import pytest

from galaxy.testing.fleetproc import start_fleets
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running

pytestmark = pytest.mark.zk


def test_fleet_processes_register_their_slices_and_run_containers(make_resman, keys) -> None:
    rm = make_resman()
    fleets = start_fleets(rm.endpoint, keys.resman.public, keys.agent, 5, processes=2, cpu=4.0,
                          heartbeat_interval=0.5)
    try:
        wait_until(lambda: rm.engine.reported_count() == 5, timeout=30, what="both slices registered")
        assert sorted(rm.engine.hosts.entries) == [f"sim-{i:05d}" for i in range(1, 6)]
        rm.call("group.create", group_body("web", 4, container=template(cpu=1.0)))
        wait_running(rm, "web", 4)
        stats = [f.stats() for f in fleets]
        assert [s["registered_hosts"] for s in stats] == [3, 2]
        assert sum(s["containers"] for s in stats) == 4
    finally:
        for fleet in fleets:
            fleet.close()
    assert all(f.proc.returncode == 0 for f in fleets)
