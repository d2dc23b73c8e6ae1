"""The Agent's containers on the real kernel: cgroups, namespaces, loop disks, ports in a test host."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from galaxy.agent.containers import ContainerManager
from galaxy.errors import Conflict, InvalidInput, ResourceUnavailable
from galaxy.isolate import IsolateError
from galaxy.protocol import ContainerRequest
from galaxy.testing.netns import TestHost, TestNetwork, wait_until
from tests.agent.conftest import settings_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

SERVE = 'cd /data && echo hello > hello.txt && exec python3 -m http.server "$GALAXY_PORT_HTTP" --bind 0.0.0.0'


def request(cid: str, argv: list[str] | None = None, **extra: Any) -> ContainerRequest:
    body: dict[str, Any] = {
        "id": cid, "group": "web", "cpu": 0.5, "memory": 128 << 20, "user": "nobody",
        "argv": argv or ["sh", "-c", SERVE],
        "disks": [{"medium": "ssd", "size": 32 << 20, "path": "/data"}],
        "ports": [{"name": "http"}],
    }
    body.update(extra)
    return ContainerRequest.from_wire(body)


def leftovers(mgr: ContainerManager, cid: str) -> list[str]:
    """Everything a container could leave on the host, described; empty when clean."""
    found = []
    if mgr.driver.exists(mgr.cgroup_name(cid)):
        found.append(f"cgroup {mgr.cgroup_name(cid)}")
    cdir = str(mgr.container_dir(cid))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if cdir in line:
            found.append(f"mount {line.split()[4]}")
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    found += [f"loop {ln}" for ln in loops.splitlines() if f"/{cid}/" in ln]
    rules = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True).stdout
    found += [f"rule {ln}" for ln in rules.splitlines() if f"galaxy:{cid}" in ln]
    if (mgr.store.dir / f"{cid}.json").exists():
        found.append("record")
    return found


def test_create_serves_on_its_port_and_destroy_leaves_nothing(manager: ContainerManager,
                                                              net: TestNetwork) -> None:
    info = manager.create(request("web-0"))
    assert info["state"] == "running"
    port = info["ports"]["http"]
    assert 21000 <= port <= 21049
    other = net.host(2)
    wait_until(lambda: other.tcp_probe(net.host(1).address, port, timeout=0.5) == "open", timeout=30,
               what=f"the service to answer on {port}")
    # the same container id asked again (a retried create) is the same container, not a second one
    assert manager.create(request("web-0"))["pid"] == info["pid"]
    usage = manager.describe("web-0", usage=True)["usage"]
    assert usage["memory"] > 0
    assert manager.destroy("web-0") is True
    assert leftovers(manager, "web-0") == []
    assert other.tcp_probe(net.host(1).address, port) != "open"
    assert manager.destroy("web-0") is False


LISTEN_ALL = """
import socket, sys, threading, time
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen()
    while True:
        conn = s.accept()[0]
        conn.sendall(b"hostile")
        conn.close()
for port in map(int, sys.argv[1:]):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
time.sleep(120)
"""


def fetch(host: TestHost, address: str, port: int) -> bytes:
    """What a peer receives from ``address:port`` within a second (b"" for nothing at all)."""
    with host.netns():
        sock = socket.socket()
    with sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, port))
            return sock.recv(64)
        except OSError:
            return b""


def test_a_container_answers_only_on_the_ports_it_was_given(manager: ContainerManager, net: TestNetwork) -> None:
    """Containers share the host's network: a service may listen on any free port, but only on the
    ports it was given does anything it sends reach another host, outside the Agent's range as much
    as inside it; its own outgoing connections are untouched."""
    argv = ["sh", "-c", 'exec python3 -c "$0" "$GALAXY_PORT_HTTP" 21048 41999', LISTEN_ALL]
    info = manager.create(request("listen-0", argv, disks=[]))
    given = info["ports"]["http"]
    other, address = net.host(2), net.host(1).address
    wait_until(lambda: fetch(other, address, given) == b"hostile", timeout=30, what=f"port {given} to serve")
    assert fetch(other, address, 21048) == b""      # in the range, not given
    assert fetch(other, address, 41999) == b""      # outside the range
    assert manager.destroy("listen-0") is True
    assert leftovers(manager, "listen-0") == []


def test_exit_is_noticed_with_its_code(manager: ContainerManager) -> None:
    manager.create(request("batch-0", ["sh", "-c", "exit 3"], disks=[], ports=[]))
    exited = wait_until(lambda: [c for c in manager.poll() if c["id"] == "batch-0"], timeout=20,
                        what="container exit")
    assert exited[0]["state"] == "exited" and exited[0]["exit"]["exit_code"] == 3


def test_restart_readopts_running_containers(manager: ContainerManager, agent_dirs: dict[str, str],
                                             agent_id: str) -> None:
    first = manager.create(request("web-1"))
    manager.ports.close(remove_rules=False)  # the Agent dies; its containers and rules stay
    again = ContainerManager(agent_id, agent_dirs["state"], settings_for(agent_dirs))
    again.start()
    info = again.describe("web-1")
    assert info["state"] == "running" and info["pid"] == first["pid"]
    assert again.ports.held() == {first["ports"]["http"]: "web-1"}
    assert again.disks.free_bytes()["ssd"] == manager.disks.free_bytes()["ssd"]
    with pytest.raises(ResourceUnavailable):  # its port is still its own
        again.create(request("web-2", ports=[{"name": "http", "port": first["ports"]["http"]}]))
    manager._records.clear()  # the old incarnation is gone; the fixture tears down through the new one
    try:
        assert again.destroy("web-1")
        assert leftovers(again, "web-1") == []
    finally:
        again.purge()


def test_half_made_container_is_removed_on_start(manager: ContainerManager, agent_dirs: dict[str, str],
                                                 agent_id: str) -> None:
    manager.create(request("web-3"))
    record = manager._records["web-3"]
    record.state = "creating"  # as if the Agent died between its record and the end of the launch
    manager.store.save(record)
    manager.ports.close(remove_rules=False)
    manager._records.clear()
    again = ContainerManager(agent_id, agent_dirs["state"], settings_for(agent_dirs))
    again.start()
    assert again.list() == []
    assert leftovers(again, "web-3") == []
    assert again.ports.held() == {}


@pytest.mark.parametrize(("overrides", "error", "field"), [
    ({"user": "no-such-user-galaxy"}, InvalidInput, "user"),
    ({"disks": [{"medium": "ssd", "size": 1 << 30, "path": "/data"}]}, ResourceUnavailable, None),
    ({"disks": [{"medium": "nvme", "size": 32 << 20, "path": "/data"}]}, ResourceUnavailable, None),
    ({"cpu": 1000.0}, ResourceUnavailable, "cpu"),
    ({"argv": ["/no/such/binary"]}, IsolateError, None),
])
def test_a_request_that_cannot_be_met_leaves_nothing(manager: ContainerManager, overrides: dict[str, Any],
                                                     error: type[Exception], field: str | None) -> None:
    free_before = manager.resources()["free"]
    with pytest.raises(error) as err:
        manager.create(request("bad-0", **overrides))
    if field:
        assert getattr(err.value, "field", None) == field
    assert manager.list() == []
    assert leftovers(manager, "bad-0") == []
    assert manager.resources()["free"] == free_before


def test_a_port_held_by_one_container_is_refused_to_another(manager: ContainerManager) -> None:
    held = manager.create(request("web-4"))["ports"]["http"]
    free_before = manager.resources()["free"]
    with pytest.raises(ResourceUnavailable, match=str(held)):
        manager.create(request("web-5", ports=[{"name": "http", "port": held}]))
    assert [c["id"] for c in manager.list()] == ["web-4"]
    assert leftovers(manager, "web-5") == []
    assert manager.resources()["free"] == free_before


def test_same_id_with_another_spec_is_a_conflict(manager: ContainerManager) -> None:
    manager.create(request("web-6"))
    with pytest.raises(Conflict):
        manager.create(request("web-6", cpu=0.25))


def test_disk_quota_inside_the_container(manager: ContainerManager) -> None:
    script = ("dd if=/dev/zero of=/data/fill bs=1M count=64 2>/data/dd.err; echo $? > /data/rc; "
              "exec sleep 60")
    manager.create(request("fill-0", ["sh", "-c", script], ports=[]))
    record = manager._records["fill-0"]
    mount_point = record.disks[0].mount_point
    rc_file = Path(mount_point) / "rc"
    # the Agent's view of the disk is its host mount point; read the writer's result there
    wait_until(lambda: rc_file.exists() and rc_file.read_text().strip(), timeout=30, what="dd to finish")
    assert rc_file.read_text().strip() != "0"
    assert "No space left" in (Path(mount_point) / "dd.err").read_text()
    image = record.disks[0].image
    assert image is not None and os.stat(image).st_blocks * 512 <= 32 << 20


def test_the_work_dir_is_a_disk_of_its_own(net: TestNetwork, agent_dirs: dict[str, str], agent_id: str) -> None:
    """/galaxy/work fills up with ENOSPC at the Agent's work_disk size: the host's filesystem keeps its
    space whatever a service writes there; destroy leaves no image, loop or mount."""
    with net.host(1).netns():
        mgr = ContainerManager(agent_id, agent_dirs["state"], settings_for(agent_dirs, work_disk=16 << 20))
        mgr.start()
        try:
            script = ("dd if=/dev/zero of=/galaxy/work/fill bs=1M count=64 2>/galaxy/work/dd.err; "
                      "echo $? > /galaxy/work/rc; exec sleep 60")
            mgr.create(request("work-0", ["sh", "-c", script], disks=[], ports=[]))
            work = mgr.container_dir("work-0") / "work"
            wait_until(lambda: (work / "rc").exists() and (work / "rc").read_text().strip(), timeout=30,
                       what="dd to finish")
            assert (work / "rc").read_text().strip() != "0"
            assert "No space left" in (work / "dd.err").read_text()
            image = mgr.container_dir("work-0") / "work.img"
            assert os.stat(image).st_blocks * 512 <= 16 << 20
            assert mgr.destroy("work-0") is True
            assert leftovers(mgr, "work-0") == [] and not image.exists()
        finally:
            mgr.purge()


def test_logs_tail_and_follow_after_exit(manager: ContainerManager) -> None:
    script = "mkdir -p /galaxy/work/log; for i in 1 2 3 4 5; do echo line$i; done > /galaxy/work/log/stdout.log"
    manager.create(request("log-0", ["sh", "-c", script], disks=[], ports=[]))
    wait_until(lambda: [c for c in manager.poll() if c["id"] == "log-0"], timeout=20, what="exit")
    tail = manager.logs("log-0", "stdout", tail=2)
    assert tail["data"] == "line4\nline5\n"
    assert manager.logs("log-0", "stdout", offset=tail["offset"])["data"] == ""
    assert manager.logs("log-0", "stdout", offset=0)["data"].startswith("line1\n")
    with pytest.raises(InvalidInput):
        manager.logs("log-0", "syslog")


def test_new_containers_are_told_the_appmaster_leader(manager: ContainerManager) -> None:
    """The hint the daemon keeps from ZooKeeper reaches PID 1's environment (the AppWorker dials it)."""
    manager.master_hint = {"GALAXY_MASTER_ENDPOINT": "tcp://198.18.0.9:7000", "GALAXY_MASTER_KEY": "k" * 40,
                           "GALAXY_MASTER_ID": "appmaster-1"}
    script = "mkdir -p /galaxy/work/log; env > /galaxy/work/log/stdout.log"
    manager.create(request("hint-0", ["sh", "-c", script], disks=[], ports=[]))
    wait_until(lambda: [c for c in manager.poll() if c["id"] == "hint-0"], timeout=20, what="exit")
    env = manager.logs("hint-0", "stdout", tail=100)["data"].splitlines()
    assert "GALAXY_MASTER_ENDPOINT=tcp://198.18.0.9:7000" in env and "GALAXY_MASTER_ID=appmaster-1" in env


def test_the_appworker_runs_with_the_agents_own_python() -> None:
    # During an upgrade the AppMaster may name an interpreter of another release; the Agent uses its own.
    import sys

    from galaxy.agent.containers import local_interpreter

    assert local_interpreter(["/opt/old/bin/python", "-m", "galaxy.appworker.main"]) == [
        sys.executable, "-m", "galaxy.appworker.main"]
    assert local_interpreter(["sleep", "60"]) == ["sleep", "60"]


def test_the_agents_cgroup_weighs_the_cores_it_offers(manager: ContainerManager) -> None:
    from galaxy.isolate import CgroupV1Driver
    from galaxy.isolate._cgroup import cpu_shares_of, cpu_weight_of

    root = f"galaxy-{manager.agent_id}"
    cores = manager.ledger.capacity.cpu
    if isinstance(manager.driver, CgroupV1Driver):
        shares = Path(manager.driver.path("cpu", root), "cpu.shares").read_text().strip()
        assert shares == str(min(262_144, round(cores * 1024)))
    else:
        weight = Path(manager.driver.path(root), "cpu.weight").read_text().strip()
        assert weight == str(cpu_weight_of(cpu_shares_of(cores))), "the runc/Kubernetes mapping of its shares"


def test_appworker_containers_are_forked_from_the_zygote(manager: ContainerManager) -> None:
    import sys

    assert manager.zygote is not None and manager.zygote.process is None  # started by the first create
    argv = [sys.executable, "-m", "galaxy.appworker.main", "--", "sh", "-c", "echo $GALAXY_GROUP; exit 9"]
    info = manager.create(request("zy-0", argv, disks=[], ports=[]))
    zygote = manager.zygote.process
    assert zygote is not None and info["pid"] != zygote.pid
    exited = wait_until(lambda: [c for c in manager.poll() if c["id"] == "zy-0"], timeout=20, what="exit")
    assert exited[0]["exit"] == {"exit_code": 9}
    assert manager.logs("zy-0", "console")["data"].split() == ["web"]
    manager.purge()  # decommissioning the Agent ends its zygote too
    assert not zygote.running()


def test_poll_answer_is_unchanged_until_the_list_changes_and_a_create_sends_no_event(
        manager: ContainerManager) -> None:
    events: list[dict[str, Any]] = []
    manager.on_change = events.append
    empty = manager.resources()["digest"]
    manager.create(request("dig-0", argv=["sh", "-c", "sleep 2; exit 4"]))
    assert events == []                     # the create's answer says it runs; no event repeats it
    full = manager.resources(empty)
    assert [c["id"] for c in full["containers"]] == ["dig-0"] and full["digest"] != empty
    unchanged = manager.resources(full["digest"])
    assert unchanged["unchanged"] == full["digest"] and set(unchanged["usage"]) == {"dig-0"}
    assert unchanged["usage"]["dig-0"]["memory"] >= 0 and "containers" not in unchanged
    wait_until(lambda: manager.poll(), timeout=20, what="exit")
    assert [e["state"] for e in events] == ["exited"]        # later changes are still reported
    assert "containers" in manager.resources(full["digest"])
