"""The row type every benchmark returns, and the table `make bench` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured figure, with what it is compared to.

    ``ratio`` is value / baseline; ``better`` says which direction is good ("higher" for throughput,
    "lower" for latency or time) so the verdict column can judge it against ``target`` (a ratio).
    """

    bench: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: float | None = None
    better: str = "higher"

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        ratio = self.ratio
        if ratio is None or self.target is None:
            return ""
        ok = ratio >= self.target if self.better == "higher" else ratio <= self.target
        return "ok" if ok else "MISS"


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def render(rows: list[Row]) -> str:
    head = ["bench", "metric", "galaxy", "unit", "baseline", "vs", "ratio", "target", ""]
    body = []
    for r in rows:
        tgt = "" if r.target is None else ((">= " if r.better == "higher" else "<= ") + fmt(r.target))
        body.append([r.bench, r.metric, fmt(r.value), r.unit, fmt(r.baseline), r.baseline_name,
                     fmt(r.ratio), tgt, r.verdict])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)
