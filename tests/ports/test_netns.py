"""The network-namespace test hosts: reachable from each other, invisible to the host, gone after."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from galaxy.errors import NotFound
from galaxy.testing.netns import (
    SUBNET,
    TestNetwork,
    in_netns,
    netns_exists,
    require_netns,
    sweep_orphans,
    unique_prefix,
    wait_until,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]


def thread_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_hosts_have_benchmark_addresses_and_reach_each_other_over_tcp(net: TestNetwork) -> None:
    client, server = net.hosts
    for host in net.hosts:
        assert host.address in [str(a) for a in SUBNET.hosts()][:2]
        assert f"{host.address}/15" in host.run(["ip", "-o", "addr", "show", "eth0"]).stdout
    server.listen_tcp(20001)
    assert client.wait_reachable(server.address, 20001) == "open"
    assert client.tcp_probe(server.address, 20002) == "refused"
    # Plain processes inside a host see the same network.
    probe = f"import socket; socket.create_connection(('{server.address}', 20001), timeout=5).close()"
    client.run([sys.executable, "-c", probe])


def test_nothing_is_made_in_the_root_namespace() -> None:
    require_netns()
    before = root_links()
    with TestNetwork(hosts=2):
        assert root_links() == before


def test_in_netns_moves_only_the_calling_thread_and_always_comes_back(net: TestNetwork) -> None:
    home = thread_netns()
    go, done = threading.Event(), threading.Event()
    seen_by_other: list[int] = []

    def other() -> None:
        go.wait(10)
        seen_by_other.append(thread_netns())
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with pytest.raises(RuntimeError), in_netns(net.host(1).name):
        inside = thread_netns()
        go.set()
        done.wait(10)
        raise RuntimeError("boom")
    worker.join()
    assert inside != home
    assert seen_by_other == [home]
    assert thread_netns() == home


def test_in_netns_of_an_unknown_namespace_is_not_found() -> None:
    with pytest.raises(NotFound):
        with in_netns("galaxy-no-such-namespace"):
            pass


def test_close_ends_started_processes_and_deletes_namespaces_even_on_failure() -> None:
    require_netns()
    with pytest.raises(RuntimeError):
        with TestNetwork(hosts=2) as network:
            names = network.namespaces
            proc = network.host(1).popen(["sleep", "300"])
            assert proc.poll() is None
            raise RuntimeError("test failed half way")
    assert proc.poll() is not None
    assert len(names) == 3 and not any(netns_exists(n) for n in names)


@pytest.mark.parametrize("private_mounts", [True, False])
def test_popen_runs_inside_the_host_and_shares_mounts_only_if_asked(
        net: TestNetwork, private_mounts: bool) -> None:
    host = net.host(2)
    proc = host.popen(["sleep", "300"], private_mounts=private_mounts)
    wait_until(lambda: open(f"/proc/{proc.pid}/comm").read().strip() == "sleep", what="sleep to be exec'd")
    found = subprocess.run(["ip", "netns", "identify", str(proc.pid)], capture_output=True, text=True).stdout
    assert found.strip() == host.name
    same_mounts = os.readlink(f"/proc/{proc.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert same_mounts is not private_mounts


def test_sweep_removes_namespaces_of_dead_test_processes_only(net: TestNetwork) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = f"galaxy-p{dead.pid}n1-sw"
    subprocess.run(["ip", "netns", "add", orphan], check=True)
    try:
        removed = sweep_orphans()
        assert orphan in removed
        assert not netns_exists(orphan)
        assert all(netns_exists(n) for n in net.namespaces)
    finally:
        subprocess.run(["ip", "netns", "delete", orphan], capture_output=True)


def test_unique_prefixes_differ() -> None:
    assert unique_prefix() != unique_prefix()
