"""``Client.status``: host rows from ResMan and job rows from the AppMaster folded into one summary.

Pure functions over plain rows, so the arithmetic is tested without a cluster. Capacity and free
resources are summed over hosts that are alive; a lost host counts in ``hosts`` and ``lost`` only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from galaxy.coord import LeaderInfo


def _empty_pool() -> dict[str, Any]:
    return {"hosts": 0, "alive": 0, "lost": 0, "offline": 0, "draining": 0, "containers": 0,
            "capacity": {"cpu": 0.0, "memory": 0}, "free": {"cpu": 0.0, "memory": 0},
            "used": {"cpu": 0.0, "memory": 0}, "jobs": {}}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def summarize(cluster: str, hosts: list[dict[str, Any]], jobs: list[dict[str, Any]],
              leaders: dict[str, LeaderInfo | None]) -> dict[str, Any]:
    """``{"cluster", "leaders", "total": pool-summary, "pools": {pool: pool-summary}}``.

    A pool summary: hosts, alive, lost, offline, draining, containers, capacity/free/used
    ({cpu cores, memory bytes}) and jobs ({state: count}).
    """
    pools: dict[str, dict[str, Any]] = {}
    total = _empty_pool()
    job_states: dict[str, Counter[str]] = {}
    for host in hosts:
        pool = pools.setdefault(str(host.get("pool", "default")), _empty_pool())
        for bucket in (pool, total):
            bucket["hosts"] += 1
            if host.get("status") == "lost":
                bucket["lost"] += 1
                continue
            bucket["alive"] += 1
            admin = host.get("admin")
            if admin in ("offline", "draining"):
                bucket[admin] += 1
            bucket["containers"] += int(_number(host.get("containers")))
            for side in ("capacity", "free"):
                values = host.get(side) or {}
                bucket[side]["cpu"] += _number(values.get("cpu"))
                bucket[side]["memory"] += int(_number(values.get("memory")))
    for job in jobs:
        name = str(job.get("pool", "default"))
        pools.setdefault(name, _empty_pool())
        for key in (name, ""):
            job_states.setdefault(key, Counter())[str(job.get("state", "UNKNOWN"))] += 1
    for name, pool in [*pools.items(), ("", total)]:
        pool["used"]["cpu"] = round(pool["capacity"]["cpu"] - pool["free"]["cpu"], 3)
        pool["used"]["memory"] = pool["capacity"]["memory"] - pool["free"]["memory"]
        pool["capacity"]["cpu"] = round(pool["capacity"]["cpu"], 3)
        pool["free"]["cpu"] = round(pool["free"]["cpu"], 3)
        pool["jobs"] = dict(sorted(job_states.get(name, Counter()).items()))
    return {
        "cluster": cluster,
        "leaders": {role: (None if info is None else {"id": info.identity, "endpoint": info.endpoint})
                    for role, info in leaders.items()},
        "total": total,
        "pools": dict(sorted(pools.items())),
    }
