"""The placement pipeline, wired in one place (after Nomad's `stack.go`):

    source (index: pool or rarest label) → rotating scan from a cursor
      → feasibility, cheapest check first (state, labels, avoid-list, max-per-host, resources)
      → a bounded sample of feasible hosts (ceil(log2 n) + 2)
      → rank (bin-pack or spread) → pick → debit the host at once.

A whole group's pending containers are placed in one call, so the group-level work (finding the
source, the sample size) is paid once. Bin-pack scans from a cursor that stays on the first host
that still fitted (next-fit), so full hosts are skipped rather than re-checked, and it tries the
host it just chose first; spread starts each scan at a random host. When a container cannot be
placed, the scan has visited every candidate, and its rejection counts become the group's reason.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

from galaxy.resman.scheduler.feasibility import GroupAsk, first_rejection
from galaxy.resman.scheduler.hostview import HostView
from galaxy.resman.scheduler.index import HostIndex, SourceKey
from galaxy.resman.scheduler.rank import SCORERS, best

EXTRA_CANDIDATES = 2


@dataclass
class Outcome:
    placed: list[tuple[str, HostView]] = field(default_factory=list)   # (container id, host)
    reason: str = ""                     # why the rest could not be placed ("" when all were)
    rejections: Counter[str] = field(default_factory=Counter)
    checked: int = 0                     # hosts visited, all containers together


def sample_size(candidates: int) -> int:
    return min(candidates, math.ceil(math.log2(candidates)) + EXTRA_CANDIDATES) if candidates > 1 else candidates


class Scheduler:
    def __init__(self, index: HostIndex, strategy: str = "binpack", *, seed: int | None = None) -> None:
        self.index = index
        self.strategy = strategy
        self._scorer = SCORERS[strategy]
        self._cursors: dict[SourceKey, int] = {}
        self._random = random.Random(seed)

    def place(self, want: GroupAsk, container_ids: list[str]) -> Outcome:
        """Choose a host for each container id, in order, debiting each choice at once; stops at the
        first container that fits nowhere (the rest of the group would not fit either)."""
        outcome = Outcome()
        key, source, label = self.index.source(want.pool, want.labels)
        if not source:
            outcome.reason = self._nothing_in_source(want, label)
            return outcome
        limit = sample_size(len(source))
        binpack = self.strategy == "binpack"
        last: HostView | None = None
        for cid in container_ids:
            if binpack and last is not None and first_rejection(last, want) is None:
                chosen = last
                outcome.checked += 1
            else:
                scan: Counter[str] = Counter()
                chosen = self._choose(key, source, want, limit, outcome, scan)
                outcome.rejections.update(scan)
                if chosen is None:
                    outcome.reason = self._explain(want, scan, len(source))
                    break
            chosen.debit(cid, want.group, want.ask)
            outcome.placed.append((cid, chosen))
            last = chosen
        return outcome

    def _choose(self, key: SourceKey, source: list[HostView], want: GroupAsk, limit: int,
                outcome: Outcome, rejections: Counter[str]) -> HostView | None:
        n = len(source)
        start = self._cursors.get(key, 0) % n if self.strategy == "binpack" else self._random.randrange(n)
        feasible: list[HostView] = []
        first_fit = -1
        visited = 0
        for step in range(n):
            pos = start + step
            if pos >= n:
                pos -= n
            host = source[pos]
            visited += 1
            reason = first_rejection(host, want)
            if reason is not None:
                rejections[reason] += 1
                continue
            if first_fit < 0:
                first_fit = pos
            feasible.append(host)
            if len(feasible) >= limit:
                break
        outcome.checked += visited
        if not feasible:
            return None
        if self.strategy == "binpack":
            self._cursors[key] = first_fit
        return best(feasible, want.ask, self._scorer)

    @staticmethod
    def _nothing_in_source(want: GroupAsk, label: str | None) -> str:
        if label is not None:
            return f"no host in pool {want.pool} has label {label}"
        return f"no host in pool {want.pool}"

    @staticmethod
    def _explain(want: GroupAsk, rejections: Counter[str], hosts: int) -> str:
        parts = ", ".join(f"{count} {reason}" for reason, count in rejections.most_common(4))
        return f"no host in pool {want.pool} fits ({hosts} hosts checked: {parts})"
