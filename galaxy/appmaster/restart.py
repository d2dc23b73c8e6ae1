"""The restart policy as the master applies it: count failures once, back off, give up.

A worker repeats its state in every report until it acts, so a failure must be counted once per
*event*, not once per report: the worker's `seq` (bumped on each of its state changes) tells a new
failure from the same one reported again. The backoff deadline is absolute (`retry_at`), so a worker
that receives the same `restart` command twice still acts at about the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from galaxy.spec import RestartPolicy

FAILURE_STATES = frozenset({"DEPLOY_FAILED", "START_FAILED", "UPDATE_FAILED", "EXITED", "KILLED", "FAILED"})
STABLE_AFTER = 10.0     # seconds RUNNING after which the consecutive-failure count starts again


@dataclass(frozen=True)
class FailureVerdict:
    """What to do about one failure: retry after `retry_at`, or give up (`give_up`)."""

    failures: int
    give_up: bool
    retry_at: float


def is_failure(status: str, exit_code: int | None, batch: bool) -> bool:
    """A batch pod that exited 0 has succeeded; every other exit or failed step is a failure."""
    if status == "EXITED" and batch and exit_code == 0:
        return False
    return status in FAILURE_STATES


def judge_failure(policy: RestartPolicy, failures_before: int, now: float) -> FailureVerdict:
    """The verdict on a new failure, given how many consecutive failures came before it."""
    failures = failures_before + 1
    if failures > policy.max_retries:
        return FailureVerdict(failures, True, now)
    return FailureVerdict(failures, False, now + policy.delay(failures - 1))


def describe_failure(status: str, exit_code: int | None, signal: int | None, oom: bool, message: str) -> str:
    """The reason a user reads in `pod.show`: what failed and how, in one line."""
    parts = [status]
    if oom:
        parts.append("out of memory")
    if signal is not None:
        parts.append(f"signal {signal}")
    if exit_code is not None:
        parts.append(f"exit code {exit_code}")
    text = ", ".join(parts)
    return f"{text}: {message}" if message else text


def stable(running_since: float | None, now: float) -> bool:
    """Running long enough that earlier failures no longer count against the retry budget."""
    return running_since is not None and now - running_since >= STABLE_AFTER
