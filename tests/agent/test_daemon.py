"""The real `galaxy-agent` process on a test host: finds ResMan through ZooKeeper, registers, creates
containers on request, and survives its own SIGKILL without touching them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.agent.containers import ContainerManager
from galaxy.coord import LeaderInfo, Paths, connect, publish_leader
from galaxy.daemon.config import load_config
from galaxy.mesh import Keypair, KeyRing, Request, Server
from galaxy.testing.netns import TestHost, TestNetwork, wait_until
from galaxy.testing.zk import ZooKeeperServer
from tests.agent.test_containers import leftovers

pytestmark = [pytest.mark.root, pytest.mark.netns]


class FakeResMan:
    """Just enough of ResMan to drive one Agent: the leader record and the registration endpoint."""

    def __init__(self, host: TestHost, base: Path) -> None:
        self.keys = base / "keys"
        (self.keys / "trusted").mkdir(parents=True)
        self.resman_key = Keypair.generate()
        self.resman_key.save(str(self.keys / "resman.key"))
        Keypair.generate().save(str(self.keys / "agent.key"))
        for name in ("resman", "agent"):
            (self.keys / "trusted" / f"{name}.pub").write_text(Path(self.keys / f"{name}.key.pub").read_text())
        ring = KeyRing()
        ring.add(Keypair.load_public(str(self.keys / "agent.key.pub")), "agent")
        self.registrations: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        with host.netns():
            self.zk = ZooKeeperServer(address=host.address).start()
            self.server = Server(f"tcp://{host.address}:7400", self.resman_key, ring, name="fake-resman")
            self.server.route("agent.register", self._register)
            self.server.on_event("container.state", lambda req: self.events.append(req.body))
            self.server.start()
            self.client = connect(self.zk.hosts)
        publish_leader(self.client, Paths("t"), "resman",
                       LeaderInfo("fake-resman", self.server.endpoint, self.resman_key.public))

    def _register(self, req: Request) -> dict[str, Any]:
        with self.lock:
            self.registrations.append(req.body)
        return {"ok": True}

    def close(self) -> None:
        self.server.stop()
        self.client.stop()
        self.client.close()
        self.zk.stop()


def agent_config(tmp_path: Path, resman: FakeResMan, host: TestHost) -> Path:
    (tmp_path / "ssd").mkdir(exist_ok=True)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "cluster": "t", "zookeeper": resman.zk.hosts, "id": f"a{os.getpid()}",
        "key": str(resman.keys / "agent.key"), "trusted_keys": str(resman.keys / "trusted"),
        "state_dir": str(tmp_path / "state"), "heartbeat_interval": "0.5s", "session_timeout": "4s",
        "agent": {"address": host.address, "port_range": "22000-22099", "reserved_cpu": 0,
                  "disks": [{"path": str(tmp_path / "ssd"), "medium": "ssd", "capacity": "256Mi"}]},
    }))
    return path


def start_agent(host: TestHost, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return host.popen([sys.executable, "-m", "galaxy.agent.main", "--config", str(config)],
                          private_mounts=False, stdout=out, stderr=subprocess.STDOUT)


def clean_agent(host: TestHost, config: Path) -> None:
    """Destroy whatever the Agent left, the way a new Agent would find it."""
    cfg = load_config(config, "agent")
    with host.netns():
        manager = ContainerManager(cfg.id, cfg.state_dir, cfg.agent)
        manager.start()
        manager.purge()


def test_agent_survives_sigkill_and_readopts(setup: tuple[TestNetwork, FakeResMan, Path]) -> None:
    net, resman, tmp_path = setup
    host = net.host(1)
    config = agent_config(tmp_path, resman, host)
    log = tmp_path / "agent.log"
    agent = start_agent(host, config, log)
    try:
        wait_until(lambda: resman.registrations, timeout=30, what=f"registration; log: {log}")
        facts = resman.registrations[-1]
        assert facts["address"] == host.address and facts["free"]["disks"] == {"ssd": 256 << 20}
        agent_id = facts["id"]
        body = {"id": "web.0a1b2c", "group": "web", "cpu": 0.25, "memory": 64 << 20, "user": "nobody",
                "argv": ["sleep", "600"], "ports": [{"name": "http"}],
                "disks": [{"medium": "ssd", "size": 16 << 20, "path": "/data"}]}
        created = resman.server.request(agent_id, "container.create", body, timeout=30)
        assert created["state"] == "running"
        pid = created["pid"]

        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        os.kill(pid, 0)  # the container outlived its Agent
        before = len(resman.registrations)
        agent = start_agent(host, config, log)
        wait_until(lambda: len(resman.registrations) > before, timeout=30, what="re-registration")
        again = {c["id"]: c for c in resman.registrations[-1]["containers"]}
        assert again["web.0a1b2c"]["state"] == "running" and again["web.0a1b2c"]["pid"] == pid
        assert again["web.0a1b2c"]["ports"] == created["ports"]

        gone = resman.server.request(agent_id, "container.destroy", {"id": "web.0a1b2c"}, timeout=30)
        assert gone == {"id": "web.0a1b2c", "destroyed": True}
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        cfg = load_config(config, "agent")
        with host.netns():
            probe = ContainerManager(cfg.id, cfg.state_dir, cfg.agent)
            assert leftovers(probe, "web.0a1b2c") == []
            probe.ports.close(remove_rules=False)
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        clean_agent(host, config)


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_appworker_containers_come_from_the_zygote_across_a_sigkill(
        setup: tuple[TestNetwork, FakeResMan, Path]) -> None:
    """PID 1 of an AppWorker container is forked from the Agent's zygote; the zygote and the container
    both outlive the Agent's SIGKILL, the next Agent re-adopts the container and keeps the same zygote,
    and the cleanup after the Agent ends the zygote as well."""
    net, resman, tmp_path = setup
    host = net.host(1)
    config = agent_config(tmp_path, resman, host)
    log = tmp_path / "agent.log"
    zygote_pid_file = tmp_path / "state" / "zygote" / "zygote.pid"
    agent = start_agent(host, config, log)
    try:
        wait_until(lambda: resman.registrations, timeout=30, what=f"registration; log: {log}")
        agent_id = resman.registrations[-1]["id"]
        body = {"id": "wk.0a1b2c", "group": "wk", "cpu": 0.25, "memory": 64 << 20, "user": "nobody",
                "argv": ["/opt/other/python3", "-m", "galaxy.appworker.main", "--", "sleep", "600"]}
        created = resman.server.request(agent_id, "container.create", body, timeout=30)
        pid = created["pid"]
        wait_until(lambda: _comm(pid) == "appworker.main", timeout=10, what="PID 1 named by the zygote")
        zygote = int(zygote_pid_file.read_text().split()[0])

        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        before = len(resman.registrations)
        agent = start_agent(host, config, log)
        wait_until(lambda: len(resman.registrations) > before, timeout=30, what="re-registration")
        again = {c["id"]: c for c in resman.registrations[-1]["containers"]}
        assert again["wk.0a1b2c"]["state"] == "running" and again["wk.0a1b2c"]["pid"] == pid
        assert int(zygote_pid_file.read_text().split()[0]) == zygote  # re-found, not restarted
        os.kill(zygote, 0)

        gone = resman.server.request(agent_id, "container.destroy", {"id": "wk.0a1b2c"}, timeout=30)
        assert gone == {"id": "wk.0a1b2c", "destroyed": True}
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10, what="PID 1 gone")
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        clean_agent(host, config)
    assert not zygote_pid_file.exists()
    wait_until(lambda: not os.path.exists(f"/proc/{zygote}"), timeout=10, what="zygote ended by the purge")
