"""The rolling-update engine alone: steps, pauses, breakpoints, failures, rollback, persistence."""

from __future__ import annotations

from galaxy.appmaster.rollout import Rollout


def _rollout(**kw: object) -> Rollout:
    args: dict[str, object] = {"target": "2", "source": "1", "step": 2}
    args.update(kw)
    return Rollout(**args)  # type: ignore[arg-type]


def test_at_most_step_pods_move_at_once() -> None:
    r = _rollout(step=2)
    assert [r.admit(p, 0.0) for p in ("a", "b", "c")] == [True, True, False]
    assert r.admit("a", 0.0), "an admitted pod stays admitted"


def test_slot_frees_pause_between_after_healthy() -> None:
    r = _rollout(step=1, pause_between=5.0)
    assert r.admit("a", 0.0)
    r.observe_running("a", "1", 1.0)          # still the old version: not ours yet
    r.tick(100.0)
    assert not r.admit("b", 100.0)
    r.observe_running("a", "2", 100.0)
    r.tick(104.9)
    assert not r.admit("b", 104.9)
    assert r.tick(105.0) == ["settled:a"]
    assert r.admit("b", 105.0)
    assert r.summary()["done"] == 1


def test_breakpoint_pauses_after_n_pods_and_resume_continues() -> None:
    r = _rollout(step=2, breakpoint=1)
    assert r.admit("a", 0.0)
    assert not r.admit("b", 0.0), "the breakpoint bounds admissions, not only the step"
    r.observe_running("a", "2", 1.0)
    assert r.tick(1.0) == ["settled:a", "breakpoint"]
    assert r.paused and r.breakpoint is None
    assert not r.admit("b", 2.0)
    r.resume()
    assert r.admit("b", 2.0) and r.admit("c", 2.0)


def test_failures_past_max_fail_the_rollout_until_resumed() -> None:
    r = _rollout(step=3, max_failures=1)
    for pod in ("a", "b", "c"):
        r.admit(pod, 0.0)
    assert r.observe_failure("a") is False
    assert r.observe_failure("b") is True
    assert r.failed and "2 failure" in r.reason
    assert not r.admit("d", 1.0)
    assert r.observe_failure("x") is False, "a pod outside the rollout does not count"
    r.resume()
    assert not r.failed and r.failures == 0


def test_new_pods_and_recreate_mode_do_not_take_slots() -> None:
    r = _rollout(step=1, mode="recreate")
    assert not r.admit("a", 0.0)
    assert r.in_flight == {}


def test_complete_needs_every_pod_at_target_and_enough_pods() -> None:
    r = _rollout(step=1)
    pods = {"a": ("2", "RUNNING"), "b": ("2", "RUNNING")}
    assert not r.complete(pods, replicas=3)
    assert r.complete(pods, replicas=2)
    assert not r.complete({**pods, "c": ("1", "RUNNING")}, replicas=2)
    r.admit("a", 0.0)
    assert not r.complete(pods, replicas=2), "an unsettled pod keeps the rollout open"


def test_reversed_goes_back_by_the_same_step() -> None:
    r = _rollout(step=3, pause_between=2.0)
    r.admit("a", 0.0)
    back = r.reversed(10.0)
    assert (back.target, back.source, back.step, back.pause_between) == ("1", "2", 3, 2.0)
    assert back.in_flight == {} and back.done == []


def test_round_trip_through_state() -> None:
    r = _rollout(step=2, breakpoint=3, pause_between=1.5)
    r.admit("a", 0.0)
    r.observe_running("a", "2", 1.0)
    r.observe_failure("a")
    again = Rollout.from_dict(r.to_dict())
    assert again == r
