"""The AppMaster as users and workers see it: real `galaxy-appmaster` processes, real ZooKeeper,
real mesh and CURVE, a ResMan double and simulated workers (tests/appmaster/sim.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from galaxy.coord import Naming
from galaxy.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from galaxy.mesh import Client, Keypair
from galaxy.protocol.podtoken import SEED_VAR, TOKEN_FIELD, pod_token
from tests.appmaster.conftest import AppMasterCluster, wait_until

pytestmark = pytest.mark.zk


def spec(name: str = "web", replicas: int = 3, version: str = "1", **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name, "replicas": replicas, "resources": {"cpu": 0.1, "memory": "32Mi", "ports": [{"name": "http"}]},
        "program": {"version": version, "start": f"python3 -m http.server $GALAXY_PORT_HTTP # v{version}",
                    "health": {"tcp": "http"}},
        "update": {"step": 1, "pause_between": "0s", "max_failures": 1},
        "restart": {"max_retries": 2, "backoff": "100ms..200ms"}}
    raw.update(over)
    return raw


def show(user: Any, job: str) -> dict[str, Any]:
    return user.call("job.show", {"job": job})  # type: ignore[no-any-return]


def wait_state(user: Any, job: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
    last: list[dict[str, Any]] = []

    def reached() -> dict[str, Any] | None:
        last[:] = [show(user, job)]
        return last[0] if last[0]["state"] == state else None

    try:
        return wait_until(reached, timeout, f"job {job} {state}")  # type: ignore[no-any-return]
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen: {last[0] if last else None}") from None


def test_submit_runs_every_replica_and_naming_finds_them(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client("alice")
    reply = alice.call("job.submit", {"spec": spec()})
    assert reply == {"job": "web", "version": "1", "state": "PENDING"}
    detail = wait_state(alice, "web", "RUNNING")
    assert detail["owner"] == "alice" and detail["running"] == 3 and detail["versions"] == ["1"]
    create = next(body for method, body in am_cluster.resman.calls if method == "group.create")
    assert create["priority"] == "service" and create["container"]["init_as_root"] is True
    assert create["container"]["argv"][1:] == ["-m", "galaxy.appworker.main"]
    assert {"GALAXY_ZOOKEEPER", "GALAXY_CLUSTER", "GALAXY_WORKER_KEY", "GALAXY_WORKER_PUB"} <= set(
        create["container"]["env"])
    naming = Naming(am_cluster.zk, am_cluster.paths)
    records = wait_until(lambda: (r := naming.resolve("web")) and len(r) == 3 and
                         all(x["status"] == "RUNNING" for x in r.values()) and r, 10, "naming records")
    assert set(records) == set(am_cluster.resman.groups["web"]["containers"])
    assert all(rec["ports"]["http"] >= 31000 and rec["version"] == "1" for rec in records.values())
    rows = alice.call("job.list", {})
    assert [(r["job"], r["state"], r["running"]) for r in rows] == [("web", "RUNNING", 3)]
    with pytest.raises(Conflict):
        alice.call("job.submit", {"spec": spec()})
    with pytest.raises(InvalidInput) as bad:
        alice.call("job.submit", {"spec": {**spec("other"), "replicas": -1}})
    assert bad.value.field and "replicas" in bad.value.field
    with pytest.raises(InvalidInput, match="no state key") as bad:   # this AppMaster could not seal it
        alice.call("job.submit", {"spec": {**spec("other"), "env": {"DB_PASSWORD": {"secret": "x"}}}})
    assert bad.value.field == "env" and [r["job"] for r in alice.call("job.list", {})] == ["web"]
    with pytest.raises(PermissionDenied):
        am_cluster.client("bob").call("job.stop", {"job": "web"})
    with pytest.raises(NotFound):
        alice.call("job.show", {"job": "nope"})


def test_killed_service_is_restarted_with_the_count_visible(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec(replicas=1)})
    pod = wait_state(alice, "web", "RUNNING")["pods"][0]["pod"]
    am_cluster.fleet.kill_service(pod)
    row = wait_until(lambda: (p := alice.call("pod.show", {"pod": pod}))["restarts"] == 1
                     and p["status"] == "RUNNING" and p, 15, "restart")
    assert any(e["event"] == "retry" and "signal 9" in e.get("reason", "") for e in row["history"])


def test_failing_start_backs_off_then_fails_with_the_reason(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    am_cluster.fleet.default_fail = {"1"}
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec(replicas=1)})
    detail = wait_state(alice, "web", "FAILED")
    pod = detail["pods"][0]
    assert pod["status"] == "FAILED" and "START_FAILED" in pod["reason"] and "sim: start command failed" in pod["reason"]
    worker = am_cluster.fleet.workers[pod["pod"]]
    assert worker.commands.count("restart") == 2 and worker.status == "FAILED"
    trace = alice.call("pod.trace", {"pod": pod["pod"]})
    delays = [e["delay"] for e in trace if e["event"] == "retry"]
    assert delays[:2] == [0.1, 0.2], "backoff doubles from the policy's minimum"
    am_cluster.fleet.workers[pod["pod"]].fail_start.clear()
    assert alice.call("pod.recover", {"pod": pod["pod"]})["pod"] == pod["pod"]


def test_rolling_update_keeps_availability_pauses_resumes_and_rolls_back(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec()})
    before = {p["pod"] for p in wait_state(alice, "web", "RUNNING")["pods"]}
    fleet = am_cluster.fleet
    lowest = [3]
    done = threading.Event()

    def probe() -> None:
        while not done.wait(0.01):
            running = sum(1 for w in list(fleet.workers.values()) if w.status == "RUNNING")
            lowest[0] = min(lowest[0], running)
    prober = threading.Thread(target=probe)
    prober.start()
    try:
        reply = alice.call("job.update", {"job": "web", "spec": spec(version="2"), "breakpoint": 1})
        assert reply["version"] == "2" and reply["state"] == "UPDATING"
        paused = wait_state(alice, "web", "PAUSED")
        assert paused["update"]["done"] == 1 and paused["update"]["paused"]
        assert sorted(p["version"] for p in paused["pods"]) == ["1", "1", "2"]
        assert alice.call("job.resume", {"job": "web"})["state"] == "UPDATING"
        updated = wait_state(alice, "web", "RUNNING")
        assert all(p["version"] == "2" for p in updated["pods"]) and updated["update"] is None
        assert {p["pod"] for p in updated["pods"]} == before, "updated in place: the same containers"
        assert alice.call("job.rollback", {"job": "web"})["version"] == "1"
        back = wait_state(alice, "web", "RUNNING")
        assert all(p["version"] == "1" for p in back["pods"]) and {p["pod"] for p in back["pods"]} == before
    finally:
        done.set()
        prober.join()
    assert lowest[0] >= 2, "never fewer than replicas - 1 instances running during the update"
    events = wait_until(lambda: (ev := [e["event"] for e in alice.call("job.trace", {"job": "web"})])
                        and ev.count("updated") == 2 and ev, 5, "the trace of both rollouts")
    assert "update_paused" in events and "rollback" in events


def test_standby_finishes_an_update_after_sigkill_without_restarting_services(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    first = am_cluster.leader()
    am_cluster.start_appmaster("am-2")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec(update={"step": 1, "pause_between": "1s", "max_failures": 0})})
    wait_state(alice, "web", "RUNNING")
    alice.call("job.update", {"job": "web", "spec": spec(version="2", update={"step": 1, "pause_between": "1s"})})
    wait_until(lambda: show(alice, "web")["update"]["done"] >= 1, 20, "one pod updated")
    am_cluster.kill(first.identity)
    second = wait_until(lambda: (ld := am_cluster.leader()).identity != first.identity and ld, 15, "a new leader")
    assert second.identity == "am-2"
    finished = wait_state(alice, "web", "RUNNING", timeout=30)
    assert all(p["version"] == "2" for p in finished["pods"])
    starts = sorted(w.starts for w in am_cluster.fleet.workers.values())
    assert starts == [2, 2, 2], "each service started once for v1 and once for v2, never again"


def test_batch_job_success_and_failure_by_exit_code(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    am_cluster.fleet.batch_exit = 0
    alice.call("job.submit", {"spec": spec("ok", replicas=2, type="batch")})
    done = wait_state(alice, "ok", "COMPLETED")
    assert all(p["completed"] and p["exit_code"] == 0 for p in done["pods"])
    am_cluster.fleet.batch_exit = 3
    alice.call("job.submit", {"spec": spec("bad", replicas=1, type="batch")})
    failed = wait_state(alice, "bad", "FAILED")
    assert "exit code 3" in failed["pods"][0]["reason"]


def test_exec_scale_stop_and_remove(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec(replicas=2)})
    pods = {p["pod"] for p in wait_state(alice, "web", "RUNNING")["pods"]}
    results = alice.call("job.exec", {"job": "web", "command": "echo hi", "timeout": 5})["results"]
    assert {pod: r["stdout"] for pod, r in results.items()} == {pod: f"{pod}:echo hi" for pod in pods}
    assert alice.call("job.scale", {"job": "web", "replicas": 1}) == {"job": "web", "replicas": 1}
    wait_until(lambda: len(alice.call("pod.list", {"job": "web"})) == 1, 15, "one pod left")
    assert alice.call("job.stop", {"job": "web"})["state"] == "STOPPING"
    wait_state(alice, "web", "STOPPED")
    assert all(w.status == "STOPPED" for w in am_cluster.fleet.workers.values())
    assert alice.call("job.remove", {"job": "web"}) == {"job": "web", "removed": True}
    assert "web" not in am_cluster.resman.groups
    naming = Naming(am_cluster.zk, am_cluster.paths)
    wait_until(lambda: naming.resolve("web") == {}, 10, "naming records removed")
    with pytest.raises(NotFound):
        alice.call("job.show", {"job": "web"})


def test_a_worker_cannot_speak_for_another_job_or_pod(am_cluster: AppMasterCluster) -> None:
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec("a", replicas=1)})
    alice.call("job.submit", {"spec": spec("b", replicas=1)})
    wait_state(alice, "a", "RUNNING")
    env = am_cluster.resman.groups["a"]["container"]["env"]
    keys = Keypair(env["GALAXY_WORKER_PUB"], env["GALAXY_WORKER_KEY"])
    pod_a = next(iter(am_cluster.resman.groups["a"]["containers"]))
    pod_b = next(iter(am_cluster.resman.groups["b"]["containers"]))
    leader = am_cluster.leader()
    with Client(leader.endpoint, leader.public_key, keys, pod_a, timeout=3.0, retries=0) as rogue:
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", {"pod": pod_b, "job": "b", "status": "RUNNING"})
        with pytest.raises(PermissionDenied):
            rogue.call("job.list", {})
    with Client(leader.endpoint, leader.public_key, keys, "someone-else", timeout=3.0, retries=0) as rogue:
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", {"pod": pod_a, "job": "a", "status": "RUNNING"})


def two_running_pods(am_cluster: AppMasterCluster) -> tuple[Any, dict[str, str], Keypair, list[str]]:
    """Job "a" of two pods RUNNING under a started AppMaster: (alice's client, the container env a pod
    of it gets, the job's worker keypair, the two pod ids sorted)."""
    am_cluster.start_appmaster("am-1")
    alice = am_cluster.client()
    alice.call("job.submit", {"spec": spec("a", replicas=2)})
    wait_state(alice, "a", "RUNNING")
    env = am_cluster.resman.groups["a"]["container"]["env"]
    keys = Keypair(env["GALAXY_WORKER_PUB"], env["GALAXY_WORKER_KEY"])
    return alice, env, keys, sorted(am_cluster.resman.groups["a"]["containers"])


def test_a_pod_speaks_only_for_itself_even_with_its_jobs_key(am_cluster: AppMasterCluster) -> None:
    """All pods of a job share its transport key; the pod token (derived by the Agent from the job's
    seed, which no container holds) is what names one pod: another pod's token, or none, is refused."""
    _alice, env, keys, (first, second) = two_running_pods(am_cluster)
    leader = am_cluster.leader()
    report = {"pod": second, "job": "a", "status": "RUNNING"}
    with Client(leader.endpoint, leader.public_key, keys, second, timeout=3.0, retries=0) as rogue:
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", {**report, TOKEN_FIELD: pod_token(env[SEED_VAR], first)})
        with pytest.raises(PermissionDenied):
            rogue.call("pod.report", report)
        reply = rogue.call("pod.report", {**report, TOKEN_FIELD: pod_token(env[SEED_VAR], second)})
        assert "command" in reply
