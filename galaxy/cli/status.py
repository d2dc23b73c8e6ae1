"""``galaxy status``: the cluster at a glance — leaders, hosts, capacity and use, jobs by state, per pool.

It reads ResMan's host list, so like ``galaxy agent`` it needs a key ResMan trusts.
"""

from __future__ import annotations

from typing import Any

from galaxy.cli.output import Column, check_output, emit, fields, human_bytes, human_cpu, table


def _use(pool: dict[str, Any], kind: str) -> str:
    fmt = human_cpu if kind == "cpu" else human_bytes
    used, capacity = pool["used"][kind], pool["capacity"][kind]
    share = f" ({100 * used / capacity:.0f}%)" if capacity else ""
    return f"{fmt(used)}/{fmt(capacity)}{share}"


def _jobs(pool: dict[str, Any]) -> str:
    return " ".join(f"{state}={count}" for state, count in pool["jobs"].items()) or "-"


POOL_COLUMNS: list[Column] = [
    ("POOL", lambda p: p["name"]),
    ("HOSTS", lambda p: p["hosts"]),
    ("LOST", lambda p: p["lost"]),
    ("OFFLINE", lambda p: p["offline"]),
    ("DRAINING", lambda p: p["draining"]),
    ("CPU USED/ALL", lambda p: _use(p, "cpu")),
    ("MEMORY USED/ALL", lambda p: _use(p, "memory")),
    ("CONTAINERS", lambda p: p["containers"]),
    ("JOBS", _jobs),
]


def status_text(summary: dict[str, Any]) -> str:
    leaders = summary.get("leaders") or {}

    def leader(role: str) -> str:
        info = leaders.get(role)
        return f"{info['id']} at {info['endpoint']}" if isinstance(info, dict) else "none"

    total = summary["total"]
    top = fields([
        ("Cluster", summary.get("cluster")), ("ResMan", leader("resman")), ("AppMaster", leader("appmaster")),
        ("Hosts", f"{total['hosts']} ({total['alive']} alive, {total['lost']} lost)"),
        ("CPU used", _use(total, "cpu")), ("Memory used", _use(total, "memory")),
        ("Containers", total["containers"]), ("Jobs", _jobs(total)),
    ])
    pools = [{"name": name, **pool} for name, pool in summary.get("pools", {}).items()]
    return top + "\n" + table(pools, POOL_COLUMNS, empty="no pools")


def status(output: str = "table") -> None:
    """The cluster at a glance: leaders, hosts, capacity and use, jobs by state, in total and per pool."""
    from galaxy.cli.session import session

    check_output(output)
    with session() as client:
        summary = client.status()
    emit(summary, output, status_text)


__all__ = ["status", "status_text"]
