"""Safe mode: a leader that has just taken over places nothing and moves nothing until most Agents
have told it what they run, so a half-informed leader never reschedules healthy containers.

It ends by itself once `ratio` of the hosts in state have registered (or after `timeout`), unless an
administrator entered it by hand: then only `safemode.leave` ends it.
"""

from __future__ import annotations

import math
from typing import Any


class SafeMode:
    def __init__(self, ratio: float, timeout: float) -> None:
        self.ratio = ratio
        self.timeout = timeout
        self.auto = False
        self.manual = False
        self.reason = ""
        self.started = 0.0

    @property
    def on(self) -> bool:
        return self.auto or self.manual

    def begin(self, known: int, now: float) -> None:
        """Taking over: safe until enough of the `known` hosts registered (none known: not at all)."""
        self.started = now
        self.auto = known > 0
        self.reason = f"took over; waiting for {self.needed(known)} of {known} agents" if self.auto else ""

    def needed(self, known: int) -> int:
        return math.ceil(known * self.ratio)

    def update(self, known: int, reported: int, now: float) -> str | None:
        """Leave automatic safe mode when its condition is met; returns why it was left, else None."""
        if not self.auto:
            return None
        if reported >= self.needed(known):
            why = f"{reported} of {known} agents reported"
        elif now - self.started >= self.timeout:
            why = f"timeout after {self.timeout:g} s with {reported} of {known} agents reported"
        else:
            return None
        self.auto = False
        if not self.manual:
            self.reason = ""
        return why

    def enter(self, why: str = "entered by an administrator") -> None:
        self.manual = True
        self.reason = why

    def leave(self) -> None:
        self.manual = False
        self.auto = False
        self.reason = ""

    def status(self, known: int, reported: int) -> dict[str, Any]:
        return {"safe_mode": self.on, "reason": self.reason, "agents_reported": reported, "agents_known": known}
