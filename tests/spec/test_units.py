"""Bytes, durations and cpu: what is accepted, what each spelling means, and exact round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy.spec import (
    SpecError,
    format_bytes,
    format_duration,
    parse_bytes,
    parse_cpu,
    parse_duration,
    parse_duration_range,
)
from galaxy.spec._units import MAX_BYTES


@pytest.mark.parametrize(("text", "expected"), [
    ("256Mi", 256 * 2**20), ("1Gi", 2**30), ("512M", 512 * 10**6), ("1G", 10**9), ("4096", 4096),
    ("1.5Gi", 3 * 2**29), ("0.5Ki", 512), ("2Ti", 2 * 2**40), ("1GiB", 2**30), ("10 Mi", 10 * 2**20),
    (4096, 4096), (1e9, 10**9), ("0", 0), (" 3K ", 3000),
])
def test_bytes_accepted(text: Any, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("-1Gi", "negative"), (-1, "negative"), ("1.3", "whole number"), ("1gi", "Ki Mi Gi"),
    ("1 GB B", "Ki Mi Gi"), ("lots", "Ki Mi Gi"), ("", "Ki Mi Gi"), ("1e9", "Ki Mi Gi"), (True, "boolean"),
    (None, "null"), ([1], "list"), (float("inf"), "inf"), ("99999Ei", "too large"), (2**64, "too large"),
    pytest.param(10**5000, "too large", id="5000-digit-int"),
])
def test_bytes_refused(text: Any, words: str) -> None:
    with pytest.raises(SpecError, match=None) as caught:
        parse_bytes(text, field="resources.memory")
    assert caught.value.field == "resources.memory"
    assert words in caught.value.errors[0].message


@pytest.mark.parametrize(("amount", "spelled"), [
    (2**30, "1Gi"), (3 * 2**29, "1.5Gi"), (10**9, "1G"), (4096, "4Ki"), (1000, "1K"), (1234, "1234"),
    (0, "0"), (256 * 2**20, "256Mi"),
])
def test_bytes_formatted_shortest(amount: int, spelled: str) -> None:
    assert format_bytes(amount) == spelled


@given(st.integers(min_value=0, max_value=MAX_BYTES))
def test_bytes_round_trip(amount: int) -> None:
    assert parse_bytes(format_bytes(amount)) == amount


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("2h", 7200.0), ("1d", 86400.0), ("1.5s", 1.5),
    ("1h1m1s", 3661.0), ("100us", 0.0001), ("0", 0.0), (3, 3.0), (0.5, 0.5), ("1m30.1s", 90.1),
])
def test_durations_accepted(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "words"), [
    ("5", "needs a unit"), ("-5s", "negative"), ("5 sec", "duration"), ("30s1m", "largest to smallest"),
    ("1m1m", "largest to smallest"), ("", "duration"), ("s", "duration"), (True, "boolean"),
    (float("nan"), "duration"), ("100000d", "ten years"), ("1:30", "duration"),
])
def test_durations_refused(text: Any, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_duration(text, field="update.pause_between")
    assert caught.value.field == "update.pause_between"
    assert words in caught.value.errors[0].message


@pytest.mark.parametrize(("seconds", "spelled"), [
    (90.0, "1m30s"), (0.25, "250ms"), (1.5, "1.5s"), (0.0, "0s"), (86400.0, "1d"), (0.0001, "100us"),
    (0.0015, "1.5ms"), (3661.0, "1h1m1s"),
])
def test_durations_formatted(seconds: float, spelled: str) -> None:
    assert format_duration(seconds) == spelled


@given(st.integers(min_value=0, max_value=10 * 365 * 86400 * 10**6))
def test_duration_round_trip(micros: int) -> None:
    seconds = parse_duration(micros / 1_000_000)
    assert parse_duration(format_duration(seconds)) == seconds


def test_duration_ranges() -> None:
    assert parse_duration_range("1s..60s") == (1.0, 60.0)
    assert parse_duration_range({"min": 1.0, "max": 60.0}) == (1.0, 60.0)
    assert parse_duration_range("5s") == (5.0, 5.0)
    with pytest.raises(SpecError, match="lower end above"):
        parse_duration_range("60s..1s")
    with pytest.raises(SpecError, match="range like"):
        parse_duration_range({"lo": 1})


@pytest.mark.parametrize(("value", "cores"), [
    (0.5, 0.5), ("500m", 0.5), (2, 2.0), ("2", 2.0), ("0.25", 0.25), ("1m", 0.001), (1024, 1024.0),
    (0.3333, 0.333),
])
def test_cpu_accepted(value: Any, cores: float) -> None:
    assert parse_cpu(value) == cores


@pytest.mark.parametrize(("value", "words"), [
    (0, "above 0"), ("0m", "above 0"), (-1, "above 0"), ("-1", "cores"), (1025, "at most 1024"),
    ("0.0001", "at least 1m"), ("half", "cores"), (True, "boolean"), (float("inf"), "cores"),
])
def test_cpu_refused(value: Any, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_cpu(value, field="resources.cpu")
    assert words in caught.value.errors[0].message
