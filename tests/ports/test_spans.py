"""The port-list arithmetic behind merging into ip_local_reserved_ports without clobbering it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy.errors import InvalidInput
from galaxy.ports._sysctl import format_spans, intersect_span, merge_spans, parse_spans, subtract_span


def ports_of(spans: list[tuple[int, int]]) -> set[int]:
    return {p for lo, hi in spans for p in range(lo, hi + 1)}


def test_parse_reads_the_kernel_syntax_and_merges() -> None:
    assert parse_spans("") == []
    assert parse_spans("\n") == []
    assert parse_spans("30000,20000-20010,20011\n") == [(20000, 20011), (30000, 30000)]


@pytest.mark.parametrize("text", ["abc", "20-10", "70000", "1-2-3"])
def test_parse_rejects_garbage_naming_the_text(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spans(text)
    assert text in str(caught.value)


def test_format_writes_single_ports_and_ranges() -> None:
    assert format_spans([(5, 5), (7, 9), (10, 10)]) == "5,7-10"
    assert format_spans([]) == ""


span = st.tuples(st.integers(1, 400), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1]))


@given(st.lists(span, max_size=8), st.integers(1, 400), st.integers(0, 60))
def test_subtract_and_intersect_match_set_arithmetic(spans: list[tuple[int, int]], lo: int, width: int) -> None:
    hi = lo + width
    cut = set(range(lo, hi + 1))
    assert ports_of(subtract_span(spans, lo, hi)) == ports_of(spans) - cut
    assert ports_of(intersect_span(spans, lo, hi)) == ports_of(spans) & cut
    assert parse_spans(format_spans(spans)) == merge_spans(spans)
