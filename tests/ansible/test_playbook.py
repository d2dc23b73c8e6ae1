"""The site playbook against three test hosts made of network namespaces.

Each host is `connection: local` with a root directory of its own (`galaxy_root`) and runs its
daemons under Galaxy's supervisor inside its namespace (`galaxy_netns`). One run builds the cluster
(ZooKeeper + two ResMan and two AppMaster replicas + two Agents), a second run changes nothing, and a
third with a new release label rolls every Galaxy daemon onto it — standbys before leaders, one at a
time — without restarting ZooKeeper.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.supervisor import Control
from galaxy.supervisor._program import read_pidfile, terminate
from galaxy.testing.netns import TestNetwork, require_netns

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = REPO / "ansible"
PROBE = Path(__file__).with_name("probe.py")
BIN = Path(sys.executable).parent
# Which hosts run what: host 1 is the control host, 2 a control host and an Agent, 3 an Agent.
LAYOUT = {"zookeeper": [1], "resman": [1, 2], "appmaster": [1, 2], "agent": [2, 3]}
NEXT_RELEASE = "0.1.0-next"


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

    def probe(self) -> dict[str, Any]:
        host = self.net.host(LAYOUT["zookeeper"][0])
        admin = self.controller / "keys" / "admin.key"
        done = host.run([sys.executable, str(PROBE), f"{host.address}:2181", self.cluster, str(admin)],
                        private_mounts=False, timeout=60)
        return dict(json.loads(done.stdout))

    def supervisor_state(self, index: int) -> dict[str, Any]:
        path = self.root(index) / "run" / "galaxy" / "state.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def dump_logs(self) -> None:
        for index in self.names:
            logs = self.root(index) / "var" / "log" / "galaxy"
            for log in sorted(logs.glob("*.log")) if logs.exists() else []:
                print(f"---- {self.names[index]} {log.name} ----\n{log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        """Stop every supervisor the playbook started (it stops its programs), then any straggler."""
        for index in self.names:
            config = self.root(index) / "etc" / "galaxy" / "supervisor.yaml"
            if config.exists():
                try:
                    Control(str(config)).shutdown(timeout=60)
                except Exception as err:  # noqa: BLE001 - keep cleaning; the stragglers are next
                    print(f"stopping the supervisor of host {index}: {err}")
            run_dir = self.root(index) / "run" / "galaxy"
            for pidfile in sorted(run_dir.glob("*.pid")) if run_dir.exists() else []:
                pid = read_pidfile(str(pidfile))
                if pid is not None:
                    terminate(pid, 15, 10.0)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_netns()
    base = tmp_path_factory.mktemp("galaxy-ansible")
    with TestNetwork(hosts=3) as net:
        made = Cluster(base, net)
        made.write_inventory()
        try:
            yield made
        finally:
            made.stop()
    shutil.rmtree(base, ignore_errors=True)


def _wait_probe(cluster: Cluster, agents: set[str], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = cluster.probe()
        alive = {h["id"] for h in found.get("hosts", []) if h.get("status") == "alive"}
        if found.get("resman") and found.get("appmaster") and alive >= agents:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"the cluster did not come up: {found}")
        time.sleep(0.5)


def test_playbook_builds_an_idempotent_cluster_and_rolls_an_upgrade(cluster: Cluster) -> None:
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
    # Each host holds only its own secret keys.
    keys = {p.name for p in (cluster.root(3) / "etc" / "galaxy" / "keys").iterdir()}
    assert keys == {"agent.key"}

    # 2. Idempotent: a second run changes nothing.
    _, recap = cluster.play()
    assert recap and all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), recap

    # 3. Upgrade: a new release label rolls every Galaxy daemon onto it, standbys before leaders,
    #    one at a time; ZooKeeper (not part of the release) keeps running.
    zookeeper_pid = cluster.supervisor_state(1)["programs"]["zookeeper"]["pid"]
    leaders = {"resman": found["resman"], "appmaster": found["appmaster"]}
    cluster.play("-e", f"galaxy_version={NEXT_RELEASE}")
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
    _wait_probe(cluster, agents)
