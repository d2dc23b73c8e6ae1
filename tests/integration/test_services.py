"""Issue 6, "Must show": the service layer on a real multi-host cluster.

Real Agents in network namespaces run real containers; each pod's AppWorker runs `python3 -m
http.server` on the port its Agent reserved. Everything is driven as a user would — the `galaxy`
CLI in the control host, naming records read from ZooKeeper, HTTP from another test host — and
checked against what the kernel shows (the service's PID in its container's cgroup).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import pytest

from galaxy.coord import Paths
from galaxy.testing.cluster import LocalCluster
from tests.integration.helpers import (
    agent_named,
    answering,
    as_json,
    cmdline,
    endpoints,
    http_status,
    ok,
    pod_processes,
    poll,
    resolve,
    service_pid,
    service_spec,
    write_spec,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]


def submit(cluster: LocalCluster, tmp_path: Path, text: str, name: str) -> dict[str, Any]:
    ok(cluster, "job", "submit", write_spec(tmp_path, text, name), "--wait", "--timeout", "120")
    return as_json(cluster, "job", "show", name)


def show(cluster: LocalCluster, job: str) -> dict[str, Any]:
    return as_json(cluster, "job", "show", job)


def table_column(table: str, column: str) -> dict[str, str]:
    """{first column: value of ``column``} from a printed table, cut by the header's positions."""
    header, *lines = [line for line in table.splitlines() if line.strip()]
    start = header.index(column)
    end = next((i for i in range(start + len(column), len(header)) if header[i - 1] == " " and header[i] != " "),
               None)
    return {line.split()[0]: line[start:end].strip() for line in lines}


def stop_and_remove(cluster: LocalCluster, job: str) -> None:
    ok(cluster, "job", "stop", job)
    poll(f"{job} to stop", lambda: show(cluster, job)["state"] == "STOPPED")
    ok(cluster, "job", "remove", job)


class Prober:
    """Probes every endpoint from another test host in a loop (bounded in time) and remembers the
    fewest that answered in any round, and the service PID of each pod in every round."""

    def __init__(self, cluster: LocalCluster, targets: dict[str, tuple[str, int]], hosts: dict[str, str],
                 limit: float = 150.0) -> None:
        self.cluster, self.targets, self.hosts, self.limit = cluster, targets, hosts, limit
        self.rounds = 0
        self.fewest = len(targets)
        self.pids: dict[str, list[int]] = {pod: [] for pod in targets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="galaxy-test-prober", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            up = answering(self.cluster.control, self.targets, timeout=1.0)
            self.fewest = min(self.fewest, len(up))
            self.rounds += 1
            for pod in self.targets:
                pid = service_pid(self.cluster, self.hosts[pod], pod)
                if pid is not None and (not self.pids[pod] or self.pids[pod][-1] != pid):
                    self.pids[pod].append(pid)
            self._stop.wait(0.1)


# ---- a service, found through naming, answers from another host -------------------------------------

def test_replicas_run_and_answer_through_naming(cluster: LocalCluster, tmp_path: Path) -> None:
    detail = submit(cluster, tmp_path, service_spec("web", replicas=3), "web")
    assert detail["state"] == "RUNNING" and detail["running"] == 3
    hosts = {p["host"] for p in detail["pods"]}
    assert len(hosts) == 3, f"max_per_host 1 spreads the replicas over the three agents: {hosts}"

    records = resolve(cluster, "web")
    assert set(records) == {p["pod"] for p in detail["pods"]}
    assert {r["status"] for r in records.values()} == {"RUNNING"}
    assert {r["address"] for r in records.values()} == set(cluster.state.agent_hosts.values())
    for address, port in endpoints(records).values():
        assert http_status(cluster.control, address, port) == 200, f"{address}:{port} does not answer"
        assert cluster.agent_host(1).tcp_probe(address, port) == "open"
    stop_and_remove(cluster, "web")
    assert poll("naming to forget web", lambda: resolve(cluster, "web") == {} or None, timeout=30)


# ---- a killed service is restarted, and the restart is counted ----------------------------------------

def test_killed_service_is_restarted(cluster: LocalCluster, tmp_path: Path) -> None:
    detail = submit(cluster, tmp_path, service_spec("crash", replicas=1), "crash")
    [pod] = detail["pods"]
    name, agent = pod["pod"], pod["host"]
    [(address, port)] = endpoints(resolve(cluster, "crash")).values()
    first = poll("the service's pid in its cgroup", lambda: service_pid(cluster, agent, name))
    os.kill(first, signal.SIGKILL)

    def restarted() -> str | None:
        table = ok(cluster, "pod", "list", "crash")
        status, restarts = table_column(table, "STATUS")[name], table_column(table, "RESTARTS")[name]
        return restarts if status == "RUNNING" and restarts != "0" else None

    assert poll("the pod to run again with its restart counted", restarted, timeout=60) == "1"
    second = poll("a new service pid", lambda: service_pid(cluster, agent, name))
    assert second != first
    assert poll("the restarted service to answer",
                lambda: http_status(cluster.control, address, port) == 200, timeout=30)
    assert show(cluster, "crash")["state"] == "RUNNING"
    stop_and_remove(cluster, "crash")


# ---- a start that always fails: retries with backoff, then FAILED with the reason -------------------

BROKEN = """\
name: broken
replicas: 1
resources: {cpu: 0.05, memory: 32Mi}
program:
  version: "1"
  start: sh -c 'echo giving up >&2; exit 3'
restart: {max_retries: 3, backoff: 1s..4s}
"""


def test_failing_start_backs_off_then_fails(cluster: LocalCluster, tmp_path: Path) -> None:
    began = time.monotonic()
    ok(cluster, "job", "submit", write_spec(tmp_path, BROKEN, "broken"))
    final = poll("broken to fail", lambda: (d := show(cluster, "broken"))["state"] == "FAILED" and d, timeout=90)
    took = time.monotonic() - began
    [pod] = final["pods"]
    assert pod["status"] == "FAILED"
    assert pod["restarts"] == 3, json.dumps([pod, as_json(cluster, "pod", "trace", pod["pod"])], indent=1)
    assert "exit code 3" in pod["reason"], pod["reason"]
    assert final["failed"] == 1 and final["running"] == 0
    # three retries waited 1 s, 2 s and 4 s (backoff doubling from 1 s): at least 7 s in all.
    assert took >= 7.0, f"gave up after {took:.1f} s: the retries did not back off"
    table = ok(cluster, "pod", "list", "broken")
    assert table_column(table, "STATUS")[pod["pod"]] == "FAILED"
    assert "exit code 3" in table_column(table, "REASON")[pod["pod"]]
    ok(cluster, "job", "remove", "broken")


# ---- batch jobs report success or failure by exit code -------------------------------------------------

BATCH = """\
name: NAME
type: batch
replicas: 2
resources: {cpu: 0.05, memory: 32Mi}
program:
  version: "1"
  start: sh -c 'SLEEP exit CODE'
restart: {max_retries: 0, backoff: 1s..1s}
"""


def test_batch_job_reports_by_exit_code(cluster: LocalCluster, tmp_path: Path) -> None:
    for name, code in (("batch-ok", 0), ("batch-bad", 7)):
        text = BATCH.replace("NAME", name).replace("CODE", str(code)).replace("SLEEP", "sleep 1;")
        ok(cluster, "job", "submit", write_spec(tmp_path, text, name))
    good = poll("batch-ok to complete", lambda: (d := show(cluster, "batch-ok"))["state"] == "COMPLETED" and d)
    assert good["completed"] == 2 and good["failed"] == 0
    assert {p["exit_code"] for p in good["pods"]} == {0}
    bad = poll("batch-bad to fail", lambda: (d := show(cluster, "batch-bad"))["state"] == "FAILED" and d)
    assert bad["completed"] == 0 and bad["failed"] >= 1
    assert all("exit code 7" in p["reason"] for p in bad["pods"] if p["status"] == "FAILED")
    # exits at once, before the worker would call it settled: still a success, not a failed start
    quick = BATCH.replace("NAME", "batch-wait").replace("CODE", "0").replace("SLEEP", "")
    done = cluster.cli("job", "submit", write_spec(tmp_path, quick, "batch-wait"), "--wait")
    assert done.returncode == 0 and "COMPLETED" in done.stdout, done.stdout + done.stderr
    for name in ("batch-ok", "batch-bad", "batch-wait"):
        ok(cluster, "job", "remove", name)


# ---- rolling update: availability, same containers, breakpoint, resume, rollback -----------------------

def test_rolling_update_keeps_service_up_and_rolls_back(cluster: LocalCluster, tmp_path: Path) -> None:
    detail = submit(cluster, tmp_path, service_spec("roll", replicas=3), "roll")
    pods = {p["pod"]: p["host"] for p in detail["pods"]}
    targets = endpoints(resolve(cluster, "roll"))
    assert answering(cluster.control, targets) == set(pods)

    with Prober(cluster, targets, pods) as prober:
        v2 = write_spec(tmp_path, service_spec("roll", replicas=3, version="2"), "roll-2")
        ok(cluster, "job", "update", "roll", v2, "--breakpoint", "1")
        held = poll("the breakpoint after one pod",
                    lambda: (d := show(cluster, "roll"))["state"] == "PAUSED" and d, timeout=60)
        assert held["update"]["done"] == 1 and held["update"]["paused"]
        time.sleep(2.0)  # held: nothing more moves while paused
        versions = sorted(str(p["version"]) for p in show(cluster, "roll")["pods"])
        assert versions == ["1", "1", "2"], versions

        assert as_json(cluster, "job", "resume", "roll")["state"] in ("UPDATING", "RUNNING")

        def finished() -> dict[str, Any] | None:
            row = show(cluster, "roll")
            assert row["state"] != "PAUSED", "a spent breakpoint paused the rollout again after resume"
            return row if row["state"] == "RUNNING" and str(row["version"]) == "2" else None

        rolled = poll("the rollout to version 2", finished, timeout=90)
        assert {p["pod"] for p in rolled["pods"]} == set(pods), "an in-place update keeps the containers"
        assert {str(p["version"]) for p in rolled["pods"]} == {"2"}

        ok(cluster, "job", "rollback", "roll")
        back = poll("the rollback to version 1",
                    lambda: (d := show(cluster, "roll"))["state"] == "RUNNING"
                    and {str(p["version"]) for p in d["pods"]} == {"1"} and d, timeout=90)
        assert str(back["version"]) == "1"
        assert {p["pod"] for p in back["pods"]} == set(pods)
    assert prober.rounds >= 10, f"only {prober.rounds} probe rounds"
    assert prober.fewest >= len(pods) - 1, f"only {prober.fewest} of {len(pods)} answered at one point"
    assert endpoints(resolve(cluster, "roll")) == targets, "same containers, same ports"
    stop_and_remove(cluster, "roll")


# ---- AppMaster failover in the middle of an update ------------------------------------------------------

def test_standby_appmaster_finishes_an_update(cluster: LocalCluster, tmp_path: Path) -> None:
    detail = submit(cluster, tmp_path, service_spec("relay", replicas=3, pause=3.0), "relay")
    pods = {p["pod"]: p["host"] for p in detail["pods"]}
    targets = endpoints(resolve(cluster, "relay"))
    leader = cluster.leader("appmaster")
    active = next(c.name for c in cluster.state.components.values() if c.role == "appmaster"
                  and leader.identity.startswith(c.name))

    with Prober(cluster, targets, pods) as prober:
        poll("every service pid", lambda: all(prober.pids[p] for p in pods), timeout=30)
        ok(cluster, "job", "update", "relay", write_spec(tmp_path, service_spec("relay", version="2", pause=3.0),
                                                          "relay-2"))
        poll("the first pod to move", lambda: show(cluster, "relay")["update"]["done"] >= 1
             or any(str(p["version"]) == "2" for p in show(cluster, "relay")["pods"]), timeout=60)
        cluster.kill(active, signal.SIGKILL)
        cluster.wait_leader("appmaster", 30, not_identity=leader.identity)
        final = poll("the standby to finish the rollout",
                     lambda: (d := show(cluster, "relay"))["state"] == "RUNNING" and str(d["version"]) == "2"
                     and {str(p["version"]) for p in d["pods"]} == {"2"} and d, timeout=120)
    assert {p["pod"] for p in final["pods"]} == set(pods)
    for pod, seen in prober.pids.items():
        assert len(seen) == 2, f"{pod}: service pids {seen}; only the planned update restart was expected"
    assert prober.fewest >= len(pods) - 1
    cluster.restart(active)
    stop_and_remove(cluster, "relay")


# ---- a service tree SIGKILLed at any level heals on its port (issue 15) ------------------------------

REDIS = """\
name: redis
replicas: 1
resources: {cpu: 0.1, memory: 64Mi, ports: [{name: redis}]}
program:
  version: "1"
  start: echo starting redis; redis-server --port $GALAXY_PORT_REDIS --save '' --appendonly no --protected-mode no
  health: {tcp: redis, interval: 1s}
restart: {max_retries: 5, backoff: 1s..2s}
"""


def redis_ping(cluster: LocalCluster, address: str, port: int) -> bool:
    """A PING from the control host answered +PONG."""
    with cluster.control.netns():
        sock = socket.socket()
    with sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, port))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def test_a_redis_tree_killed_at_any_level_comes_back_on_its_port(cluster: LocalCluster, tmp_path: Path) -> None:
    """`start` is a shell script (`echo …; redis-server …`), so the server runs under a shell. SIGKILL
    of the shell once left the server holding the port: the restarted server failed with "Address
    already in use", the TCP health check passed against the orphan and the pod flapped. Now each
    kill costs one restart, and afterwards exactly one server runs, a new one, answering on the port."""
    detail = submit(cluster, tmp_path, REDIS, "redis")
    [pod] = detail["pods"]
    name, agent = pod["pod"], pod["host"]
    [(address, port)] = endpoints(resolve(cluster, "redis"), port="redis").values()
    assert poll("redis to answer PING", lambda: redis_ping(cluster, address, port), timeout=30)

    def servers() -> list[int]:
        return [p for p in pod_processes(cluster, agent, name, "redis-server") if cmdline(p).startswith("redis-server")]

    def restarts() -> int:
        return int(table_column(ok(cluster, "pod", "list", "redis"), "RESTARTS")[name])

    for count, level in enumerate(("shell", "server", "shell"), start=1):
        [server] = poll("one redis-server", lambda: servers() if len(servers()) == 1 else None)
        shells = [p for p in pod_processes(cluster, agent, name, "echo starting redis") if p != server]
        target = shells[0] if level == "shell" else server
        killed_at = time.monotonic()
        os.kill(target, signal.SIGKILL)
        poll(f"redis back on its port after its {level} was killed",
             lambda old=server: servers() not in ([], [old]) and redis_ping(cluster, address, port), timeout=30)
        healed = time.monotonic() - killed_at
        assert len(servers()) == 1 and server not in servers(), f"an orphan server is left: {servers()}"
        assert poll("the restart counted", lambda n=count: restarts() if restarts() >= n else None) == count, \
            "one kill, one restart: the first restart after the backoff succeeded"
        assert healed < 15, f"healed in {healed:.1f} s"
    stop_and_remove(cluster, "redis")


# ---- no secret in ZooKeeper in plain text (issue 14) -----------------------------------------------

def test_worker_keys_and_pod_seeds_are_sealed_in_zookeeper_and_still_reach_the_pods(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """The AppMaster seals a job's worker secret key and pod seed in its job record and in the group
    template it gives ResMan; ResMan opens them for the create request only; the Agent (which holds
    no state key) passes them to the container, whose AppWorker then speaks for the pod."""
    detail = submit(cluster, tmp_path, service_spec("sealed", replicas=1), "sealed")
    [pod] = detail["pods"]
    paths = Paths(cluster.cluster)
    with cluster.zk() as zk:
        job = cbor2.loads(zk.get(paths.state("jobs", "sealed"))[0])
        group = cbor2.loads(zk.get(paths.state("groups", "sealed"))[0])
    env = group["container"]["env"]
    for value in (job["worker_secret"], job["pod_seed"], env["GALAXY_WORKER_KEY"], env["GALAXY_POD_SEED"]):
        assert value.startswith("sealed:v1:"), value
    [record] = list(cluster.base.glob(f"agent-*/state/records/{pod['pod']}.json"))
    opened = json.loads(record.read_text())["request"]["env"]["GALAXY_WORKER_KEY"]
    assert not opened.startswith("sealed:") and opened not in json.dumps([job, group])
    assert record.stat().st_mode & 0o777 == 0o600
    assert "state_key" not in (cluster.base / agent_named(cluster, pod["host"]) / "config.yaml").read_text()
    assert show(cluster, "sealed")["pods"][0]["status"] == "RUNNING"   # the pod spoke with the opened key
    stop_and_remove(cluster, "sealed")


def test_a_secret_env_value_is_sealed_in_zookeeper_never_shown_and_reaches_the_service(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """`env: {DB_PASSWORD: {secret: …}}`: the value is in no znode in plain text (the AppMaster seals
    it in every version of the job record), `job show` hides it, and the service has it."""
    secret = "hunter2-" + os.urandom(8).hex()
    text = service_spec("vault", replicas=1) + f"env:\n  DB_PASSWORD: {{secret: {secret}}}\n  LOG_LEVEL: info\n"
    detail = submit(cluster, tmp_path, text, "vault")
    assert detail["spec"]["env"] == {"DB_PASSWORD": {"secret": "(hidden)"}, "LOG_LEVEL": "info"}
    assert secret not in ok(cluster, "job", "show", "vault")
    [pod] = detail["pods"]
    pid = poll("the service", lambda: service_pid(cluster, pod["host"], pod["pod"]))
    assert f"DB_PASSWORD={secret}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    paths = Paths(cluster.cluster)
    with cluster.zk() as zk:
        job = cbor2.loads(zk.get(paths.state("jobs", "vault"))[0])
        assert job["versions"]["1"]["env"]["DB_PASSWORD"]["secret"].startswith("sealed:v1:")
        seen, pending = 0, ["/"]
        while pending:                                   # every znode Galaxy wrote for this cluster
            path = pending.pop()
            data, _ = zk.get(path)
            assert secret.encode() not in data, f"{path} holds the secret in plain text"
            seen += 1
            pending += [f"{path.rstrip('/')}/{child}" for child in zk.get_children(path)]
    assert seen > 10
    stop_and_remove(cluster, "vault")
