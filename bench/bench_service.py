"""Submit → all RUNNING for 200 instances of a small service on ONE host, beside circus.

Galaxy: a real cluster (ZooKeeper, ResMan, AppMaster on a control test host, one Agent on its own
test host, galaxy/testing/cluster.py); one job of 200 replicas of `python3 -m http.server
$GALAXY_PORT_HTTP` (each in its own container: cgroups, namespaces, a reserved port, an AppWorker as
PID 1). The clock runs from `galaxy job submit` until every port found through naming accepts a TCP
connection from the control host.

Baseline, same run, same machine: circusd with 200 watchers of the same command on 200 ports, inside
a test host of its own; the clock runs from launching circusd until all 200 ports accept.

A third row splits the Galaxy figure: submit → every container's PID 1 started (the newest
`init.pid` the Agent's launches wrote), i.e. the ResMan + Agent share; the rest is the AppWorkers'
start, their rounds with the AppMaster (start, 1 s settle) and http.server's own start. PID 1 is
forked from the Agent's pre-imported zygote (docs/agent.md); `GALAXY_ZYGOTE=off` in the bench's
environment (the Agent inherits it) measures the exec path instead.

Two more rows count CPU seconds spent until all ports accept, because on a shared 2-core machine the
wall figures follow the load of whatever else runs (a load average of 100+ doubles them) while the
CPU spent is close to a property of the code: the pods' (AppWorker + service, from the Agent's
cpuacct cgroup) and everything's (pods + ZooKeeper, ResMan, AppMaster, Agent), each against circusd
plus its 200 children. A last row puts the supervisor's own CPU per instance side by side: the
AppWorker (PID 1 alone, its threads included, not the service) against circusd's own CPU / 200.

Note on the job: each instance reserves `cpu: 0.005` with `cpu_excess: true` (shares only, no CFS
quota), as circus's processes run without a limit: the comparison is of start-up, not of a 1 ms per
100 ms quota (which alone makes every 10 ms of CPU a pod spends before it accepts cost 1 s of wall
time; see docs/startup_perf.md).

Two rows put this code beside the commit before containers were confined (`BEFORE_CONFINEMENT`,
run from a git worktree by bench/_baseline.py), best of two interleaved rounds each: what the user
namespace, capability drop, seccomp filter, masks, work disk and reply filter cost a start-up. The
host is tuned first as this code's Agent tunes it (cgroup2 ``favordynmods``, a kernel-wide flag, see
docs/agent.md), so both commits run on the same host whichever starts first.

Everything is torn down afterwards (cluster.stop(), the network's close ends circusd by its PID).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._baseline import BaselineCheckout
from bench._table import Row
from galaxy.coord import Naming, Paths
from galaxy.isolate import favor_dynamic_moves
from galaxy.testing.cluster import LocalCluster
from galaxy.testing.netns import TestHost, TestNetwork

INSTANCES = 200
BASE_PORT = 23000
TIMEOUT = 150.0

JOB = f"""\
name: bench-http
replicas: {INSTANCES}
resources: {{cpu: 0.005, cpu_excess: true, memory: 64Mi, ports: [{{name: http}}]}}
program:
  version: "1"
  start: python3 -m http.server $GALAXY_PORT_HTTP
restart: {{max_retries: 3, backoff: 1s..2s}}
"""


def _accepts(host: TestHost, address: str, port: int) -> bool:
    with host.netns():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(0.5)
        try:
            sock.connect((address, port))
        except OSError:
            return False
    return True


def _wait_all_accept(host: TestHost, targets: set[tuple[str, int]], deadline: float) -> None:
    waiting = set(targets)
    while waiting:
        waiting = {t for t in waiting if not _accepts(host, *t)}
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} of {len(targets)} ports never accepted")
        if waiting:
            time.sleep(0.1)


TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """utime + stime of one live process (all its threads), seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _process_cpu(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return total


def _pods_cpu(cluster: LocalCluster) -> float:
    """CPU seconds of every container of the Agent (its cgroup root: galaxy-<agent id>)."""
    assert cluster.network is not None
    name = f"galaxy-agent-1-{cluster.network.prefix}"
    v1 = Path("/sys/fs/cgroup/cpuacct") / name / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        stat = root / name / "cpu.stat"
        if stat.exists():
            usage = dict(line.split() for line in stat.read_text().splitlines())
            return int(usage["usage_usec"]) / 1e6
    raise RuntimeError(f"no cpu accounting found for cgroup {name}")


def _circus_config(work: Path) -> Path:
    lines = ["[circus]", "check_delay = 5", "endpoint = tcp://127.0.0.1:25555",
             "pubsub_endpoint = tcp://127.0.0.1:25556", "statsd = false", ""]
    for i in range(INSTANCES):
        lines += [f"[watcher:http{i}]", f"cmd = python3 -m http.server {BASE_PORT + i}",
                  f"working_dir = {work}", "warmup_delay = 0", "numprocesses = 1", "copy_env = true",
                  "stdout_stream.class = FileStream", f"stdout_stream.filename = {work}/http{i}.log", ""]
    path = work / "circus.ini"
    path.write_text("\n".join(lines))
    return path


def circus_seconds(work: Path) -> tuple[float, float, float]:
    """(launch → all ports accept, CPU seconds of circusd and its children by then, of circusd alone)."""
    config = _circus_config(work)
    with TestNetwork(f"gxbc{uuid.uuid4().hex[:4]}", hosts=1) as net:
        host = net.host(1)
        with open(work / "circusd.log", "wb") as log:
            started = time.monotonic()
            circusd = host.popen([str(Path(sys.executable).parent / "circusd"), str(config)], stdout=log,
                                 stderr=subprocess.STDOUT)
        _wait_all_accept(host, {("127.0.0.1", BASE_PORT + i) for i in range(INSTANCES)}, started + TIMEOUT)
        return time.monotonic() - started, _tree_cpu(circusd.pid), _process_cpu(circusd.pid)


def _last_container_start(cluster: LocalCluster, since: float) -> float:
    """Seconds from `since` (wall clock) to the newest PID 1 start recorded by the Agent's launches."""
    stamps = [p.stat().st_mtime for p in (cluster.base / "agent-1" / "state" / "containers").glob("*/init.pid")]
    if len(stamps) < INSTANCES:
        raise RuntimeError(f"only {len(stamps)} of {INSTANCES} containers recorded a PID 1")
    return max(stamps) - since


def _workers_cpu(cluster: LocalCluster) -> float:
    """CPU seconds of every container's PID 1 (the AppWorker; its threads, not its children)."""
    pids = [int(p.read_text().split()[0])
            for p in (cluster.base / "agent-1" / "state" / "containers").glob("*/init.pid")]
    return sum(_process_cpu(pid) for pid in pids)


def galaxy_seconds(work: Path) -> tuple[float, float, float, float, float, float]:
    """(submit → all ports accept, submit → all RUNNING in naming, submit → all containers started,
    CPU seconds of the pods, of pods + daemons, of the AppWorkers alone), the CPU counted from submit."""
    cluster = LocalCluster(work / "cluster", agents=1, prefix=f"gxbs{uuid.uuid4().hex[:4]}",
                           port_range="21000-21999").start()
    try:
        spec = work / "bench-http.yaml"
        spec.write_text(JOB)
        # The ZooKeeper component is a launcher with java as its child (so: its tree); an Agent's tree
        # holds the containers, which the cgroup counts (so: the daemon process alone).
        daemons = {c.pid: c.role == "zookeeper" for c in cluster.state.components.values() if c.pid is not None}

        def daemons_cpu() -> float:
            return sum(_tree_cpu(pid) if tree else _process_cpu(pid) for pid, tree in daemons.items())

        daemons_before = daemons_cpu()
        started, started_wall = time.monotonic(), time.time()
        done = cluster.cli("job", "submit", str(spec))
        if done.returncode != 0:
            raise RuntimeError(f"submit failed: {done.stderr}")
        deadline = started + TIMEOUT
        with cluster.zk() as client:
            naming = Naming(client, Paths(cluster.cluster))
            while True:
                records = naming.resolve("bench-http")
                if len(records) >= INSTANCES and all(r["status"] == "RUNNING" for r in records.values()):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{sum(r['status'] == 'RUNNING' for r in records.values())} of "
                                       f"{INSTANCES} instances RUNNING after {TIMEOUT:g} s")
                time.sleep(0.2)
        running = time.monotonic() - started
        targets = {(r["address"], int(r["ports"]["http"])) for r in records.values()}
        _wait_all_accept(cluster.control, targets, deadline)
        accepting = time.monotonic() - started
        pods_cpu = _pods_cpu(cluster)
        all_cpu = pods_cpu + daemons_cpu() - daemons_before
        workers_cpu = _workers_cpu(cluster)
        return (accepting, running, _last_container_start(cluster, started_wall), pods_cpu, all_cpu,
                workers_cpu)
    finally:
        cluster.stop()


BEFORE_CONFINEMENT = "647b3a6"
"""The last commit before containers were confined (issue 13): user namespace, capabilities, seccomp,
masks. The confinement row runs that commit's Galaxy beside this one's, in the same run."""
ROUNDS = 2


def run() -> list[Row]:
    favor_dynamic_moves()
    with tempfile.TemporaryDirectory(prefix="galaxy-bench-service-") as tmp:
        work = Path(tmp)
        (work / "circus").mkdir()
        baseline, circus_cpu, circusd_cpu = circus_seconds(work / "circus")
        before: list[tuple[float, ...]] = []
        now: list[tuple[float, ...]] = []
        with BaselineCheckout(BEFORE_CONFINEMENT) as old:
            for i in range(ROUNDS):  # interleaved, so a burst of load from elsewhere hits both alike
                (work / f"before{i}").mkdir()
                (work / f"galaxy{i}").mkdir()
                before.append(old.call("bench.bench_service", "galaxy_seconds", str(work / f"before{i}")))
                now.append(galaxy_seconds(work / f"galaxy{i}"))
        accepting, running, created, pods_cpu, all_cpu, workers_cpu = min(now)
        before_accepting, _, before_created, *_ = min(before)
    return [
        Row("service", f"submit -> {INSTANCES} accepting: confined vs before ({BEFORE_CONFINEMENT})", accepting,
            "s", before_accepting, BEFORE_CONFINEMENT, target=1.1, better="lower"),
        Row("service", f"submit -> {INSTANCES} PID 1 running: confined vs before ({BEFORE_CONFINEMENT})", created,
            "s", before_created, BEFORE_CONFINEMENT, better="lower"),
        Row("service", f"submit -> {INSTANCES} instances accepting, one host", accepting, "s", baseline,
            "circus", target=1.5, better="lower"),
        Row("service", f"submit -> {INSTANCES} instances RUNNING in naming", running, "s", baseline,
            "circus", better="lower"),
        Row("service", f"submit -> {INSTANCES} containers started (PID 1 running)", created, "s", baseline,
            "circus", better="lower"),
        Row("service", f"CPU until {INSTANCES} accept: pods (worker + service)", pods_cpu, "cpu-s", circus_cpu,
            "circus", better="lower"),
        Row("service", f"CPU until {INSTANCES} accept: pods + daemons", all_cpu, "cpu-s", circus_cpu,
            "circus", better="lower"),
        Row("service", "supervisor CPU per instance: AppWorker vs circusd / N", workers_cpu / INSTANCES * 1000,
            "cpu-ms", circusd_cpu / INSTANCES * 1000, "circusd", better="lower"),
    ]


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
