"""Regression (found by the multi-host update test): a breakpoint reached while the user had already
paused the rollout must be spent there — the user's one resume continues the rollout instead of
meeting the same breakpoint again."""

from __future__ import annotations

from galaxy.appmaster.rollout import Rollout


def test_breakpoint_reached_during_a_manual_pause_pauses_once() -> None:
    rollout = Rollout(target="2", source="1", step=1, pause_between=1.0, breakpoint=1)
    assert rollout.admit("a", 0.0)
    rollout.pause()                                 # the user pauses while pod a is still moving
    rollout.observe_running("a", "2", 1.0)
    assert rollout.tick(2.5) == ["settled:a"]       # held at the breakpoint by the user's own pause
    rollout.resume()
    assert rollout.tick(3.0) == [] and rollout.moving, "resumed once, the rollout must go on"
    assert rollout.admit("b", 3.0)


def test_breakpoint_without_a_manual_pause_still_pauses() -> None:
    rollout = Rollout(target="2", source="1", step=1, breakpoint=1)
    assert rollout.admit("a", 0.0)
    rollout.observe_running("a", "2", 1.0)
    assert rollout.tick(1.0) == ["settled:a", "breakpoint"] and not rollout.moving
    rollout.resume()
    assert rollout.tick(2.0) == [] and rollout.admit("b", 2.0)
