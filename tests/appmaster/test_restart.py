"""Restart policy arithmetic: backoff, give-up, success of a batch pod, failure text."""

from __future__ import annotations

from galaxy.appmaster.restart import describe_failure, is_failure, judge_failure, stable
from galaxy.spec import RestartPolicy


def test_backoff_doubles_then_gives_up_after_max_retries() -> None:
    policy = RestartPolicy(max_retries=3, backoff_min=1.0, backoff_max=3.0)
    delays, failures = [], 0
    while True:
        verdict = judge_failure(policy, failures, 100.0)
        failures = verdict.failures
        if verdict.give_up:
            break
        delays.append(verdict.retry_at - 100.0)
    assert delays == [1.0, 2.0, 3.0]
    assert failures == 4


def test_batch_exit_zero_is_success_but_not_for_services() -> None:
    assert not is_failure("EXITED", 0, batch=True)
    assert is_failure("EXITED", 0, batch=False)
    assert is_failure("EXITED", 2, batch=True)
    assert is_failure("KILLED", None, batch=True)
    assert not is_failure("RUNNING", None, batch=False)


def test_reason_names_what_failed() -> None:
    text = describe_failure("KILLED", None, 9, True, "")
    assert "KILLED" in text and "out of memory" in text and "signal 9" in text
    assert describe_failure("START_FAILED", 127, None, False, "sh: nope: not found").endswith("not found")


def test_stable_after_running_a_while() -> None:
    assert not stable(None, 50.0)
    assert not stable(45.0, 50.0)
    assert stable(30.0, 50.0)
