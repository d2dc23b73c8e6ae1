"""An SDK call in flight during an AppMaster failover completes, or raises a clear retryable error.

Two real mesh Servers act as AppMaster replicas; each owns a real ZooKeeper session and publishes a
real leader record. The old leader is killed mid-call (its server stopped, its session closed so its
ephemeral record vanishes) and the standby publishes itself, as a real failover would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from galaxy.errors import RetryableError
from galaxy.sdk import Client, OutcomeUnknown, load_config
from tests.sdk.canned import CannedCluster, Replica

pytestmark = pytest.mark.zk

WEB = Path(__file__).resolve().parents[2] / "examples" / "web.yaml"
WAIT = 10.0


class Gate:
    """Holds calls of one method at the old leader until the test lets them go (which it never does)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, name: str) -> None:
        if name == self.method:
            self.entered.set()
            self.release.wait(WAIT)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def fail_over(canned: CannedCluster, old: Replica) -> Replica:
    old.kill()
    new = canned.add_replica("appmaster", "appmaster-2")
    new.lead()
    return new


def start_gated(canned: CannedCluster, method: str) -> tuple[Replica, Gate]:
    """Replace the canned AppMaster by one whose ``method`` blocks, and make it the leader."""
    gate = Gate(method)
    canned.appmaster.kill()
    gated = canned.add_replica("appmaster", "appmaster-gated", gate)
    gated.lead()
    return gated, gate


def test_a_read_in_flight_completes_on_the_new_leader(canned: CannedCluster, pool: ThreadPoolExecutor) -> None:
    with Client(load_config(canned.config_path, env={}), deadline=WAIT, call_timeout=WAIT) as sdk:
        sdk.submit(WEB)
        gated, gate = start_gated(canned, "job.show")
        future = pool.submit(sdk.job, "web")
        assert gate.entered.wait(WAIT)
        fail_over(canned, gated)
        row = future.result(timeout=2 * WAIT)
        assert row["job"] == "web"
        assert sdk.ping()["id"] == "appmaster-2"
        gate.release.set()


def test_a_write_in_flight_raises_outcome_unknown_naming_it(canned: CannedCluster, pool: ThreadPoolExecutor) -> None:
    with Client(load_config(canned.config_path, env={}), deadline=WAIT, call_timeout=WAIT) as sdk:
        sdk.submit(WEB)
        gated, gate = start_gated(canned, "job.scale")
        future = pool.submit(sdk.scale, "web", 5)
        assert gate.entered.wait(WAIT)
        fail_over(canned, gated)
        with pytest.raises(OutcomeUnknown) as caught:
            future.result(timeout=2 * WAIT)
        err = caught.value
        assert isinstance(err, RetryableError) and err.retryable and err.method == "job.scale"
        assert "job.scale" in str(err) and "appmaster-gated" in str(err) and "may or may not" in str(err)
        # The held call never got past the dead leader's gate, and the SDK did not re-send it to the
        # new leader behind the caller's back: no replica has run it.
        assert canned.calls("job.scale") == []
        assert sdk.scale("web", 5) == {"job": "web", "replicas": 5}  # the caller's own retry works
        assert [key for _, key in canned.calls("job.scale")] == ["alice"]
        gate.release.set()


def test_a_write_to_a_dead_leader_is_sent_to_the_next_one(canned: CannedCluster, pool: ThreadPoolExecutor) -> None:
    with Client(load_config(canned.config_path, env={}), deadline=WAIT, call_timeout=WAIT) as sdk:
        sdk.submit(WEB)
        old = canned.appmaster
        old.server.stop()  # dead, but its leader record still stands (its session lives on a while)
        future = pool.submit(sdk.scale, "web", 2)
        new = canned.add_replica("appmaster", "appmaster-2")
        old.kill()
        new.lead()
        assert future.result(timeout=2 * WAIT) == {"job": "web", "replicas": 2}
        assert len(canned.calls("job.scale")) == 1  # ran exactly once, on the new leader
