"""The master's per-report decision: deploy/start, restart with backoff, give up, rolling update, stop."""

from __future__ import annotations

from typing import Any

from galaxy.appmaster.jobs import new_job, summarise_state
from galaxy.appmaster.pods import PodRow, absorb, decide
from galaxy.appmaster.rollout import Rollout
from galaxy.protocol.pod import PodReport
from galaxy.spec import parse_job


def _job(**over: Any) -> Any:
    raw: dict[str, Any] = {"name": "web", "replicas": 2, "resources": {"cpu": 0.5, "memory": "64Mi"},
                           "program": {"version": "1", "start": "sleep 100"},
                           "restart": {"max_retries": 2, "backoff": "1s..4s"}}
    raw.update(over)
    return new_job(parse_job(raw), "alice", "", "")


def _report(row: PodRow, now: float = 0.0, **kw: Any) -> str:
    """Absorb a report into `row` and return the command verb (the rest is in the last decision)."""
    global last
    report = PodReport(pod=row.pod, job=row.job, **kw)
    absorb(row, report, now)
    last = decide(JOB, row, report, now)
    return last.command.command


last: Any = None
JOB: Any = None


def setup_function() -> None:
    global JOB
    JOB = _job()


def test_fresh_pod_is_started_at_once_then_left_alone() -> None:
    row = PodRow(pod="web.a", job="web")
    assert _report(row, status="PENDING") == "start", "the worker deploys first: no separate deploy round"
    assert last.command.version == "1" and last.command.program["start"] == "sleep 100"
    assert last.command.program["restart"]["max_retries"] == 2
    assert _report(row, status="DEPLOYING", seq=1) == "none"
    assert _report(row, status="STARTING", version="1", seq=2) == "none"
    assert _report(row, status="RUNNING", version="1", seq=3) == "none"


def test_pod_stopped_with_a_deployed_version_is_started() -> None:
    row = PodRow(pod="web.a", job="web")
    assert _report(row, status="STOPPED", version="1", seq=2) == "start"


def test_failure_counted_once_per_event_with_backoff_then_give_up() -> None:
    row = PodRow(pod="web.a", job="web", target="1")
    assert _report(row, 10.0, status="EXITED", version="1", exit_code=3, seq=5) == "restart"
    assert last.command.delay == 1.0 and row.failures == 1
    assert _report(row, 10.5, status="EXITED", version="1", exit_code=3, seq=5) == "restart"
    assert row.failures == 1, "the same failure reported again is not a new failure"
    assert abs(last.command.delay - 0.5) < 1e-9, "the backoff deadline is absolute"
    assert _report(row, 20.0, status="EXITED", version="1", exit_code=3, seq=7) == "restart"
    assert last.command.delay == 2.0
    assert _report(row, 30.0, status="START_FAILED", version="1", message="boom", seq=9) == "give_up"
    assert row.gave_up and row.shown_status == "FAILED" and "boom" in row.reason
    assert _report(row, 31.0, status="FAILED", version="1", seq=10) == "none"


def test_deploy_failure_retries_the_deploy() -> None:
    row = PodRow(pod="web.a", job="web")
    assert _report(row, status="DEPLOY_FAILED", message="404", seq=1) == "deploy"


def test_batch_exit_zero_completes_and_job_state_follows() -> None:
    global JOB
    JOB = _job(type="batch", replicas=1)
    row = PodRow(pod="b.a", job="web", target="1")
    assert _report(row, status="EXITED", version="1", exit_code=0, seq=4) == "none"
    assert row.completed
    assert summarise_state(JOB, {"b.a": (row.version, row.status, row.gave_up, row.completed)}) == "COMPLETED"


def test_stopping_job_stops_active_pods_only() -> None:
    JOB.state = "STOPPING"
    row = PodRow(pod="web.a", job="web", target="1")
    assert _report(row, status="RUNNING", version="1") == "stop"
    assert _report(row, status="STOPPED", version="1", seq=2) == "none"
    assert summarise_state(JOB, {"web.a": ("1", "STOPPED", False, False)}) == "STOPPED"


def test_rolling_update_admits_within_step_and_waits_for_commit() -> None:
    label = JOB.add_version(parse_job({**JOB.versions["1"], "program": {"version": "2", "start": "sleep 200"}}))
    JOB.rollout = Rollout(target=label, source="1", step=1)
    JOB.version = label
    a = PodRow(pod="web.a", job="web", target="1")
    b = PodRow(pod="web.b", job="web", target="1")
    assert _report(a, status="RUNNING", version="1") == "none" and last.admitted
    assert _report(b, status="RUNNING", version="1") == "none" and not last.admitted
    assert b.target == "1", "b waits for a free slot"
    assert _report(a, status="RUNNING", version="1") == "update"
    assert last.command.version == "2" and last.command.program["start"] == "sleep 200"
    assert _report(a, 5.0, status="RUNNING", version="2", seq=3) == "none"
    JOB.rollout.tick(5.0)
    assert _report(b, 5.0, status="RUNNING", version="1", seq=1) == "none" and last.admitted


def test_new_pod_during_rollout_goes_straight_to_the_target() -> None:
    JOB.rollout = Rollout(target="2", source="1", step=1)
    JOB.add_version(parse_job({**JOB.versions["1"], "program": {"version": "2", "start": "x"}}))
    JOB.version = "2"
    row = PodRow(pod="web.new", job="web")
    assert _report(row, status="PENDING") == "start" and last.command.version == "2"
    assert JOB.rollout.in_flight == {}
