"""What the multi-host tests do as a user or an operator would: run the CLI, read naming, probe
services from another test host, and find a pod's processes in its container's cgroup."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from galaxy.coord import Naming, Paths
from galaxy.testing.cluster import LocalCluster
from galaxy.testing.netns import TestHost

T = TypeVar("T")

SERVICE = """\
name: NAME
replicas: REPLICAS
max_per_host: 1
resources:
  cpu: 0.05
  memory: 64Mi
  ports: [{name: http}]
program:
  version: "VERSION"
  start: python3 -u -m http.server $GALAXY_PORT_HTTP
  health: {tcp: http, interval: 1s}
update: {step: 1, pause_between: PAUSEs, max_failures: 1}
restart: {max_retries: 5, backoff: 1s..2s}
"""


def service_spec(name: str, *, replicas: int = 3, version: str = "1", pause: float = 1.0) -> str:
    """A job file of an http.server service (the version is only a label: updates restart in place)."""
    return (SERVICE.replace("NAME", name).replace("REPLICAS", str(replicas)).replace("VERSION", version)
            .replace("PAUSE", f"{pause:g}"))


def write_spec(directory: Path, text: str, name: str) -> str:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def ok(cluster: LocalCluster, *args: str) -> str:
    done = cluster.cli(*args)
    assert done.returncode == 0, f"galaxy {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def as_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(ok(cluster, *args, "--output", "json"))


def poll(what: str, check: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def resolve(cluster: LocalCluster, job: str) -> dict[str, dict[str, Any]]:
    """The job's instances as any client finds them: ``naming/<job>/<pod>`` in ZooKeeper."""
    with cluster.zk() as client:
        return Naming(client, Paths(cluster.cluster)).resolve(job)


def endpoints(records: dict[str, dict[str, Any]], port: str = "http") -> dict[str, tuple[str, int]]:
    return {pod: (r["address"], int(r["ports"][port])) for pod, r in records.items()}


def http_status(host: TestHost, address: str, port: int, timeout: float = 2.0) -> int | None:
    """GET / from inside ``host``'s namespace: the HTTP status code, or None if nothing answered."""
    with host.netns():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            sock.sendall(b"GET / HTTP/1.0\r\nHost: galaxy-test\r\n\r\n")
            head = sock.recv(64)
        except OSError:
            return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def answering(host: TestHost, targets: dict[str, tuple[str, int]], timeout: float = 1.0) -> set[str]:
    """The pods among ``targets`` whose service answers GET / with 200."""
    return {pod for pod, (address, port) in targets.items() if http_status(host, address, port, timeout) == 200}


# ---- processes of a pod ------------------------------------------------------------------------------

def agent_named(cluster: LocalCluster, host: str) -> str:
    """The Agent component (``agent-2``) of a pod's ``host`` (the Agent's id or address)."""
    for name, address in cluster.state.agent_hosts.items():
        if host in (address, agent_id(cluster, name)):
            return name
    raise AssertionError(f"no agent at {host!r}")


def agent_id(cluster: LocalCluster, agent: str) -> str:
    config = yaml.safe_load((cluster.base / agent / "config.yaml").read_text())
    return str(config["id"])


def agent_cgroup(cluster: LocalCluster, agent: str) -> Path:
    """The pids-controller cgroup under which ``agent`` puts its containers.

    The Agent nests its containers under its own cgroup (``<its cgroup>/galaxy-<id>/<container>``),
    so the path is found from the Agent's ``/proc/<pid>/cgroup``.
    """
    pid = cluster.state.components[agent].pid
    assert pid is not None, f"{agent} is not running"
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return Path("/sys/fs/cgroup/pids") / path.lstrip("/") / f"galaxy-{agent_id(cluster, agent)}"
    raise AssertionError(f"{agent} has no pids cgroup")


def container_cgroup(cluster: LocalCluster, host: str, pod: str) -> Path:
    """The pids-controller cgroup of ``pod``'s container (the pod id is the container id)."""
    return agent_cgroup(cluster, agent_named(cluster, host)) / pod


def cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for directory, _, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            text = (Path(directory) / "cgroup.procs").read_text()
            pids += [int(p) for p in text.split()]
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pod_processes(cluster: LocalCluster, host: str, pod: str, needle: str) -> list[int]:
    """PIDs (host view) in the pod's container whose command line contains ``needle``."""
    cgroup = container_cgroup(cluster, host, pod)
    if not cgroup.exists():
        return []
    return sorted(pid for pid in cgroup_pids(cgroup) if needle in cmdline(pid))


def service_pid(cluster: LocalCluster, host: str, pod: str) -> int | None:
    """The PID of the pod's http.server (not a shell around it), or None while none runs."""
    found = [pid for pid in pod_processes(cluster, host, pod, "http.server") if cmdline(pid).startswith("python")]
    return found[-1] if found else None
