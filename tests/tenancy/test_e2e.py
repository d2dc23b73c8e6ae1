"""Issue 8, "Must show", on a real cluster: users made with the CLI, their keys, grants and quotas
checked at the AppMaster and ResMan, and usage metered from the Agents' cgroups.

Everything goes through the `galaxy` CLI inside the control host, as users and an administrator
would; what must not exist is checked in ZooKeeper itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.coord import Paths
from galaxy.mesh import Keypair
from galaxy.testing.cluster import LocalCluster
from tests.integration.helpers import agent_cgroup, poll

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

BUSY = """\
name: NAME
replicas: 1
resources: {cpu: CPU, memory: 64Mi}
program:
  version: "1"
  start: 'python3 -c "while True{colon} pass"'
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("galaxy-tenancy")
    saved = os.environ.get("GALAXY_RESMAN_USAGE_FLUSH")
    os.environ["GALAXY_RESMAN_USAGE_FLUSH"] = "1"        # the daemons inherit it: usage written each second
    local = LocalCluster(base, agents=2, appmaster=1, prefix=f"gxten{uuid.uuid4().hex[:4]}")
    try:
        local.start()
        cgroups = [agent_cgroup(local, f"agent-{i}") for i in (1, 2)]
        yield local
    finally:
        if saved is None:
            os.environ.pop("GALAXY_RESMAN_USAGE_FLUSH", None)
        else:
            os.environ["GALAXY_RESMAN_USAGE_FLUSH"] = saved
        problems = local.stop()
        left = local.leftovers(cgroups) if "cgroups" in locals() else []
        assert not problems, f"teardown problems: {problems}"
        assert not left, f"left behind by the cluster: {left}"


def run(cluster: LocalCluster, user: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GALAXY_CONFIG": str(cluster.base / f"{user}.config")}
    return subprocess.run(["nsenter", f"--net=/run/netns/{cluster.control.name}", "--", sys.executable, "-m",
                           "galaxy.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env)


def ok(cluster: LocalCluster, user: str, *args: str) -> str:
    done = run(cluster, user, *args)
    assert done.returncode == 0, f"[{user}] galaxy {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def refused(cluster: LocalCluster, user: str, *args: str) -> str:
    done = run(cluster, user, *args)
    assert done.returncode != 0, f"[{user}] galaxy {' '.join(args)} should have failed: {done.stdout}"
    return done.stderr


def as_json(cluster: LocalCluster, user: str, *args: str) -> Any:
    return json.loads(ok(cluster, user, *args, "--output", "json"))


def config_for(cluster: LocalCluster, user: str, key: Path, timeout: float = 4.0) -> None:
    (cluster.base / f"{user}.config").write_text(yaml.safe_dump(
        cluster.client_config(key, timeout=timeout)))


def new_user(cluster: LocalCluster, name: str, *extra: str) -> Path:
    key = cluster.base / "keys" / f"{name}-{uuid.uuid4().hex[:6]}.key"
    ok(cluster, "admin", "user", "create", name, "--key-out", str(key), *extra)
    config_for(cluster, name, key)
    return key


def job_file(cluster: LocalCluster, name: str, cpu: float, pool: str = "default") -> str:
    path = cluster.base / f"{name}.yaml"
    text = BUSY.replace("NAME", name).replace("CPU", f"{cpu:g}").replace("{colon}", ":")
    path.write_text(text + f"pool: {pool}\n")
    return str(path)


def zk_jobs(cluster: LocalCluster) -> list[str]:
    with cluster.zk() as client:
        path = Paths(cluster.cluster).state("jobs")
        return sorted(client.get_children(path)) if client.exists(path) else []


def test_authority_quota_and_usage(cluster: LocalCluster) -> None:
    ok(cluster, "admin", "pool", "create", "prod")
    new_user(cluster, "alice")
    new_user(cluster, "bob")
    ok(cluster, "admin", "user", "grant", "alice", "default", "job.create", "job.read", "job.update", "job.delete")
    ok(cluster, "admin", "user", "quota", "set", "alice", "--cpu", "0.5", "--jobs", "2")

    # a user without a grant can do nothing in a pool
    assert "job.create" in refused(cluster, "alice", "job", "submit", job_file(cluster, "p1", 0.1, pool="prod"))
    assert "job.create" in refused(cluster, "bob", "job", "submit", job_file(cluster, "b1", 0.1))
    ok(cluster, "alice", "job", "submit", job_file(cluster, "busy", 0.2), "--wait", "--timeout", "120")
    assert "job.read" in refused(cluster, "bob", "job", "show", "busy")
    assert "job.delete" in refused(cluster, "bob", "job", "remove", "busy")
    # ... and with a grant on the pool, still not on another user's job
    ok(cluster, "admin", "user", "grant", "bob", "default", "job.read", "job.update", "job.delete")
    assert as_json(cluster, "bob", "job", "show", "busy")["owner"] == "alice"
    assert "alice" in refused(cluster, "bob", "job", "stop", "busy")
    assert "alice" in refused(cluster, "bob", "job", "remove", "busy")
    # administrators' verbs are refused to users
    refused(cluster, "alice", "user", "create", "eve", "--key-out", str(cluster.base / "eve.key"))
    refused(cluster, "alice", "user", "grant", "alice", "prod", "job.create")

    # quota: submit, scale and update that would pass it fail with the figures, and leave nothing
    before = zk_jobs(cluster)
    err = refused(cluster, "alice", "job", "submit", job_file(cluster, "big", 0.4))
    assert "asked 0.4 cores, used 0.2 cores, limit 0.5 cores" in err, err
    assert zk_jobs(cluster) == before and "big" not in ok(cluster, "alice", "job", "list")
    err = refused(cluster, "alice", "job", "scale", "busy", "3")
    assert "asked 0.4 cores, used 0.2 cores, limit 0.5 cores" in err, err
    err = refused(cluster, "alice", "job", "update", "busy", job_file(cluster, "busy", 0.6))
    assert "asked 0.4 cores, used 0.2 cores, limit 0.5 cores" in err, err
    assert as_json(cluster, "alice", "job", "show", "busy")["replicas"] == 1
    shown = as_json(cluster, "alice", "user", "quota", "show")
    assert shown["limit"]["cpu"] == 0.5 and shown["used"]["cpu"] == pytest.approx(0.2)

    # usage grows while the busy service runs ...
    def cpu_used() -> float:
        report = as_json(cluster, "alice", "user", "usage", "--pool", "default")
        return float(report["total"]["cpu_used"])
    first = poll("alice's cpu use metered", lambda: cpu_used() or None, timeout=60)
    poll("alice's cpu use to grow", lambda: cpu_used() > first + 1.0, timeout=60)
    assert as_json(cluster, "alice", "user", "usage")["total"]["cpu_reserved"] > 0
    # ... and stops when it stops
    ok(cluster, "alice", "job", "stop", "busy")
    poll("busy to stop", lambda: as_json(cluster, "alice", "job", "show", "busy")["state"] == "STOPPED")

    def settled() -> float | None:
        a = cpu_used()
        time.sleep(3.0)                          # three flushes: a running service adds ~0.6 core-s
        return a if abs(cpu_used() - a) < 0.05 else None
    poll("cpu use to stop growing", settled, timeout=60)
    ok(cluster, "alice", "job", "remove", "busy")


def test_removed_and_unknown_keys_get_no_answer(cluster: LocalCluster) -> None:
    old_key = new_user(cluster, "carol")
    ok(cluster, "admin", "user", "grant", "carol", "default", "job.read")
    ok(cluster, "carol", "job", "list")
    ok(cluster, "admin", "user", "remove", "carol")
    err = refused(cluster, "carol", "job", "list")               # the very next request
    assert "timeout" in err.lower() or "no answer" in err.lower() or "unreachable" in err.lower(), err

    new_user(cluster, "carol")                                   # a new key for the same name works ...
    ok(cluster, "admin", "user", "grant", "carol", "default", "job.read")
    ok(cluster, "carol", "job", "list")
    config_for(cluster, "carol-old", old_key)                   # ... the old one stays refused
    refused(cluster, "carol-old", "job", "list")

    stranger = cluster.base / "keys" / "stranger.key"
    Keypair.generate().save(str(stranger))
    config_for(cluster, "stranger", stranger)
    err = refused(cluster, "stranger", "job", "list")
    assert "timeout" in err.lower() or "no answer" in err.lower() or "unreachable" in err.lower(), err


PACKAGED = """\
name: NAME
replicas: 1
resources: {cpu: 0.1, memory: 64Mi}
program:
  version: "1"
  package: PACKAGE
  deploy: tar xzf app.tgz
  start: sh ./run.sh
"""


def test_pool_policy_refuses_at_submit_and_binds_its_package_directory(cluster: LocalCluster) -> None:
    """Issue 13, item 3: the administrator's policy, the user's refused submit naming the field, and a
    file:// package from an allowed directory deployed through the read-only bind the Agent adds."""
    import io
    import shutil
    import tarfile
    import tempfile

    new_user(cluster, "dora")
    ok(cluster, "admin", "user", "grant", "dora", "default", "all")
    packages = Path(tempfile.mkdtemp(prefix="galaxy-e2e-packages-", dir="/var/tmp"))   # /tmp: the container's own
    try:
        script = b"echo deployed from an allowed package directory; exec sleep 600\n"
        with tarfile.open(packages / "app.tgz", "w:gz") as tar:
            info = tarfile.TarInfo("run.sh")
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
        packages.chmod(0o755)
        (packages / "app.tgz").chmod(0o644)

        def packaged(name: str, url: str) -> str:
            path = cluster.base / f"{name}.yaml"
            path.write_text(PACKAGED.replace("NAME", name).replace("PACKAGE", url))
            return str(path)

        before = zk_jobs(cluster)
        err = refused(cluster, "dora", "job", "submit", packaged("pkg", f"file://{packages}/app.tgz"))
        assert "program.package: pool 'default' policy allows no package from" in err, err
        assert "rule package_sources: none allowed" in err and zk_jobs(cluster) == before
        assert "administrator" in refused(cluster, "dora", "pool", "policy", "set", "default",
                                          "--package-sources", f"file://{packages}")
        ok(cluster, "admin", "pool", "policy", "set", "default", "--package-sources", f"file://{packages}")
        assert as_json(cluster, "dora", "pool", "policy", "show", "default")["package_sources"] == [
            f"file://{packages}"]
        err = refused(cluster, "dora", "job", "submit", packaged("shadow", "file:///etc/shadow"))
        assert "built-in deny list" in err and zk_jobs(cluster) == before

        ok(cluster, "dora", "job", "submit", packaged("pkg", f"file://{packages}/app.tgz"))

        def running() -> bool:
            return bool(as_json(cluster, "dora", "job", "show", "pkg")["state"] == "RUNNING")
        poll("the packaged job to run", running, timeout=120)
        ok(cluster, "dora", "job", "remove", "pkg")
    finally:
        ok(cluster, "admin", "pool", "policy", "set", "default")
        shutil.rmtree(packages, ignore_errors=True)
