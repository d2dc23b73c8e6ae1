"""A simulated fleet in its own process, so a benchmark measures ResMan and not the fleet.

In one process, 10,000 simulated Agents (CURVE, heartbeats, answers) compete with the ResMan under
test for the GIL; on a 2-core machine the ResMan then falls behind and declares hosts lost. Here
the parent starts one or more `python -m galaxy.testing.fleetproc` children, each carrying a slice
of the hosts. The spec goes in on stdin as one JSON line (the agent secret never appears on a
command line); the child answers `ready` on stdout once its workers run, then a JSON line of its
stats for each line the parent writes, and stops when stdin closes — so a parent that dies takes
its fleets with it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from galaxy.errors import GalaxyError, InternalError
from galaxy.mesh import Keypair
from galaxy.testing.fleet import SimFleet, sim_hosts


@dataclass(frozen=True)
class FleetSlice:
    """What one child process simulates: hosts `<prefix>-<first>` ... `<prefix>-<first + count - 1>`."""

    endpoint: str
    server_public: str
    agent_public: str
    agent_secret: str
    count: int
    first: int = 1
    prefix: str = "sim"
    cpu: float = 16.0
    memory: int = 64 << 30
    threads: int = 2
    heartbeat_interval: float = 1.0
    state_events: bool = True
    batch_creates: bool = True


class FleetProcess:
    """The parent's handle on one child fleet."""

    def __init__(self, spec: FleetSlice, *, start_timeout: float = 60.0) -> None:
        self.spec = spec
        self.proc = subprocess.Popen([sys.executable, "-m", "galaxy.testing.fleetproc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(asdict(spec)) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            self.close()
            raise InternalError(f"simulated fleet process did not start (said {line!r})")

    def stats(self) -> dict[str, Any]:
        """The child's counters and its CPU seconds so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_fleets(endpoint: str, server_public: str, agent_keys: Keypair, hosts: int, *, processes: int = 2,
                 **spec: Any) -> list[FleetProcess]:
    """`hosts` simulated hosts named sim-00001... split evenly over `processes` children."""
    started: list[FleetProcess] = []
    share, extra = divmod(hosts, processes)
    first = 1
    try:
        for i in range(processes):
            count = share + (1 if i < extra else 0)
            if count == 0:
                continue
            started.append(FleetProcess(FleetSlice(endpoint, server_public, agent_keys.public, agent_keys.secret,
                                                   count, first, **spec)))
            first += count
    except GalaxyError:
        for fleet in started:
            fleet.close()
        raise
    return started


def _child() -> int:
    spec = FleetSlice(**json.loads(sys.stdin.readline()))
    keys = Keypair(spec.agent_public, spec.agent_secret)
    hosts = sim_hosts(spec.count, prefix=spec.prefix, first=spec.first, cpu=spec.cpu, memory=spec.memory)
    fleet = SimFleet(spec.endpoint, spec.server_public, keys, hosts, threads=spec.threads,
                     heartbeat_interval=spec.heartbeat_interval, state_events=spec.state_events,
                     batch_creates=spec.batch_creates)
    with fleet:
        print("ready", flush=True)
        for _ in sys.stdin:
            times = os.times()
            print(json.dumps({**fleet.stats, "registered_hosts": fleet.registered(),
                              "containers": sum(len(h.containers) for h in fleet.hosts.values()),
                              "cpu_s": times.user + times.system}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
