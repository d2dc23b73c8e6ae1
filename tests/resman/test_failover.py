"""SIGKILL of the ResMan leader in the middle of placing a large group: the standby (a real
`galaxy-resman` process) ends with exactly the desired count — none lost, none duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from galaxy.coord import Paths, connect, read_leader
from galaxy.mesh import Client
from galaxy.testing.fleet import SimFleet, sim_hosts
from galaxy.testing.netns import wait_until
from tests.resman.conftest import Keys, group_body, template

pytestmark = [pytest.mark.zk]

REPLICAS = 3000


@pytest.fixture
def resman_procs(zk_hosts: str, keys: Keys, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    keys.resman.save(str(tmp_path / "resman.key"))
    for name, pair in (("agent", keys.agent), ("admin", keys.admin)):
        pair.save(str(tmp_path / f"{name}.key"))
        (trusted / f"{name}.pub").write_text(Path(tmp_path / f"{name}.key.pub").read_text())
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "GALAXY_RESMAN_POLL_INTERVAL": "0.3", "GALAXY_RESMAN_LOST_AFTER": "10",
           "GALAXY_RESMAN_SAFE_MODE_TIMEOUT": "20"}

    def start(name: str) -> subprocess.Popen[bytes]:
        config = {"cluster": "failover", "zookeeper": zk_hosts, "id": name, "listen": "tcp://127.0.0.1:0",
                  "key": str(tmp_path / "resman.key"), "trusted_keys": str(trusted),
                  "state_dir": str(tmp_path / name), "session_timeout": "2s", "heartbeat_interval": "0.5s"}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = open(tmp_path / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "galaxy.resman.main", "--config", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for log in tmp_path.glob("*.log"):
        print(f"---- {log.name} ----\n{log.read_text()[-3000:]}")


def test_standby_ends_with_exactly_the_desired_count(zk_hosts: str, keys: Keys, resman_procs) -> None:
    zk = connect(zk_hosts)
    paths = Paths("failover")

    def leader(not_id: str | None = None):
        info = read_leader(zk, paths, "resman")
        return info if info is not None and info.identity != not_id else None
    try:
        first = resman_procs("resman-1")
        lead = wait_until(leader, timeout=30, what="a leader")
        resman_procs("resman-2")
        wait_until(lambda: len(zk.get_children(paths.election("resman"))) == 2, timeout=30, what="a standby")
        hosts = sim_hosts(30, cpu=16.0, memory=64 << 30)
        with SimFleet(lead.endpoint, lead.public_key, keys.agent, hosts, heartbeat_interval=0.5,
                      create_delay=0.05) as fleet:
            wait_until(lambda: fleet.registered() == 30, timeout=30, what="hosts registered")
            with Client(lead.endpoint, lead.public_key, keys.admin, "admin-1", heartbeat_interval=0.5) as admin:
                admin.call("group.create", group_body("big", REPLICAS, container=template(cpu=0.1, memory=64 << 20)))
            wait_until(lambda: len(fleet.containers()) >= 300, timeout=30, what="placing under way")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            created_at_kill = len(fleet.containers())
            assert created_at_kill < REPLICAS, "the leader finished before it was killed; kill sooner"
            new = wait_until(lambda: leader(lead.identity), timeout=30, what="the standby to lead")
            fleet.connect_to(new.endpoint, new.public_key)
            with Client(new.endpoint, new.public_key, keys.admin, "admin-2", heartbeat_interval=0.5) as admin:
                def converged() -> dict | None:
                    shown = admin.call("group.show", {"group": "big"}, timeout=20)
                    ok = [c for c in shown["containers"] if c["state"] == "running"]
                    return shown if len(ok) == REPLICAS == len(shown["containers"]) else None
                shown = wait_until(converged, timeout=60, interval=0.5, what="the standby to converge")
            def settled() -> dict[str, list[str]] | None:
                where = fleet.containers()
                return where if len(where) == REPLICAS else None
            where = wait_until(settled, timeout=20, what="surplus destroyed")
            assert all(len(on) == 1 for on in where.values()), "a container runs on two hosts"
            assert set(where) == {c["id"] for c in shown["containers"]}
    finally:
        zk.stop()
        zk.close()
