"""ResMan's scheduler: a pipeline of small stages (source, feasibility, sample, rank, pick) over an
in-memory view of every host's free resources. See `pipeline.py` for how the stages are wired."""

from __future__ import annotations

from galaxy.resman.scheduler.ask import TMPFS, Ask
from galaxy.resman.scheduler.feasibility import CHECKS, GroupAsk, first_rejection
from galaxy.resman.scheduler.hostview import ADMIN_STATES, DRAINING, OFFLINE, ONLINE, HostView
from galaxy.resman.scheduler.index import HostIndex
from galaxy.resman.scheduler.pipeline import Outcome, Scheduler, sample_size
from galaxy.resman.scheduler.rank import SCORERS, binpack, spread

__all__ = [
    "ADMIN_STATES", "Ask", "CHECKS", "DRAINING", "GroupAsk", "HostIndex", "HostView", "OFFLINE", "ONLINE",
    "Outcome", "SCORERS", "Scheduler", "TMPFS", "binpack", "first_rejection", "sample_size", "spread",
]
