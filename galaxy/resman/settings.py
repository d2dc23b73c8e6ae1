"""ResMan's tunables: the `resman:` section of its config file, then `GALAXY_RESMAN_*` environment
variables (a quick override, and what tests use), both documented in docs/resman.md.

Every value is checked here, so a typo stops the daemon with the setting's name (`resman.poll_interval`)
instead of running a wrong cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, fields, replace
from typing import Any

from galaxy.errors import InvalidInput
from galaxy.spec import parse_duration

STRATEGIES = ("binpack", "spread")
# Settings in seconds, each > 0: the config file also takes durations for them ("500ms", "2m").
DURATIONS = frozenset({"poll_interval", "safe_mode_timeout", "create_timeout", "destroy_timeout", "backoff_min",
                       "backoff_max", "avoid_for", "usage_flush"})


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
        for name in sorted(DURATIONS):
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
    def load(cls, section: Any = None, env: Mapping[str, str] | None = None, **overrides: object) -> ResManSettings:
        """Defaults, then the config file's `resman:` section, then `GALAXY_RESMAN_<FIELD>` variables,
        then keyword overrides. An error names the setting as the file or the variable spells it."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        origin: dict[str, str] = {}
        if section is not None:
            if not isinstance(section, Mapping):
                raise InvalidInput("expected a mapping of ResMan settings", field="resman")
            for key, raw in section.items():
                f = known.get(key) if isinstance(key, str) else None
                if f is None:
                    raise InvalidInput(f"unknown setting; expected one of {', '.join(known)}", field=f"resman.{key}")
                origin[key] = f"resman.{key}"
                values[key] = _from_file(f, raw, origin[key])
        source = os.environ if env is None else env
        for f in known.values():
            raw_text = source.get(f"GALAXY_RESMAN_{f.name.upper()}")
            if raw_text is not None:
                origin[f.name] = f"GALAXY_RESMAN_{f.name.upper()}"
                values[f.name] = _from_text(f, raw_text, origin[f.name])
        try:
            return replace(cls(**values), **overrides)  # type: ignore[arg-type]
        except InvalidInput as err:
            raise InvalidInput(err.message, field=origin.get(err.field or "", err.field)) from None


# The field types (as `from __future__` annotations spell them) and how a mistake names what was wanted.
_KINDS: dict[str, tuple[type, str]] = {"float": (float, "a number"), "int": (int, "an integer"),
                                       "bool": (bool, "true or false"), "str": (str, "a string")}


def _from_text(f: Field[Any], raw: str, name: str) -> object:
    kind = _KINDS[str(f.type)][0]
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    try:
        return kind(raw.strip())
    except ValueError:
        raise InvalidInput(f"cannot parse {raw!r}", field=name) from None


def _from_file(f: Field[Any], raw: object, name: str) -> object:
    """A YAML value: the field's own type (an int where a float goes), or a duration for seconds."""
    if f.name in DURATIONS and isinstance(raw, str):
        return parse_duration(raw, field=name)
    kind, wanted = _KINDS[str(f.type)]
    allowed = (int, float) if kind is float else kind
    if not isinstance(raw, allowed) or (isinstance(raw, bool) and kind is not bool):
        if f.name in DURATIONS:
            wanted = "a number of seconds or a duration like 500ms"
        raise InvalidInput(f"expected {wanted}, got {raw!r}", field=name)
    return float(raw) if kind is float else raw
