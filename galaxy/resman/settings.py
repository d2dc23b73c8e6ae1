"""ResMan's tunables, read from `GALAXY_RESMAN_*` environment variables (documented in docs/resman.md).

They live outside `DaemonConfig` until the lead folds them into the config file; every value is
checked here so a typo stops the daemon with the variable's name instead of a wrong cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from galaxy.errors import InvalidInput

STRATEGIES = ("binpack", "spread")


@dataclass(frozen=True)
class ResManSettings:
    poll_interval: float = 1.0        # seconds between two `agent.resources` polls of one host
    lost_after: int = 5               # a host silent for this many poll intervals is lost
    safe_mode_ratio: float = 0.85     # after taking over: leave safe mode once this share registered
    safe_mode_timeout: float = 60.0   # ... or after this many seconds, whatever reported
    strategy: str = "binpack"         # ranking: binpack (raise utilisation) or spread
    create_timeout: float = 60.0      # a `container.create` without an answer by then failed
    destroy_timeout: float = 30.0
    creates_per_host: int = 8         # creates in flight to one Agent at once (it runs 8 at a time)
    backoff_min: float = 1.0          # a group's first retry after a failed creation
    backoff_max: float = 60.0
    avoid_for: float = 120.0          # a host that failed a group's creation is avoided this long
    round_limit: int = 20_000         # placements per scheduling round (bounds one ZooKeeper batch)
    trace_containers: bool = True     # trace each container's notable events (failures, losses)
    usage_flush: float = 15.0         # seconds between two writes of usage records (accounting)
    usage_retain_days: int = 400      # usage day records older than this are deleted (once a day)

    def __post_init__(self) -> None:
        for name in ("poll_interval", "safe_mode_timeout", "create_timeout", "destroy_timeout",
                     "backoff_min", "backoff_max", "avoid_for", "usage_flush"):
            if getattr(self, name) <= 0:
                raise InvalidInput("must be > 0", field=name)
        if self.lost_after < 1:
            raise InvalidInput("must be >= 1", field="lost_after")
        if self.usage_retain_days < 1:
            raise InvalidInput("must be >= 1", field="usage_retain_days")
        if not 0.0 <= self.safe_mode_ratio <= 1.0:
            raise InvalidInput("must be between 0 and 1", field="safe_mode_ratio")
        if self.strategy not in STRATEGIES:
            raise InvalidInput(f"expected one of {', '.join(STRATEGIES)}", field="strategy")
        if self.creates_per_host < 1 or self.round_limit < 1:
            raise InvalidInput("must be >= 1", field="creates_per_host")

    @property
    def lost_seconds(self) -> float:
        return self.poll_interval * self.lost_after

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ResManSettings:
        """Defaults, then `GALAXY_RESMAN_<FIELD>` variables, then keyword overrides."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = source.get(f"GALAXY_RESMAN_{f.name.upper()}")
            if raw is None:
                continue
            try:
                if f.type in ("float", float):
                    values[f.name] = float(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("bool", bool):
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                else:
                    values[f.name] = raw.strip()
            except ValueError:
                raise InvalidInput(f"cannot parse {raw!r}", field=f"GALAXY_RESMAN_{f.name.upper()}") from None
        return replace(cls(**values), **overrides)  # type: ignore[arg-type]
