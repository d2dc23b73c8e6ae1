"""`make demo` then `make demo-down`, as a user runs them: the sample job runs, the CLI configured by
the demo reaches the cluster, and nothing is left afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy.testing.netns import require_netns

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_up_runs_the_sample_job_and_down_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    require_netns()
    prefix = f"dt{os.getpid()}"
    env = {**os.environ, "GALAXY_DEMO_DIR": str(tmp_path / "demo"), "GALAXY_DEMO_PREFIX": prefix,
           "GALAXY_CONFIG": str(tmp_path / "config")}
    try:
        up = run([sys.executable, "-m", "galaxy.demo", "up"], env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "web" in up.stdout and "RUNNING" in up.stdout
        assert up.stdout.count(":21000") + up.stdout.count(":2100") >= 3  # three endpoints printed
        listed = run([sys.executable, "-m", "galaxy.cli.main", "job", "list", "--output", "json"], env, 60)
        assert listed.returncode == 0, listed.stderr
        jobs = {j["job"]: j for j in json.loads(listed.stdout)}
        assert jobs["web"]["state"] == "RUNNING" and jobs["web"]["running"] == 3
    finally:
        down = run([sys.executable, "-m", "galaxy.demo", "down"], env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (tmp_path / "demo").exists()
    assert not (tmp_path / "config").exists()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"galaxy-{prefix}-" not in namespaces
    procs = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True).stdout
    assert procs.strip() == ""
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in loops
