"""An AppMaster cluster for tests: real ZooKeeper, real `galaxy-appmaster` processes (so SIGKILL is
real), a ResMan double speaking the real mesh contract, and simulated workers on raw DEALERs.

Only the root administrator's key (`admin`) is in the trusted-keys directory; alice and bob are real
users, made through `user.create` by the admin the first time a test asks for their client, with every
job permission on `default` — so the job tests run under the same authority checks users meet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.coord import Paths, connect, read_leader
from galaxy.errors import RetryableError
from galaxy.mesh import Client, Keypair
from tests.appmaster.sim import ResManDouble, SimFleet

REPO = Path(__file__).resolve().parents[2]

DEFAULT_USERS = ("alice", "bob")
JOB_PERMISSIONS = ["job.create", "job.update", "job.delete", "job.read"]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class AppMasterCluster:
    def __init__(self, zk_hosts: str, tmp: Path) -> None:
        self.zk_hosts = zk_hosts
        self.tmp = tmp
        self.cluster = f"galaxy-am-{uuid.uuid4().hex[:8]}"
        self.paths = Paths(self.cluster)
        self.zk = connect(zk_hosts, session_timeout=4.0)
        keys = tmp / "keys"
        trusted = tmp / "trusted"
        trusted.mkdir(parents=True)
        self.am_keys = Keypair.generate()
        self.am_keys.save(keys / "appmaster.key")
        self.users = {name: Keypair.generate() for name in ("admin", "alice", "bob")}
        self.users["admin"].save(keys / "admin.key")
        (trusted / "admin.pub").write_text((keys / "admin.key.pub").read_text())
        self.created: set[str] = {"admin"}
        self.trusted = trusted
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.fleet = SimFleet(self.zk, self.paths)
        self.resman = ResManDouble(self.zk, self.paths, self.am_keys.public,
                                   on_create=self.fleet.add, on_destroy=self.fleet.drop)
        self._clients: list[Client] = []

    def start_appmaster(self, ident: str) -> subprocess.Popen[bytes]:
        config = {"cluster": self.cluster, "zookeeper": self.zk_hosts, "id": ident, "listen": "tcp://127.0.0.1:0",
                  "key": str(self.tmp / "keys" / "appmaster.key"), "trusted_keys": str(self.trusted),
                  "state_dir": str(self.tmp / ident), "session_timeout": 2.0, "heartbeat_interval": 0.5,
                  "log_level": "info"}
        path = self.tmp / f"{ident}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = open(self.tmp / f"{ident}.log", "ab")  # noqa: SIM115 - closed with the process below
        proc = subprocess.Popen([sys.executable, "-m", "galaxy.appmaster.main", "--config", str(path)],
                                stdout=log, stderr=log, cwd=REPO)  # this checkout's galaxy, not another
        log.close()
        self.procs[ident] = proc
        return proc

    def kill(self, ident: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[ident]
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            proc.wait(timeout=10)

    def leader(self, timeout: float = 15.0) -> Any:
        return wait_until(lambda: read_leader(self.zk, self.paths, "appmaster"), timeout, "an AppMaster leader")

    def client(self, user: str = "alice") -> UserClient:
        """A client with `user`'s key; alice and bob are created (with job grants on default) on first use."""
        if user not in self.created and user in DEFAULT_USERS:
            self.add_user(user, {"default": JOB_PERMISSIONS})
        return UserClient(self, user)

    def add_user(self, name: str, grants: dict[str, list[str]] | None = None,
                 quota: dict[str, Any] | None = None) -> Keypair:
        """Create `name` through the admin's `user.create` (a fresh key unless one is known), then grant."""
        keys = self.users.setdefault(name, Keypair.generate())
        admin = UserClient(self, "admin")
        try:
            admin.call("user.create", {"user": name, "key": keys.public})
            for pool, permissions in (grants or {}).items():
                admin.call("user.grant", {"user": name, "pool": pool, "permissions": permissions})
            if quota is not None:
                admin.call("quota.set", {"user": name, "quota": quota})
        finally:
            admin.close()
        self.created.add(name)
        return keys

    def log_text(self) -> str:
        return "\n".join(f"---- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for ident in list(self.procs):
            self.kill(ident, signal.SIGTERM) if self.procs[ident].poll() is None else None
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.fleet.close()
        self.resman.close()
        self.zk.stop()
        self.zk.close()


class UserClient:
    """A user's mesh client that follows the AppMaster leader (what the SDK does)."""

    def __init__(self, cluster: AppMasterCluster, user: str) -> None:
        self.cluster = cluster
        self.keys = cluster.users[user]
        self.user = user
        self.client: Client | None = None
        self.endpoint = ""

    def _ensure(self) -> Client:
        leader = self.cluster.leader()
        if self.client is None:
            self.client = Client(leader.endpoint, leader.public_key, self.keys, f"{self.user}-{uuid.uuid4().hex[:6]}",
                                 timeout=5.0, retries=0, heartbeat_interval=0.5).start()
            self.cluster._clients.append(self.client)
        elif self.endpoint != leader.endpoint:
            self.client.connect_to(leader.endpoint, leader.public_key)
        self.endpoint = leader.endpoint
        return self.client

    def call(self, method: str, body: Any = None, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._ensure().call(method, body, timeout=min(10.0, timeout))
            except RetryableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


@pytest.fixture
def am_cluster(zk_hosts: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppMasterCluster]:
    cluster = AppMasterCluster(zk_hosts, tmp_path)
    try:
        yield cluster
    finally:
        report = getattr(request.node, "galaxy_report_call", None)
        if report is not None and report.failed:
            print(cluster.log_text())
        for c in cluster._clients:
            c.close()
        cluster.close()
