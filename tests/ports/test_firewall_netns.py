"""PortTable against the real kernel, only inside test hosts (never the machine's own rules).

Host 2 plays the Agent: its port table owns 20000-20099. Host 1 is a client on the same bridge.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from galaxy.errors import InvalidInput, ResourceUnavailable
from galaxy.ports import PortTable, read_reserved, reserve_ephemeral
from galaxy.testing.netns import TestHost, TestNetwork, netns_exists, require_netns

from .conftest import legacy_rules

pytestmark = [pytest.mark.root, pytest.mark.netns]

LO, HI = 20000, 20099
RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


@pytest.fixture
def table(agent_host: TestHost) -> Iterator[PortTable]:
    with agent_host.netns():
        ports = PortTable("t1", LO, HI)
        ports.ensure()
    yield ports
    with agent_host.netns():
        ports.close()


def reserved_in(host: TestHost) -> str:
    return host.run(["cat", str(RESERVED)]).stdout.strip()


def udp_answer(client: TestHost, address: str, port: int) -> str:
    """Send one datagram and wait for an ICMP error: "refused" when the port is rejected."""
    with client.netns():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(1.0)
        sock.connect((address, port))
        sock.send(b"galaxy-probe")
        try:
            sock.recv(16)
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "silent"
        return "answered"


def test_a_port_held_by_one_owner_is_refused_to_another(agent_host: TestHost, table: PortTable) -> None:
    with agent_host.netns():
        assert table.assign("svc-a", fixed=[20010]) == [20010]
        with pytest.raises(ResourceUnavailable) as caught:
            table.assign("svc-b", dynamic=1, fixed=[20010])
    assert "20010" in str(caught.value) and "svc-a" in str(caught.value)
    rules = legacy_rules(agent_host)
    assert "galaxy:svc-a" in rules and "galaxy:svc-b" not in rules
    assert table.held() == {20010: "svc-a"}


def test_traffic_reaches_assigned_ports_only(net: TestNetwork, agent_host: TestHost, table: PortTable) -> None:
    client = net.host(1)
    assigned, unassigned = 20010, 20011
    with agent_host.netns():
        table.assign("svc", fixed=[assigned])
    for port in (assigned, unassigned):
        agent_host.listen_tcp(port)
    assert client.wait_reachable(agent_host.address, assigned) == "open"
    assert client.tcp_probe(agent_host.address, unassigned) == "refused"   # a listener is there
    assert client.tcp_probe(agent_host.address, 20500) == "refused"        # outside the range: no listener

    with agent_host.netns():
        datagrams = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with datagrams:
        datagrams.bind(("0.0.0.0", unassigned))
        assert udp_answer(client, agent_host.address, unassigned) == "refused"

    with agent_host.netns():
        assert table.release("svc") == [assigned]
    assert client.tcp_probe(agent_host.address, assigned) == "refused"


def test_a_held_port_is_closed_until_opened_and_stays_booked_while_shut(
        net: TestNetwork, agent_host: TestHost, table: PortTable) -> None:
    """The Agent's create: hold before the container exists, open (one commit) once it does; its
    destroy: shut before the cgroup goes, release after. A shut port is still nobody else's."""
    client = net.host(1)
    port = 20030
    with agent_host.netns():
        assert table.hold("svc", fixed=[port]) == [port]
    agent_host.listen_tcp(port)
    assert client.tcp_probe(agent_host.address, port) == "refused"
    assert "galaxy:svc" not in legacy_rules(agent_host)
    with agent_host.netns():
        table.open("svc")
    assert client.wait_reachable(agent_host.address, port) == "open"
    with agent_host.netns():
        table.shut("svc")
        with pytest.raises(ResourceUnavailable):
            table.hold("other", fixed=[port])
    assert client.tcp_probe(agent_host.address, port) == "refused"
    assert "galaxy:svc" not in legacy_rules(agent_host)
    with agent_host.netns():
        assert table.release("svc") == [port]
    assert port not in table.held()


def test_chain_and_jump_exist_while_up_and_nothing_is_left_after_close(
        agent_host: TestHost, table: PortTable) -> None:
    with agent_host.netns():
        table.assign("svc", fixed=[20020, 9100])
        table.ensure()  # idempotent: a second ensure changes nothing
    rules = legacy_rules(agent_host)
    assert rules.count("-A INPUT -j GALAXY-t1") == 1
    assert ":GALAXY-t1 - " in rules
    assert '-A GALAXY-t1 -p tcp -m tcp --dport 20020 -m comment --comment "galaxy:svc" -j ACCEPT' in rules
    assert '-A GALAXY-t1 -p udp -m udp --dport 20020 -m comment --comment "galaxy:svc" -j ACCEPT' in rules
    assert '--dport 9100 -m comment --comment "galaxy:svc" -j RETURN' in rules
    assert "--dport 20000:20099" in rules and "--reject-with tcp-reset" in rules
    assert "--reject-with icmp-port-unreachable" in rules
    assert "GALAXY" not in agent_host.run(["iptables-nft-save"], check=False).stdout  # legacy tables only

    with agent_host.netns():
        table.close()
        table.close()  # twice is harmless
    assert "GALAXY" not in legacy_rules(agent_host)


def test_reserved_ports_are_merged_in_the_namespace_and_removed_after(agent_host: TestHost) -> None:
    with agent_host.netns():
        reserve_ephemeral(20050, 20060)       # somebody else's, inside our range
        reserve_ephemeral(40000, 40001)       # somebody else's, outside
        ports = PortTable("t2", LO, HI)
        ports.ensure()
        assert read_reserved() == [(20000, 20099), (40000, 40001)]
    assert reserved_in(agent_host) == "20000-20099,40000-40001"
    with agent_host.netns():
        ports.close()
    assert reserved_in(agent_host) == "20050-20060,40000-40001"


def test_adopt_after_a_restart_rebuilds_the_holds_from_the_chain(
        net: TestNetwork, agent_host: TestHost) -> None:
    client = net.host(1)
    with agent_host.netns():
        reserve_ephemeral(20090, 20090)
        first = PortTable("t3", LO, HI)
        first.ensure()
        web = first.assign("web.1", dynamic=2)
        db = first.assign("db.1", fixed=[20042, 9200])
        first.close(remove_rules=False)       # the Agent stops; its containers keep running

        second = PortTable("t3", LO, HI)      # the next incarnation
        adopted = second.adopt()
    try:
        assert adopted == {**{p: "web.1" for p in web}, **{p: "db.1" for p in db}}
        assert second.held() == adopted and sorted(second.owned("web.1")) == sorted(web)
        agent_host.listen_tcp(web[0])
        assert client.wait_reachable(agent_host.address, web[0]) == "open"
        with agent_host.netns():
            with pytest.raises(ResourceUnavailable) as caught:
                second.assign("other", fixed=[20042])
            assert "db.1" in str(caught.value)
    finally:
        with agent_host.netns():
            second.close()
    assert "GALAXY" not in legacy_rules(agent_host)
    assert reserved_in(agent_host) == "20090"  # the reservation that predates the first incarnation


def test_rebuild_makes_the_chain_match_the_agents_records(agent_host: TestHost) -> None:
    with agent_host.netns():
        ports = PortTable("t4", LO, HI)
        ports.ensure()
        try:
            ports.assign("gone", fixed=[20001])
            ports.assign("kept", fixed=[20002])
            ports.rebuild({"kept": [20002], "new": [20003, 9300]})
            assert PortTable("t4", LO, HI).adopt() == {20002: "kept", 20003: "new", 9300: "new"}
        finally:
            ports.close()


def test_a_range_overlapping_the_ephemeral_ports_is_reported_or_refused(agent_host: TestHost) -> None:
    agent_host.run(["sh", "-c", "echo '40000 40100' > /proc/sys/net/ipv4/ip_local_port_range"])
    with agent_host.netns():
        partial = PortTable("t5", 40050, 40200)
        partial.ensure()
        try:
            assert partial.ephemeral_overlap == (40050, 40100)
            assert read_reserved() == [(40050, 40200)]
        finally:
            partial.close()
        with pytest.raises(InvalidInput) as caught:
            PortTable("t6", 39000, 41000).ensure()
        assert caught.value.field == "range"
    assert "GALAXY-t6" not in legacy_rules(agent_host)


def test_the_machines_own_rules_and_namespaces_are_untouched() -> None:
    require_netns()
    import subprocess

    root_rules = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True).stdout
    root_reserved = RESERVED.read_text()
    with TestNetwork(hosts=1) as network:
        host = network.host(1)
        with host.netns():
            ports = PortTable("t7", LO, HI)
            ports.ensure()
            ports.assign("x", dynamic=3)
        assert subprocess.run(["iptables-legacy-save"], capture_output=True, text=True).stdout.count(
            "GALAXY-t7") == root_rules.count("GALAXY-t7") == 0
        assert RESERVED.read_text() == root_reserved
        names = network.namespaces
    assert not any(netns_exists(n) for n in names)  # rules die with the namespace too


def test_a_write_waits_for_the_iptables_tools_lock(agent_host: TestHost, table: PortTable) -> None:
    import fcntl
    import os
    import threading

    from galaxy.ports._iptc import XTABLES_LOCK

    results: list[list[int]] = []

    def assign() -> None:
        with agent_host.netns():
            results.append(table.assign("waiter", fixed=[20030]))

    fd = os.open(XTABLES_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        worker = threading.Thread(target=assign)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and results == []   # held back while iptables-legacy would be writing
    finally:
        os.close(fd)
    worker.join(10)
    assert results == [[20030]]
    assert "galaxy:waiter" in legacy_rules(agent_host)


def test_an_older_reply_jump_is_replaced_by_one_for_replies_only(agent_host: TestHost) -> None:
    """The first reply-filter layout jumped every outgoing packet into GXR-<tag> and matched the
    direction in each container's chain; the chains now end in a bare DROP, so an Agent that starts
    over the old jump must narrow it, or every connection its containers open would be dropped."""
    from galaxy.ports._iptc import OUTPUT, FilterBatch

    with agent_host.netns():
        with FilterBatch() as batch:
            batch.create_chain("GXR-t9")
            batch.insert(OUTPUT, batch.jump_rule("GXR-t9"), 0)
        table = PortTable("t9", LO, HI)
        try:
            table.ensure()
            rules = legacy_rules(agent_host)
            assert rules.count("-j GXR-t9") == 1
            assert '-A OUTPUT -m conntrack --ctdir REPLY -m comment --comment "galaxy:replies" -j GXR-t9' in rules
            table.ensure()  # the new jump is kept as it is
            assert legacy_rules(agent_host).count("-j GXR-t9") == 1
        finally:
            table.close()
    assert "GXR-t9" not in legacy_rules(agent_host)
