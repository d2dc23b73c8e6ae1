"""A pod's identity is its own: every pod of a job shares the job's CURVE key, so the AppMaster binds
each pod's routing identity to what it proved at first contact (its pod token; for a job from before
pod tokens, its connection) and refuses another pod claiming it."""

from __future__ import annotations

import pytest

from galaxy.appmaster.workerkeys import PodIdentities, key_name
from galaxy.errors import IdentityRefused, PermissionDenied
from galaxy.mesh import Client, Request
from galaxy.protocol.podtoken import SEED_VAR, TOKEN_FIELD, new_pod_seed, pod_token
from tests.appmaster.conftest import AppMasterCluster, wait_until
from tests.appmaster.test_service import two_running_pods


@pytest.mark.zk
def test_a_pod_claiming_another_pods_identity_is_refused_and_that_pod_keeps_working(
        am_cluster: AppMasterCluster) -> None:
    alice, env, keys, (mine, victim) = two_running_pods(am_cluster)
    own_token = pod_token(env[SEED_VAR], mine)       # all a compromised pod has: the job key and its token
    before = alice.call("pod.show", {"pod": victim})
    leader = am_cluster.leader()
    kill = {"pod": victim, "job": "a", "status": "KILLED", "signal": 9, "message": "forged", "seq": 10_000}
    with Client(leader.endpoint, leader.public_key, keys, victim, timeout=3.0, retries=0) as rogue:
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", {**kill, TOKEN_FIELD: own_token})
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", kill)
        with pytest.raises(PermissionDenied):
            rogue.call("pod.exec_result", {"pod": victim, "exec_id": "x", "exit_code": 0, TOKEN_FIELD: own_token})
    after = alice.call("pod.show", {"pod": victim})
    assert (after["status"], after["restarts"], after["reason"]) == (before["status"], before["restarts"],
                                                                     before["reason"]) == ("RUNNING", 0, "")
    assert alice.call("status")["pod_identity_refused"] >= 3
    # The real pod is still heard: a real crash of its service is seen and restarted.
    am_cluster.fleet.kill_service(victim)
    wait_until(lambda: (p := alice.call("pod.show", {"pod": victim}))["restarts"] == 1 and p["status"] == "RUNNING",
               15, "the real pod's restart")


def request(pod: str, job: str, conn: int, token: object = None) -> Request:
    body = {"pod": pod, "job": job} if token is None else {"pod": pod, "job": job, TOKEN_FIELD: token}
    return Request(pod, "k" * 40, key_name(job), "pod.report", body, 1, conn)


def test_a_pod_of_a_tokenless_job_is_bound_to_its_first_connection() -> None:
    """A job submitted before pod tokens: its pods prove only the job key, so a pod's identity stays
    with the connection that first spoke for it while that connection lives (then it is free)."""
    now = [0.0]
    pods = PodIdentities(grace=10.0, clock=lambda: now[0])
    pods.admit(request("a.1", "a", conn=1), "a", "", "a.1")
    now[0] = 5.0
    with pytest.raises(IdentityRefused) as refused:
        pods.admit(request("a.1", "a", conn=2), "a", "", "a.1")    # another pod of the job, as a.1
    assert refused.value.field == "pod" and pods.refused == 1
    pods.admit(request("a.1", "a", conn=1), "a", "", "a.1")         # the real one goes on
    now[0] = 16.0                                                    # silent past the grace: gone
    pods.admit(request("a.1", "a", conn=2), "a", "", "a.1")
    with pytest.raises(IdentityRefused):
        pods.admit(request("a.1", "a", conn=1), "a", "", "a.1")
    pods.forget("a.1")                                               # the container is gone
    pods.admit(request("a.1", "a", conn=3), "a", "", "a.1")
    assert pods.refused == 2


def test_a_pod_with_a_token_may_dial_again_and_no_other_pod_may_claim_it() -> None:
    seed = new_pod_seed()
    pods = PodIdentities()
    pods.admit(request("a.1", "a", conn=1, token=pod_token(seed, "a.1")), "a", seed, "a.1")
    pods.admit(request("a.1", "a", conn=2, token=pod_token(seed, "a.1")), "a", seed, "a.1")  # its worker restarted
    for forged in (pod_token(seed, "a.2"), None, "00" * 32):
        with pytest.raises(PermissionDenied):
            pods.admit(request("a.1", "a", conn=3, token=forged), "a", seed, "a.1")
    with pytest.raises(PermissionDenied):                            # another job's key, the right name
        pods.admit(Request("a.1", "k" * 40, key_name("b"), "pod.report", {}, 1, 4), "a", seed, "a.1")
    assert pods.refused == 4
