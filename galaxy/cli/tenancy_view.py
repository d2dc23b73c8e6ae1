"""How users, grants, quotas, usage and pools look in a terminal (``galaxy user …``, ``galaxy pool …``).

Kept apart from the verbs so the tables can be read (and tested) without a cluster. Figures follow the
rest of the CLI: sizes ``16Gi``, cpu ``500m``; a limit that is not set reads ``unlimited``; usage is
shown in core-hours and GiB-hours (the server counts seconds: hours are what people bill in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from galaxy.cli.output import Column, clock, fields, human_age, human_bytes, human_cpu, table, text

UNLIMITED = "unlimited"
HOUR = 3600.0


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def grants_cell(grants: Any) -> str:
    """``default:job.create+job.read;gpu:host.admin`` — one token, so a row still splits on spaces."""
    parts = [f"{pool}:{'+'.join(sorted(map(str, perms)))}" for pool, perms in sorted(_map(grants).items()) if perms]
    return ";".join(parts) or "-"


def quota_cell(limit: Any) -> str:
    """The limits that are set, ``cpu=8,memory=16Gi,disk.ssd=100Gi,jobs=10``; ``-`` when none is."""
    return ",".join(f"{name}={shown}" for name, shown, value in quota_rows(limit, {}) if value is not None) or "-"


def quota_rows(limit: Any, used: Any) -> list[tuple[str, str, Any]]:
    """(name, limit as shown, raw limit) per quota: cpu, memory, each disk medium (limited or used), jobs,
    replicas."""
    limit, used = _map(limit), _map(used)
    mediums = sorted(set(_map(limit.get("disk"))) | set(_map(used.get("disk"))))
    out: list[tuple[str, str, Any]] = []
    for name, show in (("cpu", human_cpu), ("memory", human_bytes)):
        value = limit.get(name)
        out.append((name, UNLIMITED if value is None else show(value), value))
    for medium in mediums:
        value = _map(limit.get("disk")).get(medium)
        out.append((f"disk.{medium}", UNLIMITED if value is None else human_bytes(value), value))
    for name in ("jobs", "replicas"):
        value = limit.get(name)
        out.append((name, UNLIMITED if value is None else str(value), value))
    return out


def used_of(name: str, used: Any) -> str:
    used = _map(used)
    if name.startswith("disk."):
        return human_bytes(_map(used.get("disk")).get(name[5:], 0))
    value = used.get(name, 0)
    if name == "cpu":
        return human_cpu(value)
    if name == "memory":
        return human_bytes(value)
    return text(value)


def quota_table(limit: Any, used: Any) -> str:
    rows = [{"quota": name, "limit": shown, "used": used_of(name, used)} for name, shown, _ in quota_rows(limit, used)]
    return table(rows, [("QUOTA", lambda r: r["quota"]), ("LIMIT", lambda r: r["limit"]),
                        ("USED", lambda r: r["used"])])


def quota_text(reply: dict[str, Any]) -> str:
    """``user quota show`` / ``quota set``: whose quota, then each limit beside what is held against it."""
    return f"quota of {reply.get('user')}\n" + quota_table(reply.get("limit"), reply.get("used"))


USER_COLUMNS: list[Column] = [
    ("USER", lambda r: r.get("name")),
    ("ADMIN", lambda r: r.get("admin")),
    ("GRANTS", lambda r: grants_cell(r.get("grants"))),
    ("QUOTA", lambda r: quota_cell(r.get("quota"))),
    ("CREATED", lambda r: human_age(r.get("created"))),
]


def users_text(rows: list[dict[str, Any]]) -> str:
    return table(rows, USER_COLUMNS, empty="no users")


def grants_table(grants: Any) -> str:
    rows = [{"pool": pool, "perms": sorted(map(str, perms))} for pool, perms in sorted(_map(grants).items())]
    return table(rows, [("POOL", lambda r: r["pool"]), ("PERMISSIONS", lambda r: r["perms"])], empty="no grants")


def user_text(record: dict[str, Any]) -> str:
    """``user show``: the record's fields, its grants, then its quota with what is used."""
    top = fields([("User", record.get("name")), ("Admin", record.get("admin")), ("Key", record.get("key")),
                  ("Created", clock(record.get("created")))])
    return (top + "\n" + grants_table(record.get("grants")) + "\n"
            + quota_table(record.get("quota"), record.get("used")))


def whoami_text(reply: dict[str, Any]) -> str:
    top = fields([("User", reply.get("user")), ("Kind", reply.get("kind")), ("Admin", reply.get("admin"))])
    if reply.get("admin"):
        return top + "administrators may do everything in every pool\n"
    return top + "\n" + grants_table(reply.get("grants"))


def user_line(record: dict[str, Any]) -> str:
    return f"user {record.get('name')}: grants {grants_cell(record.get('grants'))}\n"


# ---- usage -------------------------------------------------------------------------------------------

def _hours(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value / HOUR:.2f}"


def _disk_hours(medium: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: _hours(_map(row.get("disk_reserved")).get(medium, 0))


def usage_text(report: dict[str, Any]) -> str:
    """One row per pool and a TOTAL: cpu used/reserved core-hours, memory used/reserved and disk per
    medium GiB-hours."""
    pools = _map(report.get("pools"))
    total = _map(report.get("total"))
    mediums = sorted({m for figures in [*pools.values(), total] for m in _map(_map(figures).get("disk_reserved"))})
    columns: list[Column] = [
        ("POOL", lambda r: r["pool"]),
        ("CPU-USED(core-h)", lambda r: _hours(r.get("cpu_used"))),
        ("CPU-RESERVED(core-h)", lambda r: _hours(r.get("cpu_reserved"))),
        ("MEMORY-USED(GiB-h)", lambda r: _hours(r.get("memory_used"))),
        ("MEMORY-RESERVED(GiB-h)", lambda r: _hours(r.get("memory_reserved"))),
    ]
    columns.extend((f"DISK-{medium.upper()}(GiB-h)", _disk_hours(medium)) for medium in mediums)
    head = (f"usage of {report.get('user')} from {clock(report.get('since'))} to {clock(report.get('until'))}\n")
    if not pools:
        return head + "no usage recorded\n"
    rows = [{"pool": pool, **_map(figures)} for pool, figures in sorted(pools.items())]
    rows.append({"pool": "TOTAL", **total})
    return head + table(rows, columns)


# ---- pools -------------------------------------------------------------------------------------------

POOL_COLUMNS: list[Column] = [
    ("POOL", lambda r: r.get("pool")),
    ("DECLARED", lambda r: r.get("declared")),
    ("HOSTS", lambda r: r.get("hosts", 0)),
    ("JOBS", lambda r: r.get("jobs", 0)),
    ("DESCRIPTION", lambda r: r.get("description")),
]


def pools_text(rows: list[dict[str, Any]]) -> str:
    return table(rows, POOL_COLUMNS, empty="no pools")


def policy_text(reply: dict[str, Any]) -> str:
    """``pool policy show`` / ``set``: each rule (``none`` = nothing allowed), then the built-in deny list."""
    def listed(name: str) -> str:
        values = reply.get(name)
        return ", ".join(map(str, values)) if isinstance(values, list) and values else "none"

    paths = [r for r in reply.get("host_paths") or [] if isinstance(r, dict)]
    by = reply.get("by")
    top = fields([("Pool", reply.get("pool")), ("Root users", listed("root_users")),
                  ("Host paths", ", ".join(f"{r.get('path')}:{'rw' if r.get('writable') else 'ro'}" for r in paths)
                   or "none"),
                  ("Package sources", listed("package_sources")), ("Capabilities", listed("capabilities")),
                  ("Updated", f"{clock(reply.get('updated'))} by {by}" if by else "never (nothing allowed)")])
    denied = ", ".join(["/", *map(str, reply.get("denied") or [])])
    return top + f"never bound into a container, whatever the policy: {denied} (and what holds them)\n"
