"""Feasibility checks, cheapest first. Each returns None (feasible) or a short reason that is counted,
so a group that cannot be placed can say why ("12 not enough memory, 3 host offline")."""

from __future__ import annotations

from dataclasses import dataclass, field

from galaxy.resman.scheduler.ask import Ask
from galaxy.resman.scheduler.hostview import DRAINING, OFFLINE, HostView


@dataclass(slots=True)
class GroupAsk:
    """Everything the pipeline needs to place containers of one group."""

    group: str
    pool: str
    ask: Ask
    labels: tuple[str, ...] = ()
    max_per_host: int | None = None
    avoid: frozenset[str] = field(default_factory=frozenset)


def check_state(host: HostView, want: GroupAsk) -> str | None:
    if not host.alive:
        return "host lost"
    if host.admin == OFFLINE:
        return "host offline"
    if host.admin == DRAINING:
        return "host draining"
    return None


def check_labels(host: HostView, want: GroupAsk) -> str | None:
    for label in want.labels:
        if label not in host.labels:
            return f"lacks label {label}"
    return None


def check_avoid(host: HostView, want: GroupAsk) -> str | None:
    return "avoided after failures" if host.id in want.avoid else None


def check_spread(host: HostView, want: GroupAsk) -> str | None:
    limit = want.max_per_host
    if limit is not None and host.group_count.get(want.group, 0) >= limit:
        return f"already {limit} of the group"
    return None


def check_resources(host: HostView, want: GroupAsk) -> str | None:
    return host.fits(want.ask)


CHECKS = (check_state, check_labels, check_avoid, check_spread, check_resources)


def first_rejection(host: HostView, want: GroupAsk) -> str | None:
    for check in CHECKS:
        reason = check(host, want)
        if reason is not None:
            return reason
    return None
