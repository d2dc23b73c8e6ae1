"""Usage accounting's cost in ResMan's loop: `Meter.observe` per reported container.

A fleet of 10,000 hosts × 10 containers (100,000, in 1,000 groups) reports twice (the first report
sets baselines, the second bills); each row is the loop-thread CPU per container of the billing
report. The baseline, measured in the same run on the same reports, is the per-container fast path
`agentio.report` already runs on every report (id, record lookup, state and host compared): the
accounting should stay within a small multiple of what the engine spends anyway.

Rows: reports as the simulated fleet sends them (no `usage`: reserved figures only) and as real Agents
send them (with cgroup usage); the hand-over of one flush interval's sums (all the loop thread does
per flush), and the flusher thread's conversion of them into record figures.
"""

from __future__ import annotations

import time
from typing import Any

from bench._table import Row
from galaxy.protocol.resman import GroupSpec
from galaxy.resman.accounting import Meter, figures_of
from galaxy.resman.model import RUNNING, Container, Group
from galaxy.resman.settings import ResManSettings

HOSTS = 10_000
PER_HOST = 10
GROUPS = 1_000
GiB = 1 << 30


def _groups() -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for i in range(GROUPS):
        body = {"group": f"g{i}", "owner": f"user{i % 50}", "pool": ("default", "gpu")[i % 2], "replicas": 100,
                "container": {"cpu": 0.5, "memory": GiB, "user": "nobody", "argv": ["/bin/app"],
                              "disks": [{"medium": "ssd", "size": GiB, "path": "/data"}]}}
        groups[f"g{i}"] = Group.from_spec(GroupSpec.from_wire(body), 0.0)
    return groups


def _reports(with_usage: bool, step: int) -> dict[str, list[dict[str, Any]]]:
    reports: dict[str, list[dict[str, Any]]] = {}
    n = 0
    for h in range(HOSTS):
        items = []
        for _ in range(PER_HOST):
            info: dict[str, Any] = {"id": f"g{n % GROUPS}.{n:08x}", "group": f"g{n % GROUPS}", "state": "running",
                                    "ports": {}}
            if with_usage:
                info["usage"] = {"cpu_seconds": 1.5 * step + n % 7, "memory": 300 << 20, "oom_kills": 0}
            items.append(info)
            n += 1
        reports[f"host-{h:05d}"] = items
    return reports


def _records(reports: dict[str, list[dict[str, Any]]]) -> dict[str, Container]:
    records: dict[str, Container] = {}
    for host, items in reports.items():
        for info in items:
            c = Container(info["id"], info["group"], 1)
            c.host, c.state = host, RUNNING
            records[c.id] = c
    return records


def _report_fast_path(reports: dict[str, list[dict[str, Any]]], records: dict[str, Container]) -> float:
    """What agentio.report does per container on a steady fleet (its common case), timed."""
    started = time.process_time()
    for host, items in reports.items():
        reported: set[str] = set()
        for info in items:
            if not isinstance(info, dict):
                continue
            cid = info.get("id")
            if not isinstance(cid, str):
                continue
            reported.add(cid)
            ports = info.get("ports") or {}
            c = records.get(cid)
            if c is not None and c.state == RUNNING and c.host == host and info.get("state") == "running" \
                    and c.ports == ports:
                c.missing = 0
    return time.process_time() - started


def _observe(meter: Meter, reports: dict[str, list[dict[str, Any]]], at: float) -> float:
    started = time.process_time()
    for host, items in reports.items():
        meter.observe(host, "default", items, at)
    return time.process_time() - started


def run() -> list[Row]:
    groups = _groups()
    count = HOSTS * PER_HOST
    settings = ResManSettings(poll_interval=1.0, usage_flush=1e9)
    rows: list[Row] = []
    for with_usage, label in ((False, "sim fleet reports (no usage)"), (True, "Agent reports (with usage)")):
        first, second = _reports(with_usage, 0), _reports(with_usage, 1)
        baseline = min(_report_fast_path(second, _records(second)) for _ in range(3)) / count * 1e6
        costs = []
        for _ in range(3):
            meter = Meter(lambda: groups, None, settings, wall=time.time, clock=lambda: 1000.0)
            _observe(meter, first, 1000.0)
            costs.append(_observe(meter, second, 1001.0) / count * 1e6)
        rows.append(Row("accounting", f"observe() per container, {label}", min(costs), "µs", baseline,
                        "report fast path", better="lower"))
    sums = dict(meter._sums)          # what the flusher will get: sums per (group reserve, hour)
    started = time.process_time()
    meter.hand_over(1002.0)
    handed = (time.process_time() - started) * 1e3
    rows.append(Row("accounting", f"hand-over of {len(sums)} groups' sums (loop thread)", handed, "ms",
                    better="lower"))
    started = time.process_time()
    figures_of(sums)
    converted = (time.process_time() - started) * 1e3
    rows.append(Row("accounting", "the same sums as (owner, pool, hour) figures (flusher thread)", converted, "ms",
                    better="lower"))
    return rows


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
