"""The full reconciliation (the safety net behind touched groups) reaches every group every
FULL_RECONCILE seconds, spread over rounds: one round reconciling 1,000 groups of 100,000 containers
held the engine lock, and every Agent's answer, for a tenth of a second."""

from __future__ import annotations

from typing import Any

from galaxy.resman import Engine, ResManSettings
from galaxy.resman.engine import FULL_RECONCILE


def test_every_group_is_swept_each_period_a_share_per_round() -> None:
    now = [1000.0]
    engine = Engine(ResManSettings(), clock=lambda: now[0])
    groups: dict[str, Any] = {f"g{i:04d}": object() for i in range(1000)}
    engine.groups = groups
    round_s = 0.05
    swept: list[set[str]] = []
    first_sweep: set[str] = set()
    while now[0] < 1000.0 + FULL_RECONCILE / 2 + round_s:         # the first half-period
        share = engine._sweep_share(now[0])
        swept.append(share)
        first_sweep |= share
        now[0] += round_s
    assert first_sweep == set(groups)                              # every group, within half the period
    assert max(len(s) for s in swept) <= 0.05 * len(groups)        # never all at once
    while now[0] < 1000.0 + FULL_RECONCILE - round_s:              # nothing more until the period ends
        assert engine._sweep_share(now[0]) == set()
        now[0] += round_s
    now[0] = 1000.0 + FULL_RECONCILE
    assert 0 < len(engine._sweep_share(now[0])) <= 0.05 * len(groups)   # the next sweep begins, a share
