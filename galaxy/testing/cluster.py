"""A whole Galaxy cluster on one machine: ZooKeeper, ResMan and AppMaster replicas, and Agents, each
Agent on its own test host (network namespace), the control plane on test host 1.

Used by the multi-host tests (real daemons, real kernel, real network stack) and by `make demo`
(`detached=True`: the cluster outlives the process that made it, and `LocalCluster.load(base)` +
`stop()` takes it down again). Every process is started by this module and ended by its PID; what the
Agents made in the kernel is removed by re-adopting each Agent's containers and destroying them.

Layout under ``base``::

    cluster.json           what was started: namespaces, components, PIDs (for `load`)
    keys/<name>.key(.pub)  resman, appmaster, agent, admin;  keys/trusted/*.pub
    keys/zookeeper.auth    the daemons' ZooKeeper digest credential (0600; users never get it)
    keys/state.key         ResMan's and the AppMaster's key for secrets at rest (0600)
    keys/zookeeper-ca.pem  the CA of ZooKeeper's TLS port (every client's `zookeeper_ca`; its key beside it, 0600)
    zk/                    ZooKeeper data and log; zk-tls/ its certificate (TLS only, like the playbook's)
    <component>/           config.yaml, log, and for agents state/ and ssd/ (the host disk)
    admin.config           a `~/.galaxy/config`-style file for the admin key
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from galaxy.coord import ClusterCA, Credential, StateKey
from galaxy.coord._tls import CA_FILE, write_server_tls
from galaxy.errors import GalaxyError
from galaxy.mesh import Client, Keypair
from galaxy.testing.netns import TestHost, TestNetwork, delete_namespaces, in_netns, wait_until

log = logging.getLogger(__name__)

ZK_PORT = 2181
RESMAN_PORT = 7400
APPMASTER_PORT = 7500
KEY_NAMES = ("resman", "appmaster", "agent", "admin")


@dataclass
class Component:
    name: str            # resman-1, appmaster-1, agent-2, zookeeper
    role: str            # resman | appmaster | agent | zookeeper
    netns: str
    argv: list[str]
    log: str
    pid: int | None = None


@dataclass
class ClusterState:
    base: str
    cluster: str
    zookeeper: str
    namespaces: list[str] = field(default_factory=list)
    components: dict[str, Component] = field(default_factory=dict)
    agent_hosts: dict[str, str] = field(default_factory=dict)   # agent id -> address


class LocalCluster:
    # ZooKeeper serves TLS only, as the playbook's does (a subclass running its own servers may not).
    zookeeper_tls = True

    def __init__(self, base: str | os.PathLike[str], *, agents: int = 3, resman: int = 1, appmaster: int = 1,
                 cluster: str = "local", session_timeout: float = 4.0, detached: bool = False,
                 agent_labels: dict[int, list[str]] | None = None, agent_pools: dict[int, str] | None = None,
                 disk_capacity: str = "2Gi", port_range: str = "21000-21999", prefix: str | None = None) -> None:
        self.base = Path(base).resolve()
        self.counts = {"agent": agents, "resman": resman, "appmaster": appmaster}
        self.cluster = cluster
        self.session_timeout = session_timeout
        self.detached = detached
        self.agent_labels = agent_labels or {}
        self.agent_pools = agent_pools or {}
        self.disk_capacity = disk_capacity
        self.port_range = port_range
        self.prefix = prefix
        self.network: TestNetwork | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state = ClusterState(str(self.base), cluster, "")

    # -- hosts ---------------------------------------------------------------------------------
    @property
    def control(self) -> TestHost:
        assert self.network is not None, "cluster not started"
        return self.network.host(1)

    def agent_host(self, index: int) -> TestHost:
        """The test host of agent ``index`` (1-based)."""
        assert self.network is not None, "cluster not started"
        return self.network.host(index + 1)

    @property
    def zk_hosts(self) -> str:
        return self.state.zookeeper

    # -- start ---------------------------------------------------------------------------------
    def start(self, *, wait_agents: bool = True, timeout: float = 60.0) -> LocalCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        self.network = TestNetwork(self.prefix, hosts=1 + self.counts["agent"])
        try:
            self.state.namespaces = self.network.namespaces
            self.state.zookeeper = f"{self.control.address}:{ZK_PORT}"
            self._make_keys()
            self._start_zookeeper(timeout)
            for i in range(1, self.counts["resman"] + 1):
                self._start_daemon("resman", i, self.control, RESMAN_PORT + i - 1)
            for i in range(1, self.counts["appmaster"] + 1):
                self._start_daemon("appmaster", i, self.control, APPMASTER_PORT + i - 1)
            for i in range(1, self.counts["agent"] + 1):
                self._start_daemon("agent", i, self.agent_host(i), 0)
            self.write_admin_config()
            self.wait_leader("resman", timeout)
            if self.counts["appmaster"]:
                self.wait_leader("appmaster", timeout)
            if wait_agents:
                self.wait_agents(self.counts["agent"], timeout)
            if self.detached:
                self.network.detach()
            self._save()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_keys(self) -> None:
        keys = self.base / "keys"
        trusted = keys / "trusted"
        trusted.mkdir(parents=True, exist_ok=True)
        for name in KEY_NAMES:
            path = keys / f"{name}.key"
            if not path.exists():
                Keypair.generate().save(str(path))
            shutil.copy(f"{path}.pub", trusted / f"{name}.pub")
        if not self.zk_auth_path.exists():
            Credential.generate().save(self.zk_auth_path)
        if not self.state_key_path.exists():
            StateKey.generate().save(self.state_key_path)
        if self.zookeeper_tls:
            ca, _ = ClusterCA.ensure(keys, self.cluster)
            write_server_tls(self.base / "zk-tls", ca, [self.control.address])

    @property
    def zk_ca(self) -> str | None:
        """The CA certificate ZooKeeper's TLS port is checked with (every client's `zookeeper_ca`);
        None where the cluster's ZooKeeper is plain (``zookeeper_tls`` False)."""
        return str(self.base / "keys" / CA_FILE) if self.zookeeper_tls else None

    @property
    def state_key_path(self) -> Path:
        """ResMan's and the AppMaster's key for secrets at rest (their `state_key`; Agents never get it)."""
        return self.base / "keys" / "state.key"

    @property
    def zk_auth_path(self) -> Path:
        """The daemons' ZooKeeper credential file (every daemon's `zookeeper_auth`)."""
        return self.base / "keys" / "zookeeper.auth"

    def keypair(self, name: str = "admin") -> Keypair:
        return Keypair.load(str(self.base / "keys" / f"{name}.key"))

    def _launch(self, comp: Component) -> None:
        with open(comp.log, "ab") as log_file:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{comp.netns}", "--", *comp.argv],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        comp.pid = proc.pid
        self.procs[comp.name] = proc
        self.state.components[comp.name] = comp

    def _start_zookeeper(self, timeout: float) -> None:
        data = self.base / "zk"
        data.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "galaxy.cli.main", "dev", "zk", "--port", str(ZK_PORT),
                "--address", self.control.address, "--data_dir", str(data),
                *(["--tls_dir", str(self.base / "zk-tls")] if self.zookeeper_tls else [])]
        self._launch(Component("zookeeper", "zookeeper", self.control.name, argv, str(self.base / "zk.log")))
        from galaxy.testing.zk import four_letter_word

        def ready() -> bool:
            if self.procs["zookeeper"].poll() is not None:
                raise GalaxyError(f"ZooKeeper exited at start: {self.log_tail('zookeeper', 1500)}")
            with in_netns(self.control.name):
                try:
                    return four_letter_word(self.control.address, ZK_PORT, "ruok", timeout=1.0,
                                            ca=self.zk_ca) == "imok"
                except OSError:
                    return False
        wait_until(ready, timeout=timeout, what="ZooKeeper to answer ruok")

    def config_for(self, role: str, index: int, host: TestHost, port: int) -> dict[str, Any]:
        name = f"{role}-{index}"
        home = self.base / name
        config: dict[str, Any] = {
            "cluster": self.cluster, "zookeeper": self.state.zookeeper, "id": name,
            "key": str(self.base / "keys" / f"{role}.key"), "trusted_keys": str(self.base / "keys" / "trusted"),
            "state_dir": str(home / "state"), "session_timeout": f"{self.session_timeout}s",
            "log_level": "info", "zookeeper_auth": str(self.zk_auth_path),
        }
        if self.zk_ca:
            config["zookeeper_ca"] = self.zk_ca
        if role != "agent":
            config["state_key"] = str(self.state_key_path)
        if role == "agent":
            # The id names the Agent's kernel objects (cgroups `galaxy-<id>`, disk images), and an Agent
            # removes cgroups under its name that it has no record of: clusters running side by side on
            # one machine must never share one, so it carries the network's unique prefix.
            assert self.network is not None
            config["id"] = f"{name}-{self.network.prefix}"
            (home / "ssd").mkdir(parents=True, exist_ok=True)
            config["agent"] = {
                "pool": self.agent_pools.get(index, "default"), "address": host.address,
                "labels": self.agent_labels.get(index, []), "port_range": self.port_range,
                "disks": [{"path": str(home / "ssd"), "medium": "ssd", "capacity": self.disk_capacity}],
                "reserved_cpu": 0, "reserved_memory": "0",
            }
        else:
            config["listen"] = f"tcp://{host.address}:{port}"
        return config

    def _start_daemon(self, role: str, index: int, host: TestHost, port: int) -> None:
        name = f"{role}-{index}"
        home = self.base / name
        home.mkdir(parents=True, exist_ok=True)
        config_path = home / "config.yaml"
        config_path.write_text(yaml.safe_dump(self.config_for(role, index, host, port), sort_keys=False))
        if role == "agent":
            self.state.agent_hosts[name] = host.address
        argv = [sys.executable, "-m", f"galaxy.{role}.main", "--config", str(config_path)]
        self._launch(Component(name, role, host.name, argv, str(home / "log")))

    def client_config(self, key: str | os.PathLike[str], **extra: Any) -> dict[str, Any]:
        """What a user's `~/.galaxy/config` says to reach this cluster with ``key``."""
        ca = {"zookeeper_ca": self.zk_ca} if self.zk_ca else {}
        return {"cluster": self.cluster, "zookeeper": self.state.zookeeper, **ca, "key": str(key), **extra}

    def write_admin_config(self, user: str = "admin") -> Path:
        path = self.base / f"{user}.config"
        path.write_text(yaml.safe_dump(self.client_config(self.base / "keys" / f"{user}.key")))
        return path

    # -- observing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def zk(self, *, anonymous: bool = False) -> Iterator[Any]:
        """A kazoo client inside the control host (stopped on exit), with the daemons' credential
        (tests look at state/) unless ``anonymous`` (what a user or an AppWorker gets)."""
        from galaxy.coord import Credential, connect

        credential = None if anonymous else Credential.load(self.zk_auth_path)
        with in_netns(self.control.name):
            client = connect(self.state.zookeeper, timeout=15.0, credential=credential, ca=self.zk_ca)
        try:
            yield client
        finally:
            client.stop()
            client.close()

    def leader(self, role: str) -> Any:
        from galaxy.coord import Paths, read_leader

        with self.zk(anonymous=True) as client:     # what every client does: no credential needed
            return read_leader(client, Paths(self.cluster), role)

    def wait_leader(self, role: str, timeout: float = 60.0, *, not_identity: str | None = None) -> Any:
        def found() -> Any:
            info = self.leader(role)
            return info if info is not None and info.identity != not_identity else None
        return wait_until(found, timeout=timeout, interval=0.2, what=f"a {role} leader")

    @contextlib.contextmanager
    def client(self, role: str = "resman", *, key: str = "admin", identity: str | None = None) -> Iterator[Client]:
        """A mesh client to the current leader of ``role``, made inside the control host."""
        info = self.wait_leader(role, 30.0)
        with in_netns(self.control.name):
            client = Client(info.endpoint, info.public_key, self.keypair(key),
                            identity or f"{key}-{os.getpid()}-{time.monotonic_ns() % 10**6}").start()
        try:
            yield client
        finally:
            client.close()

    def hosts(self) -> list[dict[str, Any]]:
        with self.client("resman") as client:
            result: list[dict[str, Any]] = client.call("hosts.list", {}, timeout=10.0)
        return result

    def wait_agents(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        def registered() -> list[dict[str, Any]] | None:
            try:
                alive = [h for h in self.hosts() if h.get("status", "alive") == "alive"]
            except GalaxyError:
                return None
            return alive if len(alive) >= count else None
        return wait_until(registered, timeout=timeout, interval=0.3, what=f"{count} agents registered")

    def cli(self, *args: str, timeout: float = 120.0, user: str = "admin") -> subprocess.CompletedProcess[str]:
        """Run the `galaxy` CLI inside the control host as ``user``."""
        env = {**os.environ, "GALAXY_CONFIG": str(self.base / f"{user}.config")}
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.control.name}", "--",
                               sys.executable, "-m", "galaxy.cli.main", *args],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        comp = self.state.components.get(name)
        if comp is None or not os.path.exists(comp.log):
            return ""
        return Path(comp.log).read_text(errors="replace")[-chars:]

    # -- failures on purpose -------------------------------------------------------------------
    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one component by its PID and wait for it to end (SIGKILL = a crash).

        SIGSTOP and SIGCONT pause and resume it (a hung host, a frozen VM): they return at once and
        the component keeps its PID, so it can be resumed, stopped or signalled again.
        """
        comp = self.state.components[name]
        if comp.pid is None:
            return
        _signal_pid(comp.pid, comp.argv, sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            return
        proc = self.procs.get(name)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        comp.pid = None

    def restart(self, name: str) -> None:
        comp = self.state.components[name]
        if comp.pid is not None:
            self.kill(name, signal.SIGTERM)
        self._launch(comp)
        self._save()

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """End every component (agents first), remove what the Agents made, delete the namespaces."""
        problems: list[str] = []
        ranks = {"agent": 0, "appmaster": 1, "resman": 2, "zookeeper": 3}
        order = sorted(self.state.components.values(), key=lambda c: ranks[c.role])
        # One role at a time, each waited for before the next is told: a daemon that closes its
        # ZooKeeper session while ZooKeeper itself is going away waits out its close timeout, which
        # had every teardown pay ~10 s and then a SIGKILL.
        for rank in sorted({ranks[c.role] for c in order}):
            tier = [c for c in order if ranks[c.role] == rank]
            for comp in tier:
                if comp.pid is not None:
                    _signal_pid(comp.pid, comp.argv, signal.SIGCONT)     # a paused one must run to end
                    _signal_pid(comp.pid, comp.argv, signal.SIGTERM)
            for comp in tier:
                if comp.pid is not None and not _wait_gone(comp.pid, 10.0):
                    _signal_pid(comp.pid, comp.argv, signal.SIGKILL)
                    _wait_gone(comp.pid, 10.0)
                proc = self.procs.pop(comp.name, None)
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
                comp.pid = None
        for comp in order:
            if comp.role == "agent":
                problems += self._clean_agent(comp)
        if self.network is not None and not self.detached:
            try:
                self.network.close()
            except GalaxyError as err:
                problems.append(str(err))
        problems += delete_namespaces(self.state.namespaces)
        self._save()
        if problems:
            log.warning("cluster teardown: %s", "; ".join(problems))
        return problems

    def _clean_agent(self, comp: Component) -> list[str]:
        """Re-adopt the Agent's containers as a new Agent would, then destroy them all."""
        from galaxy.agent.containers import ContainerManager
        from galaxy.daemon.config import load_config

        config_path = self.base / comp.name / "config.yaml"
        if not config_path.exists() or not os.path.exists(f"/run/netns/{comp.netns}"):
            return []
        try:
            config = load_config(config_path, "agent")
            with in_netns(comp.netns):
                manager = ContainerManager(config.id, config.state_dir, config.agent)
                manager.start()
                manager.purge()
        except GalaxyError as err:
            return [f"{comp.name}: {err}"]
        return []

    def leftovers(self, cgroups: Iterable[Path] = ()) -> list[str]:
        """What this cluster left on the machine after `stop()`, described (empty when clean): its
        namespaces, its processes, loop devices over its files, and the given cgroup dirs."""
        left = [f"network namespace {n}" for n in self.state.namespaces if os.path.exists(f"/run/netns/{n}")]
        left += [f"process {c.name} ({c.pid})" for c in self.state.components.values()
                 if c.pid is not None and os.path.exists(f"/proc/{c.pid}")]
        loops = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                               capture_output=True, text=True, check=False).stdout
        left += [f"loop device {line.split()[0]}" for line in loops.splitlines() if str(self.base) in line]
        left += [f"cgroup {path}" for path in cgroups if path.exists()]
        return left

    # -- persistence (for `make demo` / `make demo-down`) --------------------------------------
    def _save(self) -> None:
        data = asdict(self.state)
        (self.base / "cluster.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, base: str | os.PathLike[str]) -> LocalCluster:
        path = Path(base) / "cluster.json"
        if not path.exists():
            raise GalaxyError(f"no cluster recorded in {base} (nothing to take down)")
        data = json.loads(path.read_text())
        cluster = cls(base, cluster=data["cluster"], detached=True)
        comps = {k: Component(**v) for k, v in data.get("components", {}).items()}
        cluster.state = ClusterState(data["base"], data["cluster"], data["zookeeper"], data.get("namespaces", []),
                                     comps, data.get("agent_hosts", {}))
        return cluster


def _is_ours(pid: int, argv: list[str]) -> bool:
    """The PID still runs the program we started (PIDs are reused; never signal a stranger)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = [c.decode(errors="replace") for c in cmdline if c]
    return bool(argv) and argv[-1] in text


def _signal_pid(pid: int, argv: list[str], sig: int) -> None:
    if _is_ours(pid, argv):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return True
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


__all__ = ["LocalCluster", "Component", "ClusterState"]
