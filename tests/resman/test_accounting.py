"""Usage accounting: the Meter's billing (fake clock, no threads) and its records in ZooKeeper."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from galaxy.coord import Paths, StateStore
from galaxy.errors import InvalidInput
from galaxy.protocol.resman import GroupSpec
from galaxy.resman.accounting import Meter
from galaxy.resman.model import Group
from galaxy.resman.settings import ResManSettings
from galaxy.tenancy import USAGE, read_usage
from galaxy.testing.fleet import sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import group_body, template, wait_running

GIB = 1 << 30
HOUR = 3600.0
START = 1_764_061_200.0          # 2025-11-25 09:00:00 UTC, an hour start


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make_group(name: str, pool: str = "default", owner: str = "alice", cpu: float = 2.0) -> Group:
    container = template(cpu=cpu, memory=GIB, disks=[{"medium": "ssd", "size": 4 * GIB, "path": "/data"}])
    body = {**group_body(name, 1, pool=pool, container=container), "owner": owner}
    return Group.from_spec(GroupSpec.from_wire(body), 0.0)


def running(cid: str, group: str, cpu_seconds: float | None, memory: int = GIB // 2) -> dict[str, Any]:
    usage = None if cpu_seconds is None else {"cpu_seconds": cpu_seconds, "memory": memory, "oom_kills": 0}
    return {"id": cid, "group": group, "state": "running", "usage": usage}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def meter_for(groups: dict[str, Group], clock: FakeClock, store: StateStore | None = None,
              **settings: Any) -> Meter:
    return Meter(lambda: groups, store, ResManSettings(**{"poll_interval": 1.0, "usage_flush": 1000.0, **settings}),
                 wall=clock, clock=clock)


def test_bills_cpu_growth_memory_held_and_what_the_group_reserves(clock: FakeClock) -> None:
    meter = meter_for({"web": make_group("web")}, clock)
    meter.observe("h1", "default", [running("web.1", "web", 10.0)], clock.now)
    assert meter.pending() == {}                                  # first sight: the baseline only
    meter.observe("h1", "default", [running("web.1", "web", 10.5)], clock.now + 1.0)
    assert meter.pending() == {("alice", "default", int(START)): {
        "cpu_used": 0.5, "cpu_reserved": 2.0, "memory_used": 0.5, "memory_reserved": 1.0,
        "disk_reserved": {"ssd": 4.0}}}


def test_a_counter_that_went_down_counts_from_zero(clock: FakeClock) -> None:
    meter = meter_for({"web": make_group("web")}, clock)
    meter.observe("h1", "default", [running("web.1", "web", 100.0)], clock.now)
    meter.observe("h1", "default", [running("web.1", "web", 3.0)], clock.now + 1.0)
    assert meter.pending()[("alice", "default", int(START))]["cpu_used"] == 3.0


def test_a_gap_between_reports_bills_at_most_three_poll_intervals(clock: FakeClock) -> None:
    meter = meter_for({"web": make_group("web")}, clock)
    meter.observe("h1", "default", [running("web.1", "web", 0.0)], clock.now)
    meter.observe("h1", "default", [running("web.1", "web", 1.0)], clock.now + 600.0)
    figures = meter.pending()[("alice", "default", int(START))]
    assert figures["cpu_reserved"] == 6.0 and figures["memory_reserved"] == 3.0 and figures["memory_used"] == 1.5
    assert figures["cpu_used"] == 1.0                             # measured growth, not an estimate


def test_an_interval_across_the_hour_is_split_between_both_hours(clock: FakeClock) -> None:
    meter = meter_for({"web": make_group("web")}, clock)
    meter.observe("h1", "default", [running("web.1", "web", 0.0)], START + HOUR - 0.5)
    meter.observe("h1", "default", [running("web.1", "web", 1.0)], START + HOUR + 0.5)
    pending = meter.pending()
    first, second = pending[("alice", "default", int(START))], pending[("alice", "default", int(START + HOUR))]
    assert first["cpu_reserved"] == second["cpu_reserved"] == 1.0
    assert first["cpu_used"] == second["cpu_used"] == 0.5


def test_unknown_groups_exited_containers_and_late_reports_are_not_billed(clock: FakeClock) -> None:
    meter = meter_for({"web": make_group("web")}, clock)
    first = [running("web.1", "web", 0.0), running("ghost.1", "ghost", 0.0),
             {**running("web.2", "web", 0.0), "state": "exited"}]
    meter.observe("h1", "default", first, clock.now)
    meter.observe("h1", "default", [running("web.1", "web", 1.0), running("ghost.1", "ghost", 5.0),
                                    {**running("web.2", "web", 9.0), "state": "exited"}], clock.now + 1.0)
    meter.observe("h1", "default", [running("web.1", "web", 50.0)], clock.now + 0.5)   # older than the last
    assert meter.pending() == {("alice", "default", int(START)): {
        "cpu_used": 1.0, "cpu_reserved": 2.0, "memory_used": 0.5, "memory_reserved": 1.0,
        "disk_reserved": {"ssd": 4.0}}}


def test_reserved_figures_follow_a_new_template(clock: FakeClock) -> None:
    group = make_group("web")
    meter = meter_for({"web": group}, clock)
    meter.observe("h1", "default", [running("web.1", "web", 0.0)], clock.now)
    group.set_template({**group.template, "cpu": 0.5})
    meter.observe("h1", "default", [running("web.1", "web", 0.0)], clock.now + 2.0)
    assert meter.pending()[("alice", "default", int(START))]["cpu_reserved"] == 1.0


def test_usage_flush_is_a_setting() -> None:
    assert ResManSettings.load(env={"GALAXY_RESMAN_USAGE_FLUSH": "1"}).usage_flush == 1.0
    assert ResManSettings.load({"usage_flush": "2s"}, env={}).usage_flush == 2.0
    assert ResManSettings().usage_flush == 15.0
    with pytest.raises(InvalidInput) as bad:
        ResManSettings(usage_flush=0)
    assert bad.value.field == "usage_flush"


# ---- records in ZooKeeper ---------------------------------------------------------------------------

@pytest.fixture
def store(zk_client: object) -> StateStore:
    return StateStore(zk_client, Paths("galaxy-usage"))  # type: ignore[arg-type]


@pytest.fixture
def meters() -> Iterator[list[Meter]]:
    made: list[Meter] = []
    yield made
    for meter in made:
        meter.stop()


def two_hours_of_work(meter: Meter) -> None:
    """web (alice, default) and gpu (alice, gpu) run for 2 s in hour 0 and 2 s in hour 1 (another host)."""
    for hour in (0, 1):
        base = START + hour * HOUR + 10
        for step in range(3):
            meter.observe(f"h{hour}", "default", [running("web.1", "web", 10.0 * hour + step),
                                                  running("gpu.1", "gpu", 10.0 * hour + 2 * step)], base + step)


@pytest.mark.zk
def test_day_records_older_than_the_retention_are_deleted(store: StateStore, clock: FakeClock) -> None:
    today = clock.now
    for days_ago in (0, 5, 30):
        day = time.strftime("%Y%m%d", time.gmtime(today - days_ago * 24 * HOUR))
        store.put(USAGE, f"alice:default:{day}", {"user": "alice", "pool": "default", "day": day, "hours": {}})
    meter = meter_for({"web": make_group("web")}, clock, store, usage_retain_days=10)
    meter.flush()
    kept = sorted(store.keys(USAGE))
    assert [k.rsplit(":", 1)[1] for k in kept] == sorted(
        time.strftime("%Y%m%d", time.gmtime(today - d * 24 * HOUR)) for d in (0, 5))


def test_retention_is_a_setting() -> None:
    with pytest.raises(InvalidInput) as err:
        ResManSettings(usage_retain_days=0)
    assert err.value.field == "usage_retain_days"


@pytest.mark.zk
def test_flushed_records_read_back_and_a_new_meter_continues_them(store: StateStore, clock: FakeClock,
                                                                  meters: list[Meter]) -> None:
    groups = {"web": make_group("web"), "gpu": make_group("gpu", pool="gpu", cpu=1.0)}
    meters.append(meter_for(groups, clock, store, usage_flush=1.0).start())
    two_hours_of_work(meters[0])
    meters[0].hand_over()
    until = START + 2 * HOUR
    wait_until(lambda: read_usage(store, "alice", START, until=until)["total"]["cpu_reserved"] > 0, timeout=10,
               what="usage records written")
    report = read_usage(store, "alice", START, until=until)
    assert report["user"] == "alice" and report["since"] == START and report["until"] == until
    assert report["pools"]["default"] == {"cpu_used": 4.0, "cpu_reserved": 8.0, "memory_used": 2.0,
                                          "memory_reserved": 4.0, "disk_reserved": {"ssd": 16.0}}
    assert report["pools"]["gpu"]["cpu_used"] == 8.0 and report["pools"]["gpu"]["cpu_reserved"] == 4.0
    assert report["total"]["cpu_used"] == 12.0 and report["total"]["disk_reserved"] == {"ssd": 32.0}
    assert set(read_usage(store, "alice", START, pool="gpu", until=until)["pools"]) == {"gpu"}
    second_hour = read_usage(store, "alice", START + HOUR, until=until)
    assert second_hour["total"]["cpu_reserved"] == 6.0                   # (2 + 1 cores) × 2 s
    assert read_usage(store, "bob", START, until=until)["total"]["cpu_used"] == 0.0
    day = store.get(USAGE, "alice:default:20251125")
    assert day is not None and set(day["hours"]) == {str(int(START)), str(int(START + HOUR))}
    meters[0].stop()

    # A new leader's Meter adds to the same day records instead of starting them again.
    meters.append(meter_for(groups, clock, store, usage_flush=1.0).start())
    two_hours_of_work(meters[1])
    meters[1].hand_over()
    wait_until(lambda: read_usage(store, "alice", START, until=until)["total"]["cpu_used"] == 24.0, timeout=10,
               what="the second Meter's figures added")
    assert read_usage(store, "alice", START, until=until)["pools"]["default"]["cpu_reserved"] == 16.0


@pytest.mark.zk
def test_reserved_usage_grows_while_a_group_runs_and_stops_with_it(make_resman, make_fleet,
                                                                  meters: list[Meter]) -> None:
    rm = make_resman(usage_flush=0.5)
    meters.append(Meter(lambda: rm.engine.groups, rm.store, rm.engine.settings).start())
    rm.engine.meter = meters[0]
    fleet = make_fleet(rm, sim_hosts(2, prefix="galaxy-u"))
    since = time.time() - 5
    rm.call("group.create", group_body("galaxy-busy", 2, container=template(cpu=1.0)))
    wait_running(rm, "galaxy-busy", 2)

    def reserved() -> float:
        return float(read_usage(rm.store, "tester", since)["pools"].get("default", {}).get("cpu_reserved", 0.0))
    first = wait_until(lambda: reserved() or None, timeout=10, what="reserved cpu billed")
    wait_until(lambda: reserved() > first + 1.0, timeout=10, what="reserved cpu growing")

    rm.call("group.remove", {"group": "galaxy-busy"})
    wait_until(lambda: not fleet.containers(), timeout=10, what="containers destroyed")
    polls = rm.engine.stats["polls"]
    wait_until(lambda: rm.engine.stats["polls"] >= polls + 4, timeout=10, what="hosts polled without them")
    wait_until(meters[0].settled, timeout=10, what="last figures written")
    settled = reserved()
    polls = rm.engine.stats["polls"]
    wait_until(lambda: rm.engine.stats["polls"] >= polls + 10, timeout=10, what="more polls")
    assert reserved() == settled and meters[0].settled()
