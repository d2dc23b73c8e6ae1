"""Network partitions between test hosts, for fault-injection tests (issue 15, "Partitions").

A partition is a set of iptables DROP rules *inside the test hosts' own network namespaces* (never the
machine's own): each namespace touched gets a chain ``GALAXY-FAULT`` jumped to first from ``INPUT``
and ``OUTPUT``, and every rule there carries a comment naming its fault, so one fault can be healed
alone. Packets are dropped silently (no RST, no ICMP), as a dead link or a split switch would.

    with Faults() as faults:
        faults.cut(host_a, host_b)          # both directions, rules in both namespaces
        ...
        faults.heal(host_a, host_b)
        faults.isolate(host_c)              # host_c reaches nobody on the test network (lo still works)
        ...
    # every rule and chain removed here, also when the block raised

:class:`SpreadCluster` is a :class:`~galaxy.testing.cluster.LocalCluster` whose ResMan and AppMaster
replicas each run on a test host of their own (ZooKeeper alone stays on the control host), so a
partition can separate one leader from ZooKeeper, from the Agents or from the AppWorkers.

:class:`Recovery` collects what each injection cost (time to recover, invariant violations) and prints
the one-line summary the fault table in ``docs/faults.md`` is made of.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import os
import subprocess
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from galaxy.errors import HostError, InvalidInput
from galaxy.testing.cluster import APPMASTER_PORT, RESMAN_PORT, LocalCluster
from galaxy.testing.netns import TestHost, netns_exists, netns_path

log = logging.getLogger(__name__)

CHAIN = "GALAXY-FAULT"
_ids = itertools.count(1)
_open: weakref.WeakSet[Faults] = weakref.WeakSet()


def _iptables(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``iptables -w ARGS`` inside network namespace ``namespace`` only (nsenter --net)."""
    argv = ["nsenter", f"--net={netns_path(namespace)}", "--", "iptables", "-w", "5", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise HostError(f"iptables {' '.join(args)} in {namespace} failed ({done.returncode}): "
                        f"{done.stderr.strip()[:300]}")
    return done


def fault_rules(namespace: str) -> list[str]:
    """The rules of the ``GALAXY-FAULT`` chain in ``namespace`` (``iptables -S`` lines; [] if none)."""
    if not netns_exists(namespace):
        return []
    done = _iptables(namespace, "-S", CHAIN, check=False)
    if done.returncode != 0:
        return []
    return [line for line in done.stdout.splitlines() if line.startswith("-A ")]


@dataclass
class Fault:
    """One injected fault: its name (the rules' comment) and the namespaces holding its rules."""

    name: str
    kind: str                      # cut | isolate
    hosts: tuple[str, ...]         # namespaces whose rules it added
    started: float = field(default_factory=time.monotonic)


class Faults:
    """Partitions between test hosts, removed on :meth:`close` (context manager, atexit too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._chains: set[str] = set()      # namespaces where this object made the chain
        self._closed = False
        _open.add(self)

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def active(self) -> list[Fault]:
        return list(self._faults.values())

    # ---- injecting --------------------------------------------------------------------------------
    def cut(self, a: TestHost, b: TestHost, *, name: str | None = None) -> Fault:
        """Drop every packet between ``a`` and ``b`` (both directions; rules in both namespaces)."""
        if a.name == b.name:
            raise InvalidInput("cannot cut a host from itself", field="b")
        fault = Fault(name or f"cut-{next(_ids)}", "cut", (a.name, b.name))
        rules = [(a, ["-A", CHAIN, "-s", b.address, "-j", "DROP"]), (a, ["-A", CHAIN, "-d", b.address, "-j", "DROP"]),
                 (b, ["-A", CHAIN, "-s", a.address, "-j", "DROP"]), (b, ["-A", CHAIN, "-d", a.address, "-j", "DROP"])]
        self._add(fault, rules)
        return fault

    def cut_many(self, group: Iterable[TestHost], others: Iterable[TestHost], *, name: str | None = None) -> Fault:
        """Drop every packet between any host of ``group`` and any of ``others``, as one fault."""
        group, others = list(group), list(others)
        names = tuple(sorted({h.name for h in group + others}))
        fault = Fault(name or f"cut-{next(_ids)}", "cut", names)
        rules: list[tuple[TestHost, list[str]]] = []
        for a in group:
            for b in others:
                if a.name == b.name:
                    raise InvalidInput(f"{a.name} is on both sides of the cut", field="others")
                rules += [(a, ["-A", CHAIN, "-s", b.address, "-j", "DROP"]),
                          (a, ["-A", CHAIN, "-d", b.address, "-j", "DROP"]),
                          (b, ["-A", CHAIN, "-s", a.address, "-j", "DROP"]),
                          (b, ["-A", CHAIN, "-d", a.address, "-j", "DROP"])]
        self._add(fault, rules)
        return fault

    def isolate(self, host: TestHost, *, name: str | None = None) -> Fault:
        """Drop every packet in or out of ``host``'s test-network interface (its loopback still works)."""
        fault = Fault(name or f"isolate-{next(_ids)}", "isolate", (host.name,))
        self._add(fault, [(host, ["-A", CHAIN, "-i", host.interface, "-j", "DROP"]),
                          (host, ["-A", CHAIN, "-o", host.interface, "-j", "DROP"])])
        return fault

    def heal(self, fault: Fault) -> float:
        """Remove one fault's rules; returns how long it lasted (s)."""
        with self._lock:
            self._faults.pop(fault.name, None)
        for namespace in fault.hosts:
            self._remove_rules(namespace, fault.name)
        return time.monotonic() - fault.started

    def heal_all(self) -> None:
        for fault in self.active:
            self.heal(fault)

    # ---- teardown -----------------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Remove every rule, jump and chain this object made; returns problems (also logged)."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            self._faults.clear()
            chains = sorted(self._chains)
            self._chains.clear()
        problems: list[str] = []
        for namespace in chains:
            if not netns_exists(namespace):
                continue                 # the namespace, and its tables with it, are gone already
            for hook in ("INPUT", "OUTPUT"):
                while _iptables(namespace, "-D", hook, "-j", CHAIN, check=False).returncode == 0:
                    pass
            _iptables(namespace, "-F", CHAIN, check=False)
            done = _iptables(namespace, "-X", CHAIN, check=False)
            if done.returncode != 0:
                problems.append(f"{namespace}: chain {CHAIN} not removed: {done.stderr.strip()[:200]}")
        _open.discard(self)
        if problems:
            log.warning("fault teardown: %s", "; ".join(problems))
        return problems

    def leftovers(self, namespaces: Iterable[str]) -> list[str]:
        """Fault rules or chains still present in ``namespaces`` (empty when clean)."""
        left: list[str] = []
        for namespace in namespaces:
            if not netns_exists(namespace):
                continue
            if _iptables(namespace, "-S", CHAIN, check=False).returncode == 0:
                left.append(f"{namespace}: chain {CHAIN} still exists")
        return left

    # ---- internals ----------------------------------------------------------------------------------
    def _add(self, fault: Fault, rules: list[tuple[TestHost, list[str]]]) -> None:
        with self._lock:
            if self._closed:
                raise InvalidInput("the fault injector is closed", field="faults")
            if fault.name in self._faults:
                raise InvalidInput(f"fault {fault.name} exists", field="name")
            self._faults[fault.name] = fault
        try:
            for host in {h.name: h for h, _ in rules}.values():
                self._ensure_chain(host.name)
            for host, rule in rules:
                _iptables(host.name, *rule, "-m", "comment", "--comment", fault.name)
        except BaseException:
            self.heal(fault)
            raise
        fault.started = time.monotonic()
        log.info("fault %s (%s) injected in %s", fault.name, fault.kind, ", ".join(fault.hosts))

    def _ensure_chain(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._chains:
                return
            self._chains.add(namespace)     # recorded first: close() cleans a half-made chain too
        if _iptables(namespace, "-N", CHAIN, check=False).returncode != 0:
            if _iptables(namespace, "-S", CHAIN, check=False).returncode != 0:
                raise HostError(f"cannot create chain {CHAIN} in {namespace}")
        for hook in ("INPUT", "OUTPUT"):
            if _iptables(namespace, "-C", hook, "-j", CHAIN, check=False).returncode != 0:
                _iptables(namespace, "-I", hook, "1", "-j", CHAIN)

    def _remove_rules(self, namespace: str, name: str) -> None:
        if not netns_exists(namespace):
            return
        for line in fault_rules(namespace):
            args = [a.strip('"') for a in line.split()[1:]]       # drop "-A"
            if "--comment" in args and args[args.index("--comment") + 1] == name:
                _iptables(namespace, "-D", *args, check=False)


@atexit.register
def _close_open() -> None:
    for faults in list(_open):
        with contextlib.suppress(Exception):
            faults.close()


# ---- a cluster whose leaders can be cut off one by one ---------------------------------------------

class SpreadCluster(LocalCluster):
    """A LocalCluster with each ResMan and AppMaster replica on a test host of its own.

    Host 1 keeps ZooKeeper (and is where the test's own clients live: :meth:`client`, :meth:`zk`,
    :meth:`cli`); hosts 2..1+agents carry the Agents as before; then one host per ResMan replica, then
    one per AppMaster replica. :meth:`host_of` names the host of a component.
    """

    def __init__(self, base: str | os.PathLike[str], **kw: Any) -> None:
        super().__init__(base, **kw)
        self._replica_hosts: dict[str, TestHost] = {}

    def host_of(self, component: str) -> TestHost:
        """The test host of ``resman-1``, ``appmaster-2``, ``agent-3`` or ``zookeeper``."""
        if component in self._replica_hosts:
            return self._replica_hosts[component]
        if component == "zookeeper":
            return self.control
        if component.startswith("agent-"):
            return self.agent_host(int(component.split("-")[1]))
        raise InvalidInput(f"no component {component!r}", field="component")

    def replica_hosts(self, role: str) -> list[TestHost]:
        return [h for name, h in sorted(self._replica_hosts.items()) if name.startswith(f"{role}-")]

    def _start_zookeeper(self, timeout: float) -> None:
        assert self.network is not None
        for role in ("resman", "appmaster"):
            for i in range(1, self.counts[role] + 1):
                self._replica_hosts[f"{role}-{i}"] = self.network.add_host()
        self.state.namespaces = self.network.namespaces
        super()._start_zookeeper(timeout)

    def _start_daemon(self, role: str, index: int, host: TestHost, port: int) -> None:
        name = f"{role}-{index}"
        if name in self._replica_hosts:
            host = self._replica_hosts[name]
            port = RESMAN_PORT if role == "resman" else APPMASTER_PORT
        super()._start_daemon(role, index, host, port)


# ---- what each injection cost ------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Recovery:
    """Per-fault tallies: injections, invariant violations (described), seconds to recover."""

    fault: str
    floor: str = ""
    injections: int = 0
    violations: list[str] = field(default_factory=list)
    recover_s: list[float] = field(default_factory=list)

    def injected(self) -> None:
        self.injections += 1

    def violated(self, what: str) -> None:
        self.violations.append(f"#{self.injections}: {what}")

    def recovered(self, seconds: float) -> None:
        self.recover_s.append(seconds)

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.recovered(time.monotonic() - start)

    def summary(self) -> str:
        """One line for the docs table: fault, injections, violations, recover p50/p99 (and the floor)."""
        p50, p99 = percentile(self.recover_s, 50), percentile(self.recover_s, 99)
        line = (f"FAULT {self.fault} | injections {self.injections} | violations {len(self.violations)} | "
                f"recover p50 {p50:.2f} s p99 {p99:.2f} s")
        return line + (f" | floor {self.floor}" if self.floor else "")


__all__ = ["CHAIN", "Fault", "Faults", "Recovery", "SpreadCluster", "fault_rules", "percentile"]
