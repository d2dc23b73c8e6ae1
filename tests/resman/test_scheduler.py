"""The placement pipeline alone: every constraint, table-driven, and the ranking strategies."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.resman.scheduler import Ask, GroupAsk, HostIndex, HostView, Scheduler, sample_size

GiB = 1 << 30


def host(name: str, *, pool: str = "default", labels: tuple[str, ...] = (), cpu: float = 8.0, memory: int = 16 * GiB,
         disks: dict[str, int] | None = None, ports: int = 100, used_ports: set[int] | None = None,
         admin: str = "online", alive: bool = True) -> HostView:
    view = HostView(name, pool, frozenset(labels))
    disks = {"ssd": 100 * GiB} if disks is None else disks
    view.set_capacity({"cpu": cpu, "memory": memory}, [{"medium": m, "capacity": c} for m, c in disks.items()])
    view.report({"cpu": cpu, "memory": memory, "disks": disks, "ports": ports}, set(), used_ports or set())
    view.admin = admin
    view.alive = alive
    return view


def index_of(*views: HostView) -> HostIndex:
    index = HostIndex()
    for v in views:
        index.add(v)
    return index


def want(ask: Ask | None = None, **kw: Any) -> GroupAsk:
    return GroupAsk(kw.pop("group", "g"), kw.pop("pool", "default"), ask or Ask(1.0, GiB), **kw)


# (case, hosts, ask, expected host or None, fragment of the reason)
CASES = [
    ("pool", [host("a", pool="other"), host("b")], want(), "b", ""),
    ("no host in pool", [host("a", pool="other")], want(), None, "no host in pool default"),
    ("label", [host("a"), host("b", labels=("ssd",))], want(labels=("ssd",)), "b", ""),
    ("missing label", [host("a"), host("b")], want(labels=("gpu",)), None, "has label gpu"),
    ("two labels", [host("a", labels=("ssd",)), host("b", labels=("ssd", "10g"))], want(labels=("ssd", "10g")), "b", ""),
    ("offline", [host("a", admin="offline"), host("b")], want(), "b", ""),
    ("draining", [host("a", admin="draining")], want(), None, "1 host draining"),
    ("lost", [host("a", alive=False)], want(), None, "1 host lost"),
    ("cpu", [host("a", cpu=0.5), host("b", cpu=2)], want(Ask(1.0, GiB)), "b", ""),
    ("no cpu", [host("a", cpu=0.5)], want(Ask(1.0, GiB)), None, "not enough cpu"),
    ("memory", [host("a", memory=GiB // 2)], want(Ask(0.1, GiB)), None, "not enough memory"),
    ("disk medium", [host("a", disks={"hdd": 10 * GiB}), host("b")], want(Ask(1, GiB, (("ssd", GiB),))), "b", ""),
    ("no disk medium", [host("a", disks={"hdd": 10 * GiB})], want(Ask(1, GiB, (("ssd", GiB),))), None, "no ssd disk"),
    ("disk size", [host("a", disks={"ssd": GiB})], want(Ask(1, GiB, (("ssd", 2 * GiB),))), None, "not enough ssd"),
    ("tmpfs needs no disk", [host("a", disks={})], want(Ask(1, GiB, (("tmpfs", GiB),))), "a", ""),
    ("port count", [host("a", ports=1), host("b", ports=3)], want(Ask(1, GiB, (), 2)), "b", ""),
    ("fixed port", [host("a", used_ports={9100}), host("b")], want(Ask(1, GiB, (), 1, (9100,))), "b", ""),
    ("fixed port taken", [host("a", used_ports={9100})], want(Ask(1, GiB, (), 1, (9100,))), None, "port 9100 taken"),
    ("avoid", [host("a"), host("b")], want(avoid=frozenset({"a"})), "b", ""),
]


@pytest.mark.parametrize(("case", "views", "ask", "expected", "reason"), CASES, ids=[c[0] for c in CASES])
def test_constraint(case: str, views: list[HostView], ask: GroupAsk, expected: str | None, reason: str) -> None:
    outcome = Scheduler(index_of(*views), "binpack").place(ask, ["g.1"])
    if expected is None:
        assert outcome.placed == []
        assert reason in outcome.reason
    else:
        assert [(cid, v.id) for cid, v in outcome.placed] == [("g.1", expected)]
        assert outcome.reason == ""


def test_max_per_host_spreads_a_group_and_then_explains() -> None:
    sched = Scheduler(index_of(host("a"), host("b")), "binpack")
    outcome = sched.place(want(max_per_host=1), ["g.1", "g.2", "g.3"])
    assert sorted(v.id for _, v in outcome.placed) == ["a", "b"]
    assert "2 already 1 of the group" in outcome.reason


def test_placement_debits_the_host_at_once() -> None:
    a = host("a", cpu=2.0)
    outcome = Scheduler(index_of(a), "binpack").place(want(Ask(1.0, GiB)), ["g.1", "g.2", "g.3"])
    assert len(outcome.placed) == 2
    assert a.free_cpu == pytest.approx(0.0)
    assert "not enough cpu" in outcome.reason
    a.release("g.1", "g")
    assert a.free_cpu == pytest.approx(1.0)


def test_report_keeps_unreported_placements_debited() -> None:
    a = host("a", cpu=4.0)
    Scheduler(index_of(a), "binpack").place(want(Ask(1.0, GiB)), ["g.1", "g.2"])
    a.report({"cpu": 3.0, "memory": 16 * GiB - GiB, "disks": {}, "ports": 100}, {"g.1"}, set())
    assert a.free_cpu == pytest.approx(2.0)      # g.1 counted by the Agent, g.2 still by us


def test_binpack_fills_hosts_spread_levels_them() -> None:
    def run(strategy: str) -> list[int]:
        views = [host(f"h{i}", cpu=4.0) for i in range(8)]
        Scheduler(index_of(*views), strategy, seed=1).place(want(Ask(1.0, GiB)), [f"g.{i}" for i in range(8)])
        return sorted((len(v.containers) for v in views), reverse=True)
    assert run("binpack") == [4, 4, 0, 0, 0, 0, 0, 0]
    assert max(run("spread")) <= 2


def test_sample_size_is_bounded() -> None:
    assert sample_size(1) == 1
    assert sample_size(10_000) == 16
