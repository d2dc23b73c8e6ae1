"""PortTable's bookkeeping without the kernel: firewall and reservation off, the host probe injected."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy.errors import InvalidInput, ResourceUnavailable
from galaxy.ports import PortTable


def table(lo: int = 20000, hi: int = 20009, busy: set[int] | None = None) -> PortTable:
    busy_ports = busy or set()
    probe: Callable[[int], bool] = lambda port: port not in busy_ports  # noqa: E731
    return PortTable("unit", lo, hi, firewall=False, reserve=False, probe=probe)


def test_assign_gives_fixed_ports_first_then_distinct_dynamic_ones() -> None:
    t = table()
    got = t.assign("a", dynamic=3, fixed=[20005])
    assert got[0] == 20005
    assert len(set(got)) == 4 and all(20000 <= p <= 20009 for p in got)
    assert t.held() == {p: "a" for p in got}
    assert t.owned("a") == got
    assert t.free_count() == 6


def test_a_held_port_is_refused_to_another_owner_naming_port_and_holder() -> None:
    t = table()
    t.assign("web-1", fixed=[20003])
    with pytest.raises(ResourceUnavailable) as caught:
        t.assign("web-2", fixed=[20003])
    assert "20003" in str(caught.value) and "web-1" in str(caught.value)
    assert caught.value.field == "fixed"
    assert t.held() == {20003: "web-1"}


def test_assign_is_all_or_nothing() -> None:
    t = table()
    t.assign("a", fixed=[20001])
    with pytest.raises(ResourceUnavailable):
        t.assign("b", dynamic=2, fixed=[20002, 20001])
    with pytest.raises(ResourceUnavailable) as caught:
        t.assign("b", dynamic=10)
    assert "only 9 are free" in str(caught.value)
    assert t.held() == {20001: "a"}
    assert t.owned("b") == []


def test_dynamic_ports_skip_ports_a_process_outside_galaxy_uses() -> None:
    t = table(busy={20000, 20001})
    assert sorted(t.assign("a", dynamic=8)) == list(range(20002, 20010))
    with pytest.raises(ResourceUnavailable):
        t.assign("b", dynamic=1)


def test_fixed_port_in_use_on_the_host_is_refused() -> None:
    t = table(busy={20004, 9100})
    for port in (20004, 9100):
        with pytest.raises(ResourceUnavailable) as caught:
            t.assign("a", fixed=[port])
        assert str(port) in str(caught.value) and "in use" in str(caught.value)


def test_fixed_port_outside_the_range_is_held_when_free_but_not_counted_in_the_range() -> None:
    t = table()
    assert t.assign("a", fixed=[9100]) == [9100]
    assert t.held() == {9100: "a"}
    assert t.free_count() == 10
    with pytest.raises(ResourceUnavailable):
        t.assign("b", fixed=[9100])


def test_release_frees_every_port_of_the_owner_and_only_those() -> None:
    t = table()
    a = t.assign("a", dynamic=2, fixed=[9100])
    b = t.assign("b", dynamic=2)
    assert sorted(t.release("a")) == sorted(a)
    assert t.release("a") == []
    assert t.held() == {p: "b" for p in b}
    assert t.assign("c", fixed=[9100]) == [9100]


def test_a_released_port_is_the_last_to_be_handed_out_again() -> None:
    t = table(lo=20000, hi=20003)
    first = t.assign("a", dynamic=1)
    t.release("a")
    following = [t.assign(f"o{i}", dynamic=1)[0] for i in range(3)]
    assert first[0] not in following
    assert t.assign("last", dynamic=1) == first


def test_rebuild_replaces_the_holds_and_rejects_a_port_given_twice() -> None:
    t = table()
    t.assign("old", dynamic=2)
    t.rebuild({"a": [20001, 20002], "b": [9100]})
    assert t.held() == {20001: "a", 20002: "a", 9100: "b"}
    with pytest.raises(InvalidInput) as caught:
        t.rebuild({"a": [20001], "b": [20001]})
    assert caught.value.field == "assignments"
    assert t.held() == {20001: "a", 20002: "a", 9100: "b"}


@pytest.mark.parametrize(("call", "field"), [
    (lambda t: t.assign("has space", dynamic=1), "owner"),
    (lambda t: t.assign('quo"te', dynamic=1), "owner"),
    (lambda t: t.assign("", dynamic=1), "owner"),
    (lambda t: t.assign("a", dynamic=-1), "dynamic"),
    (lambda t: t.assign("a", fixed=[0]), "fixed"),
    (lambda t: t.assign("a", fixed=[70000]), "fixed"),
    (lambda t: t.assign("a", fixed=[20001, 20001]), "fixed"),
    (lambda t: t.adopt(), "firewall"),
])
def test_bad_arguments_name_the_field(call: Callable[[PortTable], object], field: str) -> None:
    t = table()
    with pytest.raises(InvalidInput) as caught:
        call(t)
    assert caught.value.field == field
    assert t.held() == {}


@pytest.mark.parametrize(("tag", "lo", "hi", "field"), [
    ("x" * 22, 20000, 20001, "owner_tag"),
    ("bad tag", 20000, 20001, "owner_tag"),
    ("ok", 20001, 20000, "range"),
    ("ok", 0, 10, "range"),
    ("ok", 1, 65536, "range"),
])
def test_bad_construction_names_the_field(tag: str, lo: int, hi: int, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PortTable(tag, lo, hi, firewall=False, reserve=False)
    assert caught.value.field == field


def test_the_longest_tag_makes_a_28_character_chain() -> None:
    assert len(PortTable("t" * 21, 1, 2, firewall=False, reserve=False).chain) == 28


ops = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.sampled_from("abcd"), st.integers(0, 4),
                  st.lists(st.integers(19998, 20011), max_size=3)),
        st.tuples(st.just("release"), st.sampled_from("abcd"), st.just(0), st.just([])),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_no_port_ever_has_two_owners_and_counts_stay_consistent(steps: list[tuple[str, str, int, list[int]]]) -> None:
    t = table()
    for op, owner, dynamic, fixed in steps:
        before = t.held()
        if op == "release":
            freed = t.release(owner)
            assert sorted(freed) == sorted(p for p, o in before.items() if o == owner)
        else:
            try:
                got = t.assign(owner, dynamic=dynamic, fixed=fixed)
            except (ResourceUnavailable, InvalidInput):
                assert t.held() == before
                continue
            assert not set(got) & set(before)
            assert len(got) == len(set(fixed)) + dynamic
        held = t.held()
        for o in "abcd":
            assert sorted(t.owned(o)) == sorted(p for p, x in held.items() if x == o)
        assert t.free_count() == 10 - sum(1 for p in held if 20000 <= p <= 20009)
