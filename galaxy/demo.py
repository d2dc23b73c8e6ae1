"""`make demo` / `make demo-down`: a whole Galaxy cluster on this machine, left running for the user.

`up` starts ZooKeeper, two ResMan and two AppMaster replicas on a control test host and three Agents on
three more test hosts (network namespaces with their own addresses), writes `~/.galaxy/config` so the
next `galaxy …` command reaches it, submits `examples/web.yaml` and waits until it runs. `down` ends
every process by PID, removes every container the Agents made and deletes the namespaces.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import yaml

from galaxy.errors import GalaxyError
from galaxy.testing.cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
BASE = Path(os.environ.get("GALAXY_DEMO_DIR", REPO / ".demo"))
USER_CONFIG = Path(os.environ.get("GALAXY_CONFIG", Path.home() / ".galaxy" / "config"))
EXAMPLE = REPO / "examples" / "web.yaml"
PREFIX = os.environ.get("GALAXY_DEMO_PREFIX", "demo")   # network namespaces are galaxy-<prefix>-*


def up() -> int:
    if (BASE / "cluster.json").exists():
        print(f"a demo cluster is recorded in {BASE}; run `make demo-down` first", file=sys.stderr)
        return 1
    print("starting ZooKeeper, 2 ResMan, 2 AppMaster and 3 Agents on network-namespace test hosts …")
    cluster = LocalCluster(BASE, agents=3, resman=2, appmaster=2, cluster="demo", detached=True,
                           session_timeout=6.0, prefix=PREFIX, agent_labels={1: ["ssd"], 2: ["ssd"], 3: []})
    cluster.start(timeout=90)
    write_user_config(cluster)
    print(f"cluster up; `galaxy` is configured through {USER_CONFIG}\n")
    for host in cluster.hosts():
        free = host.get("free", {})
        print(f"  agent {host['id']:<8} {host.get('address', ''):<12} pool={host.get('pool')} "
              f"cpu free={free.get('cpu')} memory free={free.get('memory', 0) >> 20}Mi")
    if cluster.counts["appmaster"]:
        return run_sample_job(cluster)
    return 0


def run_sample_job(cluster: LocalCluster) -> int:
    print(f"\nsubmitting {EXAMPLE.relative_to(REPO)} …")
    done = cluster.cli("job", "submit", str(EXAMPLE), "--wait", timeout=300)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    name = yaml.safe_load(EXAMPLE.read_text())["name"]
    show = cluster.cli("job", "show", name)
    sys.stdout.write(show.stdout)
    print("\nendpoints (from ZooKeeper naming):")
    with cluster.zk() as client:
        from galaxy.coord import Naming, Paths

        for pod, record in sorted(Naming(client, Paths(cluster.cluster)).resolve(name).items()):
            ports = record.get("ports", {})
            print(f"  {pod:<24} {record.get('address')}:{ports.get('http')}  {record.get('status')}")
    print("\ntry: galaxy job list · galaxy pod list web · galaxy status · make demo-down")
    return 0


def write_user_config(cluster: LocalCluster) -> None:
    """Point the user's CLI at the demo; keep an existing config aside and put it back on `down`."""
    USER_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    if USER_CONFIG.exists() and not _is_demo_config(USER_CONFIG):
        shutil.copy(USER_CONFIG, BASE / "previous-user-config")
    # netns: the demo's control plane lives in this network namespace
    USER_CONFIG.write_text(yaml.safe_dump(cluster.client_config(BASE / "keys" / "admin.key",
                                                                netns=cluster.control.name), sort_keys=False))


def _is_demo_config(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and str(data.get("key", "")).startswith(str(BASE) + os.sep)


def down() -> int:
    if not (BASE / "cluster.json").exists():
        print("no demo cluster is up")
        return 0
    cluster = LocalCluster.load(BASE)
    problems = cluster.stop()
    if USER_CONFIG.exists() and _is_demo_config(USER_CONFIG):
        previous = BASE / "previous-user-config"
        if previous.exists():
            shutil.copy(previous, USER_CONFIG)
        else:
            USER_CONFIG.unlink()
    if problems:
        print("demo down left problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        (BASE / "down-problems.json").write_text(json.dumps(problems))
        return 1
    shutil.rmtree(BASE, ignore_errors=True)
    print("demo cluster removed")
    return 0


def main(argv: list[str]) -> int:
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # a dropped first connection is not news here
    if argv[:1] == ["up"]:
        try:
            return up()
        except GalaxyError as err:
            print(f"demo: error: {err}", file=sys.stderr)
            return 1
    if argv[:1] == ["down"]:
        return down()
    print("usage: python -m galaxy.demo up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
