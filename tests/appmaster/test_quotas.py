"""What a user's jobs hold against their quota (galaxy.appmaster.quotas), without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.appmaster.jobs import Job, new_job
from galaxy.appmaster.quotas import holding, used_by
from galaxy.appmaster.rollout import Rollout
from galaxy.spec import parse_job


def job(name: str, owner: str, cpu: float, replicas: int, memory: str = "64Mi") -> Job:
    raw: dict[str, Any] = {"name": name, "replicas": replicas, "resources": {"cpu": cpu, "memory": memory},
                           "program": {"version": "1", "start": "sleep 1000"}}
    return new_job(parse_job(raw), owner, "", "")


def test_a_recreate_rollout_holds_the_larger_version_per_replica_and_an_inplace_one_does_not() -> None:
    web = job("web", "alice", 0.5, 2)
    bigger = parse_job({**web.versions["1"], "resources": {**web.versions["1"]["resources"], "cpu": 1.5}})
    label = web.add_version(bigger)
    web.rollout = Rollout(target=label, source="1", step=1, mode="recreate")
    web.version = label
    assert holding(web).cpu == pytest.approx(3.0) and holding(web).replicas == 2
    web.rollout = web.rollout.reversed(0.0)          # rolling back: still both versions side by side
    web.version = "1"
    assert holding(web).cpu == pytest.approx(3.0)
    web.rollout.mode = "inplace"
    assert holding(web).cpu == pytest.approx(1.0)
    assert holding(web, replicas=5).cpu == pytest.approx(2.5) and holding(web, replicas=5).jobs == 1


def test_use_counts_only_the_owners_jobs_that_are_not_being_removed() -> None:
    jobs = [job("a", "alice", 0.25, 2), job("b", "alice", 1.0, 1, memory="1Gi"), job("c", "bob", 4.0, 4)]
    gone = job("d", "alice", 8.0, 8)
    gone.removing = True
    used = used_by([*jobs, gone], "alice")
    assert (used.cpu, used.jobs, used.replicas, used.memory) == (1.5, 2, 3, 2 * (64 << 20) + (1 << 30))
    assert used_by(jobs, "carol").jobs == 0
