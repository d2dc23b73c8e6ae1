"""Galaxy's units under a real systemd (PID 1), as the playbook installs them.

Runs inside `make test-systemd` only (scripts/test-systemd.sh → scripts/systemd-guest.sh): systemd 252
from Debian boots as PID 1 of a systemd-nspawn container on cgroup v2, in a Debian kernel under QEMU.
The agent role's systemd tasks (carried out from the role's files by tests/systemd/playbook.py, with
Ansible's template engine) install and start galaxy-containers.service and galaxy-agent.service from
the role's unit template; a real ZooKeeper and a stand-in ResMan
(tests/agent's FakeResMan) let the Agent register and create a real container. The tests then check,
in order: the units start as rendered; `systemctl restart galaxy-agent`, then a SIGKILL of the Agent
(restarted by systemd), leave a running container alone (same PID, same cgroup, under the holder
unit's delegated cgroup) and the new Agent re-adopts it; `systemctl stop` is clean.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from galaxy.testing.netns import wait_until
from galaxy.testing.zk import ZooKeeperServer
from tests.agent import test_daemon
from tests.agent.test_daemon import FakeResMan
from tests.systemd.playbook import AgentRole

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CGROUP = Path("/sys/fs/cgroup")
AGENT = "galaxy-agent.service"
HOLDER = "galaxy-containers.service"
HOLDER_CGROUP = "/galaxy.slice/galaxy-containers.service"
HOST = "sdhost"                        # the inventory name: the Agent's id
STOP_TIMEOUT = 20                      # agent_stop_timeout: the unit's TimeoutStopSec
SCALE = float(os.environ.get("GALAXY_TEST_TIME_SCALE", "1"))   # subprocess deadlines; wait_until scales its own


T0 = time.monotonic()


def say(what: str) -> None:
    """Progress on the console (the suite runs with -s): a slow guest shows where its time goes."""
    print(f"[systemd suite +{time.monotonic() - T0:5.0f} s] {what}", flush=True)


def require_systemd_pid1() -> None:
    comm = Path("/proc/1/comm").read_text().strip()
    if comm != "systemd" or not Path("/run/systemd/system").is_dir():
        pytest.fail(f"PID 1 is {comm!r}, not systemd: run this suite through `make test-systemd`",
                    pytrace=False)
    if not (CGROUP / "cgroup.controllers").exists():
        pytest.fail("/sys/fs/cgroup is not cgroup v2", pytrace=False)


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120 * SCALE)
    if check and done.returncode != 0:
        status = subprocess.run(["systemctl", "status", "--no-pager", "-l", AGENT, HOLDER],
                                capture_output=True, text=True).stdout
        raise AssertionError(f"systemctl {' '.join(args)}: {done.returncode} {done.stderr}\n{status}")
    return done


def show(unit: str, *props: str) -> dict[str, str]:
    out = systemctl("show", unit, "-p", ",".join(props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cgroup_pids(path: str) -> list[int]:
    """Every process in the cgroup ``path`` (relative to the mount) and below; [] if it is gone."""
    top = CGROUP / path.strip("/")
    found: list[int] = []
    if not top.is_dir():
        return found
    for dirpath, _dirs, files in os.walk(top):
        if "cgroup.procs" in files:
            with contextlib.suppress(FileNotFoundError):
                found += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
    return found


def container_pids() -> list[int]:
    """Every process under the holder unit's cgroup but its own `sleep` (in the leaf `holder`)."""
    own = cgroup_pids(f"{HOLDER_CGROUP}/holder")
    return [pid for pid in cgroup_pids(HOLDER_CGROUP) if pid not in own]


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1]


def main_pid() -> int:
    return int(show(AGENT, "MainPID")["MainPID"])


def wait_agent_back(old: int, what: str) -> None:
    """Until the Agent unit is active again with a main process other than ``old``."""
    wait_until(lambda: main_pid() not in (0, old) and show(AGENT, "ActiveState")["ActiveState"] == "active",
               timeout=60, interval=0.5, what=what)


class PatientZooKeeper(ZooKeeperServer):
    """The JVM starts in 15-60 s under QEMU without KVM, past the harness's default 30 s."""

    def start(self, timeout: float = 180.0) -> ZooKeeperServer:
        return super().start(timeout)


class Loopback:
    """The FakeResMan's 'test host': this host's own network, on 127.0.0.1."""

    address = "127.0.0.1"

    def netns(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class Deployment:
    resman: FakeResMan
    base: Path
    role_log: list[str]

    def registrations(self) -> int:
        return len(self.resman.registrations)

    def wait_registered(self, after: int, what: str) -> dict:
        try:
            wait_until(lambda: self.registrations() > after, timeout=60, interval=0.2, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}; the Agent's journal:\n{journal()}") from None
        return self.resman.registrations[-1]

    def request(self, method: str, body: dict) -> dict:
        return self.resman.server.request(HOST, method, body, timeout=60 * SCALE)


def journal() -> str:
    return subprocess.run(["journalctl", "--no-pager", "-n", "60", "-u", AGENT, "-u", HOLDER],
                          capture_output=True, text=True).stdout


def run_playbook(resman: FakeResMan) -> list[str]:
    """The agent role's systemd path against this host (tests/systemd/playbook.py: the role's own files,
    rendered by Ansible's template engine), with systemd detected by Ansible's fact collector."""
    keys = Path("/etc/galaxy/keys")
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy(resman.keys / "agent.key", keys / "agent.key")
    shutil.copytree(resman.keys / "trusted", "/etc/galaxy/trusted", dirs_exist_ok=True)
    role = AgentRole({
        "galaxy_cluster": "t", "galaxy_zookeeper_connect": resman.zk.hosts, "galaxy_zookeeper_auth": "",
        "galaxy_zookeeper_ca": "",
        # the checkout's virtualenv stands for the release directory: bin/galaxy-agent is there
        "galaxy_release_dir": str(BIN.parent), "galaxy_address": "127.0.0.1",
        "galaxy_session_timeout": "4s", "galaxy_heartbeat_interval": "0.5s",
        "agent_pool": "test", "agent_disks": [], "agent_port_range": "22000-22099",
        "agent_reserved_cpu": 0, "agent_reserved_memory": "0",
        # no loop devices in the nspawn container's /dev; the firewall and favordynmods are the kernel
        # suites' (make test-cgroup2): the units are what is tested here
        "agent_work_disk": 0, "agent_firewall": False, "agent_favor_dynmods": False,
        "agent_stop_timeout": STOP_TIMEOUT}, HOST)
    assert role.facts["service_mgr"] == "systemd"
    return role.apply()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_systemd_pid1()
    base = tmp_path_factory.mktemp("systemd")
    say("starting ZooKeeper and the stand-in ResMan")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_daemon, "ZooKeeperServer", PatientZooKeeper)
        resman = FakeResMan(Loopback(), base)  # type: ignore[arg-type]
    try:
        say(f"ZooKeeper at {resman.zk.hosts}; carrying out the agent role")
        log = run_playbook(resman)
        say("\n    ".join(["the agent role did:", *log]))
        dep = Deployment(resman, base, log)
        dep.wait_registered(0, "the Agent's registration")
        say("the Agent registered")
        yield dep
    finally:
        systemctl("stop", AGENT, check=False)
        # whatever a failed test left: the Agent's own purge, then the holder unit (kills the rest)
        if container_pids() and Path("/etc/galaxy/agent.yaml").exists():
            subprocess.run([str(BIN / "python"), "-c", (
                "from galaxy.daemon.config import load_config\n"
                "from galaxy.agent.containers import ContainerManager\n"
                "cfg = load_config('/etc/galaxy/agent.yaml', 'agent')\n"
                "m = ContainerManager(cfg.id, cfg.state_dir, cfg.agent); m.start(); m.purge()\n")],
                check=False, timeout=120 * SCALE)
        systemctl("stop", HOLDER, check=False)
        resman.close()


def test_the_playbook_installs_and_starts_the_units(deployed: Deployment) -> None:
    unit = Path("/etc/systemd/system/galaxy-agent.service").read_text()
    assert "Ansible managed" in unit and f"TimeoutStopSec={STOP_TIMEOUT}" in unit
    assert "Wants=galaxy-containers.service" in unit and "Delegate" not in unit
    config = yaml.safe_load(Path("/etc/galaxy/agent.yaml").read_text())
    assert config["agent"]["cgroup_base"] == HOLDER_CGROUP   # systemd detected from the host's facts
    agent = show(AGENT, "ActiveState", "KillMode", "Restart", "TimeoutStopUSec", "ControlGroup",
                 "UnitFileState", "StartLimitIntervalUSec", "StartLimitBurst", "Wants", "After")
    assert "galaxy-containers.service" in agent.pop("Wants").split()
    assert "galaxy-containers.service" in agent.pop("After").split()
    assert agent == {"ActiveState": "active", "KillMode": "process", "Restart": "always",
                     "TimeoutStopUSec": f"{STOP_TIMEOUT}s", "ControlGroup": "/system.slice/galaxy-agent.service",
                     "UnitFileState": "enabled", "StartLimitIntervalUSec": "5min", "StartLimitBurst": "10"}
    # systemd took every line of the units (an unknown or misplaced key is only logged)
    logged = subprocess.run(["journalctl", "--no-pager", "-o", "cat", "-b"], capture_output=True,
                            text=True).stdout
    assert not [line for line in logged.splitlines() if "galaxy-" in line and "Unknown key" in line], logged
    holder = show(HOLDER, "ActiveState", "SubState", "Delegate", "ControlGroup", "UnitFileState")
    assert holder == {"ActiveState": "active", "SubState": "exited", "Delegate": "yes",
                      "ControlGroup": HOLDER_CGROUP, "UnitFileState": "enabled"}
    holder_dir = CGROUP / HOLDER_CGROUP.strip("/")
    assert {"cpu", "memory", "pids"} <= set((holder_dir / "cgroup.controllers").read_text().split())
    # what keeps the unit's cgroup: one process, in the leaf, none in the cgroup itself
    assert (holder_dir / "cgroup.procs").read_text() == ""
    assert len(cgroup_pids(f"{HOLDER_CGROUP}/holder")) == 1
    assert cgroup_of(main_pid()) == "/system.slice/galaxy-agent.service"


def test_agent_restart_and_sigkill_leave_its_containers_running(deployed: Deployment) -> None:
    body = {"id": "web.0a1b2c", "group": "web", "cpu": 0.25, "memory": 64 << 20, "user": "nobody",
            "argv": ["sleep", "600"]}
    created = deployed.request("container.create", body)
    assert created["state"] == "running", created
    pid = created["pid"]
    cgroup = cgroup_of(pid)
    assert cgroup.startswith(HOLDER_CGROUP + "/"), cgroup       # not in the Agent unit's cgroup
    assert pid in container_pids()
    say(f"container {body['id']}: PID {pid} in {cgroup}")

    for how in ("systemctl restart", "SIGKILL"):
        old = main_pid()
        restarts = int(show(AGENT, "NRestarts")["NRestarts"])
        before = deployed.registrations()
        if how == "SIGKILL":
            os.kill(old, signal.SIGKILL)               # Restart=always: systemd starts it again
        else:
            systemctl("restart", AGENT)                # systemd#24064 would fail here: 219/CGROUP
        wait_agent_back(old, f"the Agent back after {how}")
        again = deployed.wait_registered(before, f"re-registration after {how}")
        say(f"the Agent is back after {how}: PID {main_pid()} (was {old})")
        if how == "SIGKILL":
            assert int(show(AGENT, "NRestarts")["NRestarts"]) == restarts + 1
        os.kill(pid, 0)                                             # same process, still there
        assert cgroup_of(pid) == cgroup, how                        # same cgroup, not reaped
        assert show(HOLDER, "ActiveState")["ActiveState"] == "active"
        adopted = {c["id"]: c for c in again["containers"]}
        assert adopted["web.0a1b2c"]["state"] == "running" and adopted["web.0a1b2c"]["pid"] == pid, how

    gone = deployed.request("container.destroy", {"id": "web.0a1b2c"})
    assert gone == {"id": "web.0a1b2c", "destroyed": True}
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, interval=0.2, what="the container gone")
    assert container_pids() == []


def test_stop_is_clean(deployed: Deployment) -> None:
    pid = main_pid()
    started = time.monotonic()
    systemctl("stop", AGENT)
    took = time.monotonic() - started
    say(f"systemctl stop took {took:.1f} s")
    assert took < STOP_TIMEOUT, f"stop took {took:.1f} s (TimeoutStopSec={STOP_TIMEOUT})"
    state = show(AGENT, "ActiveState", "Result", "MainPID")
    assert state == {"ActiveState": "inactive", "Result": "success", "MainPID": "0"}
    assert not Path(f"/proc/{pid}").exists()
    # nothing of the unit left: no shim, no zygote, no helper (its containers were destroyed first)
    assert cgroup_pids("/system.slice/galaxy-agent.service") == []
    assert show(HOLDER, "ActiveState")["ActiveState"] == "active"
