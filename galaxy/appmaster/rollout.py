"""The rolling-update engine: which pods may move to the target version now, and when it is over.

Pure logic over plain data (no clock, no I/O: `now` is passed in), so every rule is unit-tested and
the whole state round-trips through `to_dict`/`from_dict` into ZooKeeper — a new leader continues a
rollout exactly where the old one stood.

Rules:
* at most `step` pods are *in flight* (told to move, not yet settled);
* a pod settles `pause_between` seconds after it is RUNNING at the target version, which frees its slot;
* with a `breakpoint` N, no pod beyond the N-th is admitted, and once the first N have settled the
  rollout pauses (the breakpoint is then spent — also when it is reached during a manual pause, so a
  resume never meets the same breakpoint twice);
* each failure of an in-flight pod counts; more than `max_failures` marks the rollout failed, which
  admits nothing more until `resume` (that forgives the failures) or a rollback;
* pods already at the target, and new pods that never ran anything, are not moved by the rollout:
  they do not cost availability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODES = ("inplace", "recreate")


@dataclass
class Rollout:
    target: str
    source: str
    step: int
    pause_between: float = 0.0
    max_failures: int = 0
    breakpoint: int | None = None
    mode: str = "inplace"
    in_flight: dict[str, float | None] = field(default_factory=dict)   # pod -> settles at (None: not yet)
    done: list[str] = field(default_factory=list)
    failures: int = 0
    paused: bool = False
    failed: bool = False
    reason: str = ""
    started_at: float = 0.0

    # ---- admission -------------------------------------------------------------------------------
    @property
    def moving(self) -> bool:
        """Admitting pods at all (not paused, not failed)."""
        return not self.paused and not self.failed

    def admit(self, pod: str, now: float) -> bool:
        """May `pod` (now running another version) move to the target? Admitting takes a slot."""
        if pod in self.in_flight or pod in self.done:
            return True
        if self.mode != "inplace" or not self.moving:
            return False
        if len(self.in_flight) >= self.step:
            return False
        if self.breakpoint is not None and len(self.done) + len(self.in_flight) >= self.breakpoint:
            return False
        self.in_flight[pod] = None
        return True

    # ---- observation -----------------------------------------------------------------------------
    def observe_running(self, pod: str, version: str | None, now: float) -> None:
        """A pod reported RUNNING (healthy) at `version`: start its settle timer if it is ours."""
        if pod in self.in_flight and version == self.target and self.in_flight[pod] is None:
            self.in_flight[pod] = now + self.pause_between

    def observe_failure(self, pod: str) -> bool:
        """An in-flight pod failed (one new failure event). True when this failed the rollout."""
        if pod not in self.in_flight:
            return False
        self.in_flight[pod] = None
        self.failures += 1
        if self.failures > self.max_failures and not self.failed:
            self.failed = True
            self.reason = f"{self.failures} failure(s) during the update; the policy allows {self.max_failures}"
            return True
        return False

    def forget(self, pod: str) -> None:
        """The pod is gone (container destroyed): free its slot."""
        self.in_flight.pop(pod, None)
        if pod in self.done:
            self.done.remove(pod)

    def tick(self, now: float) -> list[str]:
        """Settle pods whose pause is over; returns events ("settled:<pod>", "breakpoint")."""
        events = []
        for pod, settles_at in list(self.in_flight.items()):
            if settles_at is not None and settles_at <= now:
                del self.in_flight[pod]
                self.done.append(pod)
                events.append(f"settled:{pod}")
        if self.breakpoint is not None and not self.in_flight and len(self.done) >= self.breakpoint:
            # Reached: the breakpoint is spent either way. If the user had already paused, the rollout
            # is held right here, and their resume must not meet the same breakpoint a second time.
            self.breakpoint = None
            if not self.paused:
                self.paused = True
                events.append("breakpoint")
        return events

    # ---- control ---------------------------------------------------------------------------------
    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Continue: a pause ends, a failed rollout gets a fresh failure budget."""
        self.paused = False
        if self.failed:
            self.failed = False
            self.failures = 0
            self.reason = ""

    def reversed(self, now: float) -> Rollout:
        """The rollback of this rollout: back to `source`, by the same step and pause."""
        return Rollout(target=self.source, source=self.target, step=self.step, pause_between=self.pause_between,
                       max_failures=self.max_failures, mode=self.mode, started_at=now)

    def complete(self, pods: dict[str, tuple[str | None, str]], replicas: int) -> bool:
        """Over when at least `replicas` pods exist and every one runs the target, with nothing unsettled.

        `pods` maps each live pod to (version, status)."""
        if len(pods) < replicas or self.in_flight:
            return False
        return all(version == self.target and status == "RUNNING" for version, status in pods.values())

    def summary(self) -> dict[str, Any]:
        """The `update` section of `job.show`."""
        return {"target": self.target, "source": self.source, "step": self.step, "done": len(self.done),
                "in_flight": sorted(self.in_flight), "paused": self.paused, "breakpoint": self.breakpoint,
                "failures": self.failures, "failed": self.failed, "reason": self.reason, "mode": self.mode}

    # ---- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "source": self.source, "step": self.step,
                "pause_between": self.pause_between, "max_failures": self.max_failures,
                "breakpoint": self.breakpoint, "mode": self.mode, "in_flight": dict(self.in_flight),
                "done": list(self.done), "failures": self.failures, "paused": self.paused,
                "failed": self.failed, "reason": self.reason, "started_at": self.started_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        return cls(target=str(data["target"]), source=str(data["source"]), step=int(data["step"]),
                   pause_between=float(data.get("pause_between", 0.0)),
                   max_failures=int(data.get("max_failures", 0)), breakpoint=data.get("breakpoint"),
                   mode=str(data.get("mode", "inplace")), in_flight=dict(data.get("in_flight", {})),
                   done=list(data.get("done", [])), failures=int(data.get("failures", 0)),
                   paused=bool(data.get("paused", False)), failed=bool(data.get("failed", False)),
                   reason=str(data.get("reason", "")), started_at=float(data.get("started_at", 0.0)))
