"""The site playbook against three test hosts made of network namespaces.

Each host is `connection: local` with a root directory of its own (`galaxy_root`) and runs its
daemons under Galaxy's supervisor inside its namespace (`galaxy_netns`). One run builds the cluster
(ZooKeeper + two ResMan and two AppMaster replicas + two Agents), and a user with the admin key the
playbook made runs a service on it (two replicas of `http.server`, answering HTTP from a test host).
A second run changes nothing, and a third with a new release label rolls every Galaxy daemon onto it
— standbys before leaders, one at a time — without restarting ZooKeeper and without touching the
job's containers: the restarted Agents re-adopt them, and the service answers throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from galaxy.agent.containers import ContainerManager
from galaxy.daemon.config import load_config
from galaxy.errors import GalaxyError
from galaxy.mesh import Keypair
from galaxy.supervisor import Control
from galaxy.supervisor._program import process_started, read_pidfile, terminate
from galaxy.testing.netns import TestHost, TestNetwork, in_netns, require_netns
from galaxy.testing.zk import four_letter_word
from tests.integration.helpers import http_status

T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = REPO / "ansible"
PROBE = Path(__file__).with_name("probe.py")
BIN = Path(sys.executable).parent
# Which hosts run what: host 1 is the control host, 2 a control host and an Agent, 3 an Agent.
LAYOUT = {"zookeeper": [1], "resman": [1, 2], "appmaster": [1, 2], "agent": [2, 3]}
NEXT_RELEASE = "0.1.0-next"
DAEMON_STOP_ORDER = ("agent", "appmaster", "resman")   # at teardown; ZooKeeper after them
JOB = "web"
SERVICE = """\
name: web
replicas: 2
max_per_host: 1
resources:
  cpu: 0.05
  memory: 64Mi
  ports: [{name: http}]
program:
  version: "1"
  start: python3 -u -m http.server $GALAXY_PORT_HTTP
  health: {tcp: http, interval: 1s}
"""


class Cluster:
    """The inventory, the hosts' root directories, and what the playbook started in them."""

    def __init__(self, base: Path, net: TestNetwork) -> None:
        self.base = base
        self.net = net
        tag = uuid.uuid4().hex[:6]
        self.cluster = f"galaxy-t{tag}"
        self.names = {host.index: f"galaxy-{tag}-h{host.index}" for host in net.hosts}
        self.inventory = base / "hosts.yml"
        self.controller = base / "controller"
        self.user_config = base / "admin.config"

    def root(self, index: int) -> Path:
        return self.base / f"h{index}"

    def write_inventory(self) -> None:
        hosts = {self.names[h.index]: {"galaxy_root": str(self.root(h.index)), "galaxy_netns": h.name,
                                       "galaxy_address": h.address} for h in self.net.hosts}
        groups: dict[str, Any] = {group: {"hosts": {self.names[i]: {} for i in members}}
                                  for group, members in LAYOUT.items()}
        inventory = {"all": {
            "hosts": hosts,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "galaxy_cluster": self.cluster,
                "galaxy_controller_dir": str(self.controller),
                # Offline: the wheel is built with Debian's setuptools + wheel, and the release
                # virtualenvs read their dependencies from this checkout's virtualenv.
                "galaxy_wheel_build_python": "/usr/bin/python3",
                "galaxy_wheel_build_args": ["--no-build-isolation"],
                "galaxy_system_python": getattr(sys, "_base_executable", sys.executable),
                "galaxy_python_deps_site": sysconfig.get_paths()["purelib"],
                "galaxy_service_manager": "galaxy",
                "galaxy_install_packages": False,   # bootstrap.sh installed them; apt adds ~15 s a test
                "galaxy_session_timeout": "4s",
                "galaxy_health_timeout": 60,
                "zookeeper_tick_ms": 500,
                "agent_port_range": "21000-21099",
                "agent_reserved_cpu": 0.0,
                "agent_reserved_memory": "0",
                "agent_labels": ["ssd"],
            },
            "children": groups,
        }}
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))
        # What a user of the cluster is handed: its name, ZooKeeper, and the admin key the playbook makes.
        self.user_config.write_text(yaml.safe_dump({
            "cluster": self.cluster, "zookeeper": f"{self.control.address}:2181",
            "zookeeper_ca": str(self.controller / "keys" / "zookeeper-ca.pem"),
            "key": str(self.controller / "keys" / "admin.key")}))

    @property
    def control(self) -> TestHost:
        """The test host users and probes work from (it runs ZooKeeper and the control replicas)."""
        return self.net.host(LAYOUT["zookeeper"][0])

    def play(self, *extra: str, timeout: float = 150.0) -> tuple[str, dict[str, dict[str, int]]]:
        env = {**os.environ, "ANSIBLE_CONFIG": str(PLAYBOOK_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_LOCAL_TEMP": str(self.base / "ansible-tmp"),
               "ANSIBLE_REMOTE_TEMP": str(self.base / "ansible-tmp"),
               "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), "site.yml", *extra],
                              cwd=PLAYBOOK_DIR, env=env, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            self.dump_logs()
        assert done.returncode == 0, output[-6000:]
        recap = {}
        for line in output.split("PLAY RECAP")[-1].splitlines():
            match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
            if match:
                recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return output, recap

    def wheel(self) -> str:
        """The wheel the first run built (an upgrade may install the same code under a new label)."""
        [wheel] = sorted(self.controller.glob("wheels/*/galaxy-*.whl"))
        return str(wheel)

    def galaxy(self, *args: str, timeout: float = 150.0) -> str:
        """The `galaxy` CLI in the control host, configured by the user's config file; its stdout."""
        done = subprocess.run(self.control.command([sys.executable, "-m", "galaxy.cli.main", *args],
                                                   private_mounts=False),
                              env={**os.environ, "GALAXY_CONFIG": str(self.user_config)},
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            self.dump_logs()
        assert done.returncode == 0, f"galaxy {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}"
        return done.stdout

    def probe(self, job: str | None = None) -> dict[str, Any]:
        argv = [sys.executable, str(PROBE), str(self.user_config), *([job] if job else [])]
        done = self.control.run(argv, private_mounts=False, timeout=60)
        return dict(json.loads(done.stdout))

    def supervisor_state(self, index: int) -> dict[str, Any]:
        path = self.root(index) / "run" / "galaxy" / "state.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def dump_logs(self) -> None:
        for index in self.names:
            logs = self.root(index) / "var" / "log" / "galaxy"
            for log in sorted(logs.glob("*.log")) if logs.exists() else []:
                print(f"---- {self.names[index]} {log.name} ----\n{log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> list[str]:
        """Stop what the playbook started: the Galaxy daemons on every host at once while ZooKeeper
        still serves (a replica closes its session there; with ZooKeeper gone it waits out its stop
        timeout), then the supervisors, ZooKeeper with them; then any straggler a pidfile names;
        then the containers the Agents left running."""
        problems: list[str] = []
        controls: dict[int, Control] = {}
        for index in self.names:
            config = self.root(index) / "etc" / "galaxy" / "supervisor.yaml"
            try:
                control = Control(str(config)) if config.exists() else None
                if control is not None and control.supervisor_pid() is not None:
                    controls[index] = control
            except GalaxyError as err:
                problems.append(f"host {index}: {err}")

        def stop_daemons(control: Control) -> None:
            running = control.state().get("programs", {})
            for name in DAEMON_STOP_ORDER:
                if name in running:
                    control.request("stop", name, timeout=60)

        with ThreadPoolExecutor(max_workers=max(1, len(controls))) as pool:
            stopping = {index: pool.submit(stop_daemons, control) for index, control in controls.items()}
            for index, future in stopping.items():
                try:
                    future.result()
                except GalaxyError as err:
                    problems.append(f"stopping the daemons of host {index}: {err}")
        for control in controls.values():
            pid = control.supervisor_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for index, control in controls.items():
            try:
                control.shutdown(timeout=60)
            except GalaxyError as err:
                problems.append(f"stopping the supervisor of host {index}: {err}")
        for index in self.names:
            run_dir = self.root(index) / "run" / "galaxy"
            for pidfile in sorted(run_dir.glob("*.pid")) if run_dir.exists() else []:
                pid = read_pidfile(str(pidfile))
                if pid is not None:
                    terminate(pid, 15, 10.0)
        return problems + self.purge_containers()

    def purge_containers(self) -> list[str]:
        """Remove what each (stopped) Agent made: re-adopt its containers as a new Agent would, then
        destroy them, its cgroups and its iptables chain (an Agent restart never does this)."""
        problems: list[str] = []
        for index in LAYOUT["agent"]:
            config_path = self.root(index) / "etc" / "galaxy" / "agent.yaml"
            if not config_path.exists():
                continue
            try:
                config = load_config(config_path, "agent")
                with in_netns(self.net.host(index).name):
                    manager = ContainerManager(config.id, config.state_dir, config.agent)
                    manager.start()
                    manager.purge()
            except GalaxyError as err:
                problems.append(f"agent of host {index}: {err}")
        return problems

    def leftovers(self) -> list[str]:
        """Processes still running from a host's root directory or in an Agent's container cgroups."""
        agents = [f"/galaxy-{self.names[i]}" for i in LAYOUT["agent"]]
        left = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cgroups = (entry / "cgroup").read_text()
            except OSError:
                continue
            if str(self.base) in cmdline or any(agent in cgroups for agent in agents):
                left.append(f"{entry.name}: {cmdline[:200]}")
        return left


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require_netns()
    # Not under /tmp: a container gets a tmpfs of its own at /tmp, which would hide the Agent's
    # release (its Python and the AppWorker) that the container mounts from the host.
    base = Path(tempfile.mkdtemp(prefix="galaxy-ansible-", dir="/var/tmp"))
    with TestNetwork(hosts=3) as net:
        made = Cluster(base, net)
        made.write_inventory()
        problems: list[str] = []
        try:
            yield made
        finally:
            try:
                problems = made.stop()
            finally:
                left = made.leftovers()
    shutil.rmtree(base, ignore_errors=True)
    assert not problems, f"teardown problems: {problems}"
    assert not left, f"left running after teardown: {left}"


def poll(what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _wait_probe(cluster: Cluster, agents: set[str], timeout: float = 30.0) -> dict[str, Any]:
    def up() -> dict[str, Any] | None:
        found = cluster.probe()
        alive = {h["id"] for h in found.get("hosts", []) if h.get("status") == "alive"}
        return found if found.get("resman") and found.get("appmaster") and alive >= agents else None
    return poll("the cluster to come up (leaders, Agents alive)", up, timeout)


def _job_running(cluster: Cluster) -> dict[str, Any]:
    """The job RUNNING with both replicas, and naming listing both endpoints as RUNNING."""
    def running() -> dict[str, Any] | None:
        found = cluster.probe(JOB)
        job, endpoints = found.get("job") or {}, found.get("endpoints") or {}
        if job.get("state") == "RUNNING" and job.get("running") == 2 and len(endpoints) == 2 \
                and {e.get("status") for e in endpoints.values()} == {"RUNNING"}:
            return found
        return None
    return poll(f"job {JOB} to run with both endpoints in naming", running)


def _answering(cluster: Cluster, endpoints: dict[str, dict[str, Any]]) -> set[str]:
    """The pods whose endpoint answers GET / with 200 from the control host."""
    return {pod for pod, e in endpoints.items()
            if http_status(cluster.control, e["address"], int(e["ports"]["http"])) == 200}


def _service_pids(placement: dict[str, str]) -> dict[str, int]:
    """{pod: PID of its http.server}, found by the kernel: processes in the pod's container cgroup
    (`galaxy-<agent id>/<pod>`, the pod id is the container id) running `python3 … http.server`."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].startswith(b"python") or b"http.server" not in argv:
                continue
            paths = [line.split(":", 2)[2].split("/") for line in (entry / "cgroup").read_text().splitlines()]
        except (OSError, IndexError):
            continue
        for pod, agent in placement.items():
            if any(f"galaxy-{agent}" in path and pod in path for path in paths):
                found[pod] = int(entry.name)
    return found


def test_playbook_builds_a_cluster_that_runs_a_job_through_an_upgrade(cluster: Cluster) -> None:
    names = cluster.names
    agents = {names[i] for i in LAYOUT["agent"]}

    # 1. Converge: ZooKeeper, both ResMan and AppMaster replicas, and the Agents registered with the
    #    ResMan leader, which answers the admin key the playbook made.
    cluster.play()
    found = _wait_probe(cluster, agents)
    assert found["resman"] in {names[i] for i in LAYOUT["resman"]}
    assert found["appmaster"] in {names[i] for i in LAYOUT["appmaster"]}
    registered = {h["id"]: h for h in found["hosts"]}
    assert registered[names[3]]["labels"] == ["ssd"] and registered[names[3]]["pool"] == "default"
    # Each host holds only its own secret keys, and the daemons' ZooKeeper credential; the state key
    # that opens sealed worker keys only where ResMan or the AppMaster runs, never on an Agent host.
    keys = {p.name for p in (cluster.root(3) / "etc" / "galaxy" / "keys").iterdir()}
    assert keys == {"agent.key", "zookeeper.auth"}
    resman_keys = {p.name for p in (cluster.root(LAYOUT["resman"][0]) / "etc" / "galaxy" / "keys").iterdir()}
    assert {"resman.key", "zookeeper.auth", "state.key"} <= resman_keys
    # ZooKeeper speaks TLS only, with the certificate the controller's CA made for its address.
    ca = str(cluster.controller / "keys" / "zookeeper-ca.pem")
    with in_netns(cluster.control.name):
        assert four_letter_word(cluster.control.address, 2181, "ruok", ca=ca) == "imok"
        with pytest.raises(OSError):
            four_letter_word(cluster.control.address, 2181, "ruok", timeout=2)

    # 2. A user runs a service with the admin key: two replicas, one per Agent, each answering HTTP
    #    from another test host at the endpoint naming gives.
    spec = cluster.base / f"{JOB}.yaml"
    spec.write_text(SERVICE)
    submitted = cluster.galaxy("job", "submit", str(spec), "--wait", "--timeout", "90")
    assert submitted.startswith(f"job {JOB} RUNNING: 2/2 running"), submitted
    before = _job_running(cluster)
    # A pod's host is named by its Agent's id or by its address (both are seen): map it to the id.
    agent_of = {**{names[i]: names[i] for i in LAYOUT["agent"]},
                **{cluster.net.host(i).address: names[i] for i in LAYOUT["agent"]}}
    placement = {p["pod"]: agent_of[p["host"]] for p in before["job"]["pods"]}
    assert set(placement.values()) == agents, placement
    endpoints = before["endpoints"]
    assert set(endpoints) == set(placement)
    assert {e["address"] for e in endpoints.values()} == {cluster.net.host(i).address for i in LAYOUT["agent"]}
    assert poll("both endpoints to answer HTTP", lambda: _answering(cluster, endpoints) == set(endpoints), 30)
    pids = poll("each pod's http.server in its container's cgroup",
                lambda: (seen := _service_pids(placement)).keys() == set(placement) and seen)
    agent_pids = {i: cluster.supervisor_state(i)["programs"]["agent"]["pid"] for i in LAYOUT["agent"]}

    # 3. Idempotent: a second run changes nothing.
    _, recap = cluster.play()
    assert recap and all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), recap

    # 4. Upgrade: a new release label rolls every Galaxy daemon onto it, standbys before leaders,
    #    one at a time; ZooKeeper (not part of the release) keeps running. The same code is installed
    #    under the new label from the wheel already built.
    zookeeper_pid = cluster.supervisor_state(1)["programs"]["zookeeper"]["pid"]
    leaders = {"resman": found["resman"], "appmaster": found["appmaster"]}
    cluster.play("-e", json.dumps({"galaxy_version": NEXT_RELEASE, "galaxy_wheel": cluster.wheel()}))
    started: dict[tuple[str, str], float] = {}
    for index, name in names.items():
        for program, status in cluster.supervisor_state(index)["programs"].items():
            if program == "zookeeper":
                assert status["pid"] == zookeeper_pid
                continue
            assert f"/releases/{NEXT_RELEASE}/" in status["command"][0], status
            started[(program, name)] = status["started_at"]
    for role, leader in leaders.items():
        standbys = [started[(role, n)] for (r, n) in started if r == role and n != leader]
        assert standbys and max(standbys) < started[(role, leader)], (role, started)
    by_role = {role: [t for (r, _), t in started.items() if r == role] for role in ("resman", "appmaster", "agent")}
    assert max(by_role["resman"]) < min(by_role["appmaster"]) and max(by_role["appmaster"]) < min(by_role["agent"])

    # 5. The job went through it untouched: new Agent processes re-adopted the same containers, whose
    #    services kept their PIDs; the job still runs with the same pods, and both endpoints answer.
    for index, pid in agent_pids.items():
        assert cluster.supervisor_state(index)["programs"]["agent"]["pid"] != pid
        assert process_started(pid) is None, f"the old Agent of host {index} still runs"
    assert _service_pids(placement) == pids
    after = _job_running(cluster)
    assert {p["pod"]: agent_of[p["host"]] for p in after["job"]["pods"]} == placement
    assert after["endpoints"].keys() == endpoints.keys()
    assert {pod: e["ports"] for pod, e in after["endpoints"].items()} == {pod: e["ports"] for pod, e in endpoints.items()}
    assert _answering(cluster, after["endpoints"]) == set(endpoints)
    found = _wait_probe(cluster, agents)
    assert {h["id"]: h["containers"] for h in found["hosts"]} == dict.fromkeys(agents, 1)

    # 6. Key rotation in one run: a new key for one Agent. Its old and new keys are both trusted while
    #    the daemons roll; the Agent restarts with the new one and keeps its identity and containers;
    #    when the run ends the old key is trusted nowhere.
    rotated = f"agent-{names[3]}"
    old_public = Keypair.load_public(cluster.controller / "keys" / f"{rotated}.key")
    agent_pid = cluster.supervisor_state(3)["programs"]["agent"]["pid"]
    cluster.play("-e", json.dumps({"galaxy_rotate_keys": [rotated]}))
    new_public = Keypair.load_public(cluster.controller / "keys" / f"{rotated}.key")
    assert new_public != old_public
    assert Keypair.load(cluster.root(3) / "etc" / "galaxy" / "keys" / "agent.key").public == new_public
    assert cluster.supervisor_state(3)["programs"]["agent"]["pid"] != agent_pid
    for index in names:
        trusted = {p.name: Keypair.load_public(p) for p in (cluster.root(index) / "etc" / "galaxy" / "trusted").iterdir()}
        assert trusted[f"{rotated}.pub"] == new_public and old_public not in trusted.values(), (index, trusted)
    assert not list((cluster.controller / "keys").glob("*.previous.key*"))
    assert _service_pids(placement) == pids
    after = _job_running(cluster)
    assert {p["pod"]: agent_of[p["host"]] for p in after["job"]["pods"]} == placement
    assert _answering(cluster, after["endpoints"]) == set(endpoints)
    # The Agent answers with its new key: ResMan, which no longer trusts the old one, still counts its
    # container (a host whose polls went unanswered would be shown lost after the threshold).
    found = _wait_probe(cluster, agents)
    assert {h["id"]: h["containers"] for h in found["hosts"]} == dict.fromkeys(agents, 1)
