"""Fixtures for the Agent: a test host (network namespace) whose iptables and ports are its own, a
host disk in a temp dir, and a ContainerManager that is torn down whatever the test did."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy.agent.containers import ContainerManager
from galaxy.daemon.config import AgentSettings, HostDiskConfig
from galaxy.testing.netns import TestNetwork, require_netns

DISK_CAPACITY = 256 << 20


@pytest.fixture
def net() -> Iterator[TestNetwork]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    require_netns()
    with TestNetwork(hosts=2) as network:
        yield network


@pytest.fixture
def agent_dirs() -> Iterator[dict[str, str]]:
    base = Path(tempfile.mkdtemp(prefix="galaxy-test-agent-"))
    dirs = {"state": str(base / "state"), "ssd": str(base / "ssd"), "base": str(base)}
    for key in ("state", "ssd"):
        os.makedirs(dirs[key])
    yield dirs
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
               if line.split()[1].startswith(str(base))]
    for point in sorted(mounted, reverse=True):  # never rmtree through a mount
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(base, ignore_errors=True)


def settings_for(dirs: dict[str, str], **overrides: object) -> AgentSettings:
    fields: dict[str, object] = dict(
        pool="test", labels=("ssd",), disks=(HostDiskConfig(dirs["ssd"], "ssd", DISK_CAPACITY),),
        port_range=(21000, 21049), reserved_cpu=0.0, reserved_memory=0)
    fields.update(overrides)
    return AgentSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def agent_id() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def manager(net: TestNetwork, agent_dirs: dict[str, str], agent_id: str) -> Iterator[ContainerManager]:
    """A ContainerManager driven from this thread while it is inside test host 1's network namespace."""
    host = net.host(1)
    with host.netns():
        mgr = ContainerManager(agent_id, agent_dirs["state"], settings_for(agent_dirs))
        mgr.start()
        try:
            yield mgr
        finally:
            mgr.purge()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestNetwork, Any, Path]]:
    """A test host with a stand-in ResMan (tests/agent/test_daemon.py's FakeResMan) for a real Agent daemon."""
    from tests.agent.test_daemon import FakeResMan

    if os.geteuid() != 0:
        pytest.skip("needs root")
    with TestNetwork(hosts=1) as net:
        resman = FakeResMan(net.host(1), tmp_path)
        try:
            yield net, resman, tmp_path
        finally:
            resman.close()
