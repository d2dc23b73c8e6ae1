"""Keeping the Agent's port range out of the kernel's ephemeral (auto-bound) ports.

Why: a port the kernel hands to an outgoing ``connect()`` or a ``bind(0)`` is taken by somebody the
port table knows nothing of; once it happens to fall in the range, a later assignment collides.
``net.ipv4.ip_local_reserved_ports`` removes ports from automatic allocation (explicit binds still
work), so reserving the range makes it Galaxy's alone. Both sysctls are per network namespace and
are read and written in the namespace of the calling thread.

The reserved list is shared with whoever else reserves ports on the host, so we merge into it and,
on removal, take out only our range minus what was reserved before us (``keep``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from galaxy.errors import InvalidInput
from galaxy.ports._errors import PortError

RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

Span = tuple[int, int]


def parse_spans(text: str) -> list[Span]:
    """``"20000-20010,30000"`` → ``[(20000, 20010), (30000, 30000)]`` (merged, sorted)."""
    spans: list[Span] = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo_text, _, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if hi_text else lo
        except ValueError as exc:
            raise InvalidInput(f"not a port or port range: {part!r}", field="ports") from exc
        if not 0 <= lo <= hi <= 65535:
            raise InvalidInput(f"not a port range: {part!r}", field="ports")
        spans.append((lo, hi))
    return merge_spans(spans)


def format_spans(spans: Iterable[Span]) -> str:
    """The kernel's list syntax: ``a-b`` for a range, ``a`` for a single port, comma-separated."""
    return ",".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in merge_spans(spans))


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sort and join overlapping or adjacent spans."""
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def subtract_span(spans: Iterable[Span], lo: int, hi: int) -> list[Span]:
    """``spans`` without any port of ``lo..hi``."""
    left: list[Span] = []
    for a, b in merge_spans(spans):
        if b < lo or a > hi:
            left.append((a, b))
            continue
        if a < lo:
            left.append((a, lo - 1))
        if b > hi:
            left.append((hi + 1, b))
    return left


def intersect_span(spans: Iterable[Span], lo: int, hi: int) -> list[Span]:
    """The parts of ``spans`` inside ``lo..hi``."""
    return [(max(a, lo), min(b, hi)) for a, b in merge_spans(spans) if b >= lo and a <= hi]


def read_reserved() -> list[Span]:
    """The reserved ports of the calling thread's network namespace."""
    try:
        return parse_spans(RESERVED_PORTS.read_text())
    except OSError as exc:
        raise PortError(f"cannot read {RESERVED_PORTS}: {exc}") from exc


def _write_reserved(spans: list[Span]) -> None:
    text = format_spans(spans)
    try:
        # One write(2): the kernel parses the whole list at once ("" clears it; it wants a newline).
        RESERVED_PORTS.write_text(text + "\n")
    except OSError as exc:
        raise PortError(f"cannot write {RESERVED_PORTS} ({text[:80]!r}): {exc}") from exc


def ephemeral_range() -> Span:
    """``net.ipv4.ip_local_port_range`` of the calling thread's network namespace."""
    try:
        lo_text, hi_text = EPHEMERAL_RANGE.read_text().split()
        return int(lo_text), int(hi_text)
    except (OSError, ValueError) as exc:
        raise PortError(f"cannot read {EPHEMERAL_RANGE}: {exc}") from exc


def ephemeral_overlap(lo: int, hi: int) -> Span | None:
    """The part of ``lo..hi`` the kernel may hand out as ephemeral ports, or None."""
    eph_lo, eph_hi = ephemeral_range()
    if hi < eph_lo or lo > eph_hi:
        return None
    return max(lo, eph_lo), min(hi, eph_hi)


def reserve_ephemeral(lo: int, hi: int) -> list[Span]:
    """Add ``lo..hi`` to the reserved ports, keeping everything already there.

    Returns the parts of ``lo..hi`` that were reserved *before* this call, to pass back as ``keep``
    to :func:`unreserve_ephemeral` so that removing our range does not drop somebody else's.
    """
    _check_span(lo, hi)
    current = read_reserved()
    before = intersect_span(current, lo, hi)
    wanted = merge_spans([*current, (lo, hi)])
    if wanted != current:
        _write_reserved(wanted)
    return before


def unreserve_ephemeral(lo: int, hi: int, keep: Iterable[Span] = ()) -> None:
    """Remove ``lo..hi`` from the reserved ports, except the spans in ``keep``; the rest stays."""
    _check_span(lo, hi)
    current = read_reserved()
    kept = [part for a, b in intersect_span(keep, lo, hi) for part in intersect_span(current, a, b)]
    wanted = merge_spans([*subtract_span(current, lo, hi), *kept])
    if wanted != current:
        _write_reserved(wanted)


def _check_span(lo: int, hi: int) -> None:
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 65535):
        raise InvalidInput(f"need 1 <= lo <= hi <= 65535, got {lo}..{hi}", field="range")


__all__ = [
    "Span", "parse_spans", "format_spans", "merge_spans", "subtract_span", "intersect_span",
    "read_reserved", "ephemeral_range", "ephemeral_overlap", "reserve_ephemeral", "unreserve_ephemeral",
]
