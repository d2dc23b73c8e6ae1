"""Port assignment with firewall rules, against bare python-iptables writing the same rules.

Everything runs inside a throw-away network-namespace test host (the machine's own iptables are
never touched). Galaxy's figure includes all it does per call: owner/port validation, a bind test
per dynamic port, one libiptc handle and one atomic commit per call, an idempotent delete before
each insert. The baseline writes the same rules (tcp+udp ``--dport P -m comment -j ACCEPT``) into
the same chain with the fewest python-iptables calls: one handle refresh, the inserts or deletes,
one commit — i.e. the floor Galaxy's wrapper could reach.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench._table import Row
from galaxy.errors import HostError
from galaxy.ports import PortTable, iptables_available
from galaxy.testing.netns import TestNetwork, netns_problem

BENCH = "ports"
LO, HI = 20000, 29999
BUDGET_S = 2.5          # per measured loop
BULK = 10               # ports per call in the bulk figures


def _timed(step: Callable[[int], None], budget: float = BUDGET_S, cap: int = 20000) -> float:
    """Calls of ``step(i)`` per second over about ``budget`` seconds."""
    started = time.perf_counter()
    done = 0
    while done < cap and time.perf_counter() - started < budget:
        step(done)
        done += 1
    return done / (time.perf_counter() - started)


class _BareIptc:
    """The same rules through python-iptables directly (an uncached handle: see galaxy.ports._iptc)."""

    def __init__(self, chain: str) -> None:
        import iptc

        self.iptc = iptc
        self.chain = chain
        self.table = object.__new__(iptc.Table)
        self.table._init("filter", False)

    def rule(self, proto: str, port: int, owner: str) -> Any:
        rule = self.iptc.Rule()
        rule.protocol = proto
        rule.create_match(proto).dport = str(port)
        rule.create_match("comment").comment = "galaxy:" + owner
        rule.create_target("ACCEPT")
        return rule

    def insert(self, ports: list[int], owner: str) -> None:
        self.table.refresh()
        for port in ports:
            for proto in ("tcp", "udp"):
                self.table.insert_entry(self.chain, self.rule(proto, port, owner).rule, 0)
        self.table.commit()

    def delete(self, ports: list[int], owner: str) -> None:
        self.table.refresh()
        for port in ports:
            for proto in ("tcp", "udp"):
                made = self.rule(proto, port, owner)
                self.table.delete_entry(self.chain, made.rule, made.mask)
        self.table.commit()

    def close(self) -> None:
        self.table.close()


def run() -> list[Row]:
    problem = netns_problem()
    if problem is not None:
        raise HostError(f"bench_ports needs network-namespace test hosts: {problem}")
    rows: list[Row] = []
    with TestNetwork(hosts=1) as network:
        host = network.host(1)
        with host.netns():
            if not iptables_available():
                raise HostError("bench_ports: legacy iptables unavailable in a test namespace")
            table = PortTable("bench", LO, HI)
            table.ensure()
            # A realistic chain: 200 ports already held (400 rules) by other containers.
            for i in range(20):
                table.assign(f"resident-{i}", dynamic=BULK)
            bare = _BareIptc(table.chain)
            try:
                def galaxy_cycle(i: int) -> None:
                    table.assign(f"c{i}", dynamic=1)
                    table.release(f"c{i}")

                def bare_cycle(i: int) -> None:
                    port = 25000 + i % 1000
                    bare.insert([port], f"c{i}")
                    bare.delete([port], f"c{i}")

                def galaxy_bulk(i: int) -> None:
                    table.assign(f"b{i}", dynamic=BULK)
                    table.release(f"b{i}")

                def bare_bulk(i: int) -> None:
                    ports = [26000 + (i * BULK + k) % 1000 for k in range(BULK)]
                    bare.insert(ports, f"b{i}")
                    bare.delete(ports, f"b{i}")

                g_cycle = _timed(galaxy_cycle)
                b_cycle = _timed(bare_cycle)
                g_bulk = _timed(galaxy_bulk)
                b_bulk = _timed(bare_bulk)
                assert len(table.held()) == 20 * BULK, "benchmark leaked holds"
            finally:
                bare.close()
                table.close()
    rules_per_cycle = 4  # tcp+udp inserted, tcp+udp deleted
    rows.append(Row(BENCH, "assign+release 1 port (4 rules, 2 commits)", g_cycle, "cycles/s",
                    b_cycle, "bare python-iptables, same rules"))
    rows.append(Row(BENCH, f"assign+release {BULK} ports in one call", g_bulk * BULK * rules_per_cycle,
                    "rules/s", b_bulk * BULK * rules_per_cycle, "bare python-iptables, same rules"))
    return rows


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
