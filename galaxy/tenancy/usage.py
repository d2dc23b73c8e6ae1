"""Usage records: what each user's containers used and reserved, per pool and hour (docs/resman.md).

ResMan's leader writes them (``galaxy.resman.accounting``); the AppMaster's ``user.usage`` reads them
with :func:`read_usage`. The layout lives here, beside the reader, so writer and reader cannot drift::

    state/usage/<user>:<pool>:<YYYYMMDD, UTC>  =
        {"user", "pool", "day", "hours": {"<hour start, epoch s>": figures}}
    figures = {"cpu_used": core-s, "cpu_reserved": core-s, "memory_used": GiB-s,
               "memory_reserved": GiB-s, "disk_reserved": {medium: GiB-s}}

One record per user, pool and day keeps a record small (at most 24 hours of figures) and lets a
report for a date range read only the days it covers, found by name without reading the others.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from galaxy.coord import StateStore
from galaxy.errors import InvalidInput

USAGE = "usage"
HOUR = 3600
SCALARS = ("cpu_used", "cpu_reserved", "memory_used", "memory_reserved")


def day_of(epoch: float) -> str:
    """The UTC day (``YYYYMMDD``) an instant falls in."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d")


def hour_of(epoch: float) -> int:
    return int(epoch // HOUR) * HOUR


def record_key(user: str, pool: str, day: str) -> str:
    return f"{user}:{pool}:{day}"


def zero_figures() -> dict[str, Any]:
    return {"cpu_used": 0.0, "cpu_reserved": 0.0, "memory_used": 0.0, "memory_reserved": 0.0, "disk_reserved": {}}


def add_figures(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Add ``more`` to ``into`` in place (missing fields count as zero) and return ``into``."""
    for name in SCALARS:
        into[name] = float(into.get(name) or 0.0) + float(more.get(name) or 0.0)
    disk = into.setdefault("disk_reserved", {})
    for medium, amount in (more.get("disk_reserved") or {}).items():
        disk[medium] = float(disk.get(medium) or 0.0) + float(amount or 0.0)
    return into


def rounded(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: round(float(figures.get(name) or 0.0), 6) for name in SCALARS}
    out["disk_reserved"] = {m: round(float(v), 6) for m, v in sorted((figures.get("disk_reserved") or {}).items())}
    return out


def _days(since: float, until: float) -> set[str]:
    days: set[str] = set()
    t = float(hour_of(since))
    while t < until:
        days.add(day_of(t))
        t += 24 * HOUR
    days.add(day_of(max(since, until - 1)))
    return days


def read_usage(store: StateStore, user: str, since: float, pool: str | None = None,
               until: float | None = None) -> dict[str, Any]:
    """The usage report of ``user`` over the hours that overlap ``[since, until)`` (until: now).

    Figures are kept per hour, so the report covers whole hours: an hour counts when any part of it
    lies in the range. Returns ``{"user", "since", "until", "pools": {pool: figures}, "total": figures}``.
    """
    if isinstance(since, bool) or not isinstance(since, (int, float)) or since < 0:
        raise InvalidInput(f"expected an epoch time in seconds, got {since!r}", field="since")
    end = time.time() if until is None else until
    if isinstance(end, bool) or not isinstance(end, (int, float)):
        raise InvalidInput(f"expected an epoch time in seconds, got {until!r}", field="until")
    if end < since:
        raise InvalidInput("must not be before since", field="until")
    days = _days(since, end)
    prefix = f"{user}:"
    pools: dict[str, dict[str, Any]] = {}
    for key in store.keys(USAGE):
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].rsplit(":", 1)
        if len(parts) != 2 or parts[1] not in days or (pool is not None and parts[0] != pool):
            continue
        record = store.get(USAGE, key)
        if record is None:
            continue
        figures = pools.setdefault(parts[0], zero_figures())
        for hour, hourly in (record.get("hours") or {}).items():
            if not (isinstance(hour, str) and hour.isdigit()) or not isinstance(hourly, dict):
                continue                    # not written by a Meter: skipped rather than failing the report
            start = int(hour)
            if start + HOUR > since and start < end:
                add_figures(figures, hourly)
    total = zero_figures()
    for figures in pools.values():
        add_figures(total, figures)
    return {"user": user, "since": since, "until": end,
            "pools": {name: rounded(f) for name, f in sorted(pools.items())}, "total": rounded(total)}


__all__ = ["HOUR", "USAGE", "add_figures", "day_of", "hour_of", "read_usage", "record_key", "rounded",
           "zero_figures"]
