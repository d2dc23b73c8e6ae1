"""Issue 13, "Must show": a hostile tenant against a real cluster.

An administrator makes two users with the CLI. `mallory` holds `job.create` and `job.read` on pool
`tenants` (read only to see her own pods' logs); `victim` runs a service in the same pool, on the
same host as most of the attacks. Mallory then submits jobs that each try one attack:

- the ones a job file asks for (bind a host path, run as root, fetch a package, add a capability)
  and the ones on another user's job must be refused at the CLI, with the field named, and leave no
  job behind;
- the others are batch jobs whose `start` runs the attack (tests/security/attacks.py) and prints one
  `BLOCKED …` / `GOT-THROUGH …` line per attempt, read back with `galaxy pod logs` as mallory.

All attack jobs are submitted together (one module fixture) and run side by side. At the end the
host (password files, kernel modules, mount table, clock, sysctls, hostname) and the victim (the
same service process, answering, its file unchanged) are compared with a snapshot taken before the
first attack, and every job is removed and the cluster leaves nothing on the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.coord import Paths
from galaxy.testing.cluster import LocalCluster
from tests.integration.helpers import (
    agent_cgroup,
    agent_named,
    endpoints,
    http_status,
    poll,
    resolve,
    service_pid,
)
from tests.security.attacks import ATTACKS, script

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.root]

POOL = "tenants"
NEAR = "victim-host"          # the label of agent-1: the victim and the attacks aimed at it run there
FAR = "elsewhere"             # the label of agent-2: every other attack (a finished batch container
                              # keeps its share of the host until removed, so placement is planned)
PORT_RANGE = "21000-21999"
LIVE = {"bind-unassigned-port"}                      # attack jobs that keep running until removed
# GALAXY_ATTACKS=fork-bomb,read-shadow runs only those (while working on one); default: all of them
CHOSEN = [n for n in ATTACKS if n in os.environ.get("GALAXY_ATTACKS", n).split(",")]
NEAR_VICTIM = {"kill-victim", "kill-everything", "ptrace-victim", "list-processes", "read-victim-files",
               "fork-bomb", "exhaust-memory", "read-init-environ", "bind-unassigned-port"}
BIGGER = {"fork-bomb": ("0.5", "512Mi"), "exhaust-memory": ("0.1", "64Mi")}
CPU = "0.05"


# ---- the CLI, as each user ----------------------------------------------------------------------------

def run(cluster: LocalCluster, user: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GALAXY_CONFIG": str(cluster.base / f"{user}.config")}
    return subprocess.run(["nsenter", f"--net=/run/netns/{cluster.control.name}", "--", sys.executable, "-m",
                           "galaxy.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env)


def ok(cluster: LocalCluster, user: str, *args: str, timeout: float = 60.0) -> str:
    done = run(cluster, user, *args, timeout=timeout)
    assert done.returncode == 0, f"[{user}] galaxy {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def as_json(cluster: LocalCluster, user: str, *args: str) -> Any:
    return json.loads(ok(cluster, user, *args, "--output", "json"))


def new_user(cluster: LocalCluster, name: str) -> None:
    key = cluster.base / "keys" / f"{name}-{uuid.uuid4().hex[:6]}.key"
    ok(cluster, "admin", "user", "create", name, "--key-out", str(key))
    (cluster.base / f"{name}.config").write_text(yaml.safe_dump(
        cluster.client_config(key, timeout=10.0)))


def write_job(cluster: LocalCluster, job: dict[str, Any]) -> str:
    path = cluster.base / "jobs" / f"{job['name']}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return str(path)


def zk_jobs(cluster: LocalCluster) -> list[str]:
    with cluster.zk() as client:
        path = Paths(cluster.cluster).state("jobs")
        return sorted(client.get_children(path)) if client.exists(path) else []


# ---- what must not change -------------------------------------------------------------------------

def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def host_mounts(base: Path) -> set[tuple[str, str, str]]:
    """The host's mount table (mount point, type, source) without what other test runs on this
    machine make and unmake meanwhile (network namespaces, their temp dirs)."""
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        point = left.split()[4].replace("\\040", " ")
        kind, source = right.split()[:2]
        foreign = point.startswith(("/run/netns", "/tmp/", "/var/tmp/")) and not point.startswith(str(base))
        if not foreign:
            out.add((point, kind, source))
    return out


def snapshot(cluster: LocalCluster) -> dict[str, Any]:
    files = ["/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/group", "/bin/sh", "/usr/bin/python3"]
    return {
        "files": {f: sha256(f) for f in files if os.path.exists(f)},
        "modules": (sorted(line.split()[0] for line in Path("/proc/modules").read_text().splitlines())
                    if os.path.exists("/proc/modules") else "a kernel without loadable modules"),
        "mounts": host_mounts(cluster.base),
        "sysctl": {p: Path(p).read_text() for p in ("/proc/sys/vm/overcommit_ratio", "/proc/sys/kernel/core_pattern",
                                                     "/proc/sys/kernel/modprobe", "/proc/sys/kernel/hostname",
                                                     "/proc/sys/kernel/domainname") if os.path.exists(p)},
        "clock": time.time() - time.monotonic(),
        "hostname": socket.gethostname(),
    }


# ---- the cluster, the users and the victim -----------------------------------------------------------

@dataclass
class Victim:
    pod: str
    host: str
    address: str
    port: int
    pid: int
    cmdline: str
    secret: str
    file: Path
    file_hash: str


@dataclass
class World:
    cluster: LocalCluster
    victim: Victim
    before: dict[str, Any]
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("galaxy-hostile")
    local = LocalCluster(base, agents=2, appmaster=1, agent_pools={1: POOL, 2: POOL}, agent_labels={1: [NEAR], 2: [FAR]},
                         port_range=PORT_RANGE, prefix=f"gxsec{uuid.uuid4().hex[:4]}")
    try:
        local.start()
        cgroups = [agent_cgroup(local, f"agent-{i}") for i in (1, 2)]
        yield local
    finally:
        with contextlib.suppress(Exception):
            remove_all(local)
        problems = local.stop()
        left = local.leftovers(cgroups) if "cgroups" in locals() else []
        assert not problems, f"teardown problems: {problems}"
        assert not left, f"left behind by the cluster: {left}"


def remove_all(cluster: LocalCluster, owner: str | None = None) -> None:
    """Remove every job (or every job of ``owner``) as the administrator and wait until they are gone."""
    jobs = [j for j in as_json(cluster, "admin", "job", "list") if owner is None or j.get("owner") == owner]
    for job in jobs:
        run(cluster, "admin", "job", "remove", job["job"])
    names = {j["job"] for j in jobs}
    poll("the removed jobs to be gone",
         lambda: not names & {j["job"] for j in as_json(cluster, "admin", "job", "list")}, timeout=120)


VICTIM_JOB = {
    "name": "victim-web", "pool": POOL, "replicas": 1,
    "resources": {"cpu": 0.1, "memory": "64Mi", "ports": [{"name": "http"}], "labels": [NEAR]},
    "program": {"version": "1",
                "start": 'echo "$VICTIM_SECRET" > state.txt && exec python3 -u -m http.server $GALAXY_PORT_HTTP',
                "health": {"tcp": "http", "interval": "1s"}},
}


def victim_state(cluster: LocalCluster) -> dict[str, Any]:
    row = as_json(cluster, "victim", "job", "show", "victim-web")
    (pod,) = row["pods"]
    return {"state": row["state"], "pod": pod["pod"], "host": pod["host"], "status": pod["status"],
            "restarts": pod.get("restarts")}


def fetch(address: str, port: int, path: str, host: Any) -> bytes | None:
    with host.netns():
        sock = socket.create_connection((address, port), timeout=3.0)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return body if b" 200 " in head.split(b"\r\n")[0] else None


@pytest.fixture(scope="module")
def world(cluster: LocalCluster) -> World:
    for name, grants in (("mallory", ["job.create", "job.read"]),
                         ("victim", ["job.create", "job.read", "job.update", "job.delete"])):
        new_user(cluster, name)
        ok(cluster, "admin", "user", "grant", name, POOL, *grants)
    secret = f"victim-{uuid.uuid4().hex}"
    job = {**VICTIM_JOB, "env": {"VICTIM_SECRET": secret}}
    ok(cluster, "victim", "job", "submit", write_job(cluster, job), "--wait", "--timeout", "120", timeout=150)
    state = victim_state(cluster)
    (address, port), = endpoints(resolve(cluster, "victim-web")).values()
    pid = poll("the victim's service process", lambda: service_pid(cluster, state["host"], state["pod"]), timeout=30)
    agent = agent_named(cluster, state["host"])
    body = poll("the victim to serve its file", lambda: fetch(address, port, "/state.txt", cluster.control))
    assert body.decode().strip() == secret
    home = cluster.base / agent / "state" / "containers" / state["pod"]
    found = list(home.glob("work/**/state.txt"))
    assert len(found) == 1, f"the victim's file is not under {home}: {found}"
    file = found[0]
    victim = Victim(pod=state["pod"], host=state["host"], address=address, port=port, pid=pid,
                    cmdline=Path(f"/proc/{pid}/cmdline").read_text(), secret=secret, file=file,
                    file_hash=sha256(str(file)))
    return World(cluster, victim, snapshot(cluster))


# ---- attacks that run: submitted together, read back with `galaxy pod logs` ----------------------------------

def attack_job(name: str, world: World) -> dict[str, Any]:
    cluster, victim = world.cluster, world.victim
    cpu, memory = BIGGER.get(name, (CPU, "64Mi"))
    site = sysconfig.get_paths()["purelib"]
    env = {"ATTACK": script(name), "VICTIM_PID": str(victim.pid), "VICTIM_FILE": str(victim.file),
           "KEYS_DIR": str(cluster.base / "keys"), "AGENT_CONFIG": str(cluster.base / "agent-1" / "config.yaml"),
           "AGENT_STATE": str(cluster.base / "agent-1" / "state"), "PORT_RANGE": PORT_RANGE,
           "PKG_DIR": str(Path(__import__("galaxy").__file__).parent), "VENV_SITE": site}
    resources: dict[str, Any] = {"cpu": float(cpu), "memory": memory}
    resources["labels"] = [NEAR if name in NEAR_VICTIM else FAR]
    if name == "fill-disk":
        resources["disks"] = [{"medium": "ssd", "size": "16Mi", "path": "/data"}]
    if name == "bind-unassigned-port":
        resources["ports"] = [{"name": "given"}]
    return {"name": f"atk-{name}", "type": "batch", "pool": POOL, "replicas": 1, "env": env,
            "resources": resources,
            "program": {"version": "1", "start": 'exec python3 -u -c "$ATTACK"'},
            "restart": {"max_retries": 0, "backoff": "1s..1s"}}


def pod_logs(cluster: LocalCluster, pod: str, stderr: bool = False) -> str:
    args = ["pod", "logs", pod, "--tail", "400"] + (["--stderr"] if stderr else [])
    done = run(cluster, "mallory", *args)
    return done.stdout if done.returncode == 0 else f"<pod logs failed: {done.stderr.strip()}>"


@pytest.fixture(scope="module")
def attacks(world: World) -> World:
    cluster = world.cluster
    files = {name: write_job(cluster, attack_job(name, world)) for name in CHOSEN}
    # One after another: submits side by side made the AppMaster's group.create to ResMan time out
    # under load and its retry hit "group … is being created by another call" (reported with the suite).
    for name, path in files.items():
        done = run(cluster, "mallory", "job", "submit", path)
        assert done.returncode == 0, f"mallory could not submit the {name} attack: {done.stderr}"

    def finished() -> dict[str, dict[str, Any]] | None:
        rows = {r["job"]: r for r in as_json(cluster, "mallory", "job", "list")}
        waiting = [n for n in CHOSEN if n not in LIVE and rows.get(f"atk-{n}", {}).get("state")
                   not in ("COMPLETED", "FAILED")]
        return None if waiting else rows
    try:
        poll("every attack job to finish", finished, timeout=240, interval=2.0)
    except AssertionError:
        pass    # each test below says what its attack did; one that never finished fails alone
    for name in CHOSEN:
        show = as_json(cluster, "mallory", "job", "show", f"atk-{name}")
        pods = show.get("pods") or []
        logs = "\n".join(pod_logs(cluster, p["pod"]) for p in pods)
        errs = "\n".join(pod_logs(cluster, p["pod"], stderr=True) for p in pods)
        world.outcomes[name] = {"state": show.get("state"), "pods": pods, "stdout": logs, "stderr": errs}
    return world


def verdicts(outcome: dict[str, Any]) -> dict[str, list[str]]:
    lines = outcome["stdout"].splitlines()
    return {tag: [line for line in lines if line.startswith(tag + " ")]
            for tag in ("BLOCKED", "GOT-THROUGH", "UNEXPECTED")}


def explain(name: str, outcome: dict[str, Any]) -> str:
    pods = [{k: p.get(k) for k in ("pod", "host", "status", "exit_code", "reason")} for p in outcome["pods"]]
    return (f"attack {name}: job {outcome['state']}, pods {pods}\n--- stdout ---\n{outcome['stdout']}\n"
            f"--- stderr ---\n{outcome['stderr'][-3000:]}")


RUN_INSIDE = sorted(set(CHOSEN) - LIVE)


KNOWN_BUGS = {
    "fork-bomb": "contained (pids and memory limits; host and victim untouched, see the last test), but the "
                 "bomb's container dies with its AppWorker and the job is replaced in a loop instead of the "
                 "pod reporting its end (docs/security.md, 'Known gaps')",
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_BUGS[n], strict=True))
                                  if n in KNOWN_BUGS else n for n in RUN_INSIDE])
def test_attack_inside_a_container_fails(attacks: World, name: str) -> None:
    outcome = attacks.outcomes[name]
    found = verdicts(outcome)
    print(explain(name, outcome))
    assert not found["GOT-THROUGH"], explain(name, outcome)
    assert not found["UNEXPECTED"], explain(name, outcome)
    assert found["BLOCKED"], f"no verdict printed\n{explain(name, outcome)}"
    assert "\nEND" in "\n" + outcome["stdout"], f"the attack did not run to its end\n{explain(name, outcome)}"
    assert outcome["state"] == "COMPLETED", explain(name, outcome)
    if name == "fill-disk":
        (pod,) = outcome["pods"]
        images = list(attacks.cluster.base.glob(f"agent-*/ssd/galaxy-*/{pod['pod']}/*.img"))
        assert images, "the disk image of the fill-disk attack is not on the host"
        for image in images:
            st = image.stat()
            assert st.st_size == 16 << 20 and st.st_blocks * 512 <= 16 << 20, f"{image}: {st}"


def connect(host: Any, address: str, port: int) -> str:
    """What a client on another test host gets from ``address:port``: the first bytes or the error."""
    with host.netns():
        sock = socket.socket()
    with sock:
        sock.settimeout(3.0)
        try:
            sock.connect((address, port))
            return sock.recv(64).decode(errors="replace") or "connected"
        except OSError as err:
            return f"{type(err).__name__}: {err}"


def listening(world: World) -> tuple[str, dict[str, int]]:
    cluster = world.cluster
    show = as_json(cluster, "mallory", "job", "show", "atk-bind-unassigned-port")
    (pod,) = show["pods"]

    def ready() -> dict[str, int] | None:
        for line in pod_logs(cluster, pod["pod"]).splitlines():
            if line.startswith("LISTENING "):
                return {k: int(v) for k, v in (w.split("=") for w in line.split()[1:]) if v != "None"}
        return None
    ports = poll("the port attack to listen", ready, timeout=60)
    address = cluster.state.agent_hosts[agent_named(cluster, pod["host"])]
    return address, ports


def test_attack_bind_unassigned_port_is_unreachable(attacks: World) -> None:
    """A port in the Agent's range the container was not given: bound, but no other host reaches it."""
    address, ports = listening(attacks)
    assert connect(attacks.cluster.control, address, ports["given"]).startswith("hostile"), \
        "the port it was given should answer (or this test proves nothing)"
    got = connect(attacks.cluster.control, address, ports["other"])
    print(f"port {ports['other']} (in range, not given): {got}")
    assert not got.startswith("hostile"), f"port {ports['other']} was not given, yet answers from another host"


def test_attack_bind_port_outside_the_range_is_unreachable(attacks: World) -> None:
    """A port outside the Agent's range: no container was given it either."""
    address, ports = listening(attacks)
    assert "outside" in ports, f"could not bind any port outside the range: {ports}"
    got = connect(attacks.cluster.control, address, ports["outside"])
    print(f"port {ports['outside']} (outside the range {PORT_RANGE}): {got}")
    assert not got.startswith("hostile"), (
        f"port {ports['outside']} (outside the Agent's range {PORT_RANGE}) was never given to the container, "
        f"yet answers from another host: {got!r}")


# ---- attacks refused at submit ---------------------------------------------------------------------------

BASE_JOB = {"pool": POOL, "replicas": 1, "type": "batch", "resources": {"cpu": 0.1, "memory": "64Mi"},
            "program": {"version": "1", "start": "cat /host/etc/shadow"}}

REFUSED = {
    "bind-root": ({"resources": {"mounts": [{"host": "/", "path": "/host", "readonly": False}]}},
                  "resources.mounts[0].host"),
    "bind-etc": ({"resources": {"mounts": [{"host": "/etc", "path": "/host/etc"}]}}, "resources.mounts[0].host"),
    "bind-etc-galaxy": ({"resources": {"mounts": [{"host": "/etc/galaxy", "path": "/host/galaxy"}]}},
                        "resources.mounts[0].host"),
    "bind-var-lib-galaxy": ({"resources": {"mounts": [{"host": "/var/lib/galaxy", "path": "/host/state"}]}},
                            "resources.mounts[0].host"),
    "bind-cluster-keys": ({"resources": {"mounts": [{"host": "KEYS", "path": "/host/keys"}]}},
                          "resources.mounts[0].host"),
    "bind-proc": ({"resources": {"mounts": [{"host": "/proc/1/root", "path": "/host"}]}}, "resources.mounts[0].host"),
    "run-as-root": ({"user": "root"}, "user"),
    "package-file-shadow": ({"program": {"package": "file:///etc/shadow"}}, "program.package"),
    "package-file-keys": ({"program": {"package": "file://KEYS/admin.key"}}, "program.package"),
    "package-http": ({"program": {"package": "http://10.0.0.1/evil.tar.gz"}}, "program.package"),
    "data-package-shadow": ({"program": {"data": {"package": "file:///etc/shadow"}}}, "program.data.package"),
    "add-sys-admin": ({"capabilities": ["SYS_ADMIN"]}, "capabilities[0]"),
    "add-net-admin": ({"capabilities": ["CAP_NET_ADMIN"]}, "capabilities[0]"),
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_attack_refused_at_submit(world: World, name: str) -> None:
    cluster = world.cluster
    extra, field_name = REFUSED[name]
    job = merged({**BASE_JOB, "name": f"sub-{name}"}, json.loads(json.dumps(extra).replace("KEYS", str(cluster.base / "keys"))))
    before = zk_jobs(cluster)
    done = run(cluster, "mallory", "job", "submit", write_job(cluster, job))
    print(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
    assert done.returncode != 0, f"{name} was accepted: {done.stdout}"
    assert f"error: {field_name}" in done.stderr, f"the field {field_name} is not named: {done.stderr}"
    assert zk_jobs(cluster) == before, "a refused submit left a job behind"
    assert job["name"] not in {j["job"] for j in as_json(cluster, "admin", "job", "list")}
    assert run(cluster, "admin", "job", "show", job["name"]).returncode != 0


VERBS = {"stop-victim-job": ("job", "stop", "victim-web"), "remove-victim-job": ("job", "remove", "victim-web"),
         "scale-victim-job": ("job", "scale", "victim-web", "0"),
         "exec-in-victim-job": ("job", "exec", "victim-web", "--", "cat", "state.txt")}


@pytest.mark.parametrize("name", sorted(VERBS))
def test_attack_on_the_victims_job_is_refused(world: World, name: str) -> None:
    done = run(world.cluster, "mallory", *VERBS[name])
    print(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
    assert done.returncode != 0, f"mallory's {name} succeeded: {done.stdout}"
    assert "job.update" in done.stderr or "job.delete" in done.stderr, done.stderr
    assert world.victim.secret not in done.stdout + done.stderr


# ---- the end: nothing on the host or in the victim changed ------------------------------------------------

def test_host_and_victim_untouched(attacks: World) -> None:
    cluster, victim = attacks.cluster, attacks.victim
    remove_all(cluster, owner="mallory")
    poll("mallory's containers to be gone",
         lambda: not any(p for p in (cluster.base).glob("agent-*/state/containers/*")
                         if p.name != victim.pod and not p.name.startswith(".")),  # .ext4-*.template: the Agent's
         timeout=60)
    now = snapshot(cluster)
    before = attacks.before
    assert now["files"] == before["files"], "host files changed"
    assert now["modules"] == before["modules"], "kernel modules changed"
    assert now["sysctl"] == before["sysctl"], "host sysctls changed"
    assert now["hostname"] == before["hostname"]
    assert abs(now["clock"] - before["clock"]) < 2.0, f"the host clock moved by {now['clock'] - before['clock']:.1f} s"
    assert now["mounts"] - before["mounts"] == set(), f"mounts left on the host: {now['mounts'] - before['mounts']}"
    assert before["mounts"] - now["mounts"] == set(), f"host mounts gone: {before['mounts'] - now['mounts']}"
    # the victim: the same process, answering, with its file as it wrote it
    state = victim_state(cluster)
    assert state["state"] == "RUNNING" and state["status"] == "RUNNING", state
    assert state["pod"] == victim.pod and not state["restarts"], state
    assert Path(f"/proc/{victim.pid}/cmdline").read_text() == victim.cmdline, "the victim's service was replaced"
    assert service_pid(cluster, victim.host, victim.pod) == victim.pid
    assert http_status(cluster.control, victim.address, victim.port) == 200
    assert (fetch(victim.address, victim.port, "/state.txt", cluster.control) or b"").decode().strip() == victim.secret
    assert sha256(str(victim.file)) == victim.file_hash
    assert not list(victim.file.parent.glob("galaxy-hostile*"))
