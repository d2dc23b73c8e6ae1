"""Scores: higher is better. Bin-pack prefers the host that is fullest after the placement (the
point of Galaxy is utilisation: full hosts, and whole hosts left free for large containers);
spread prefers the emptiest."""

from __future__ import annotations

from collections.abc import Callable

from galaxy.resman.scheduler.ask import Ask
from galaxy.resman.scheduler.hostview import HostView

Scorer = Callable[[HostView, Ask], float]


def binpack(host: HostView, ask: Ask) -> float:
    return host.utilisation(ask)


def spread(host: HostView, ask: Ask) -> float:
    return 1.0 - host.utilisation(ask)


SCORERS: dict[str, Scorer] = {"binpack": binpack, "spread": spread}


def best(candidates: list[HostView], ask: Ask, scorer: Scorer) -> HostView:
    top, top_score = candidates[0], scorer(candidates[0], ask)
    for host in candidates[1:]:
        score = scorer(host, ask)
        if score > top_score:
            top, top_score = host, score
    return top
