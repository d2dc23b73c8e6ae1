"""``galaxy agent …``: hosts as ResMan sees them, and the administrator's levers on them.

These verbs talk to ResMan, so they need a key ResMan trusts (an administrator's).
"""

from __future__ import annotations

from typing import Any

from galaxy.cli.output import (
    Column,
    Progress,
    check_output,
    emit,
    fields,
    human_bytes,
    human_cpu,
    table,
    text,
    trace_table,
)
from galaxy.cli.session import session

WAIT_TIMEOUT = 600.0


def _side(row: dict[str, Any], side: str) -> dict[str, Any]:
    value = row.get(side)
    return value if isinstance(value, dict) else {}


def cpu_cell(row: dict[str, Any]) -> str:
    return f"{human_cpu(_side(row, 'free').get('cpu'))}/{human_cpu(_side(row, 'capacity').get('cpu'))}"


def memory_cell(row: dict[str, Any]) -> str:
    return f"{human_bytes(_side(row, 'free').get('memory'))}/{human_bytes(_side(row, 'capacity').get('memory'))}"


def disks_cell(row: dict[str, Any]) -> str:
    free, capacity = _side(row, "free").get("disks") or {}, _side(row, "capacity").get("disks") or {}
    if not isinstance(capacity, dict) or not capacity:
        return "-"
    return ",".join(f"{medium}={human_bytes(free.get(medium) if isinstance(free, dict) else None)}/"
                    f"{human_bytes(size)}" for medium, size in sorted(capacity.items()))


HOST_COLUMNS: list[Column] = [
    ("HOST", lambda r: r.get("id")),
    ("POOL", lambda r: r.get("pool")),
    ("STATUS", lambda r: r.get("status")),
    ("ADMIN", lambda r: r.get("admin")),
    ("CPU FREE/ALL", cpu_cell),
    ("MEMORY FREE/ALL", memory_cell),
    ("CONTAINERS", lambda r: r.get("containers", 0)),
    ("LABELS", lambda r: r.get("labels")),
    ("ADDRESS", lambda r: r.get("address")),
]


def host_text(data: dict[str, Any]) -> str:
    """``agent show`` for people: the host's fields, then its recorded events."""
    row = data["host"]
    top = fields([
        ("Host", row.get("id")), ("Pool", row.get("pool")), ("Status", row.get("status")),
        ("Admin", row.get("admin")), ("Address", row.get("address")), ("Labels", row.get("labels")),
        ("CPU free/all", cpu_cell(row)), ("Memory free/all", memory_cell(row)), ("Disks free/all", disks_cell(row)),
        ("Containers", row.get("containers", 0)),
    ])
    return top + "\n" + trace_table(data["trace"])


def _labels_text(reply: dict[str, Any]) -> str:
    rows = reply.get("hosts") if isinstance(reply.get("hosts"), list) else [reply]
    return "".join(f"host {r.get('host')} labels: {text(r.get('labels'))}\n" for r in rows)


def _admin_line(reply: dict[str, Any]) -> str:
    return f"host {reply.get('host')}: {text(reply.get('admin'))}\n"


class AgentCommands:
    """Hosts (one Agent each): list, show, take offline, drain, label, move between pools."""

    def list(self, pool: str | None = None, output: str = "table") -> None:
        """Every host (of --pool): liveness, admin state, free/total cpu and memory, containers."""
        check_output(output)
        with session() as client:
            rows = client.hosts(pool)
        emit(rows, output, lambda rs: table(rs, HOST_COLUMNS, empty="no hosts"))

    def show(self, host: str, limit: int = 20, output: str = "table") -> None:
        """HOST in full, with its last --limit recorded events (lost, drained, …)."""
        check_output(output)
        with session() as client:
            data = {"host": client.host(host), "trace": client.host_trace(host, limit)}
        emit(data, output, host_text)

    def offline(self, host: str, output: str = "table") -> None:
        """Place no new containers on HOST (running ones stay)."""
        check_output(output)
        with session() as client:
            emit(client.offline(host), output, _admin_line)

    def online(self, host: str, output: str = "table") -> None:
        """Let HOST take new containers again."""
        check_output(output)
        with session() as client:
            emit(client.online(host), output, _admin_line)

    def drain(self, host: str, wait: bool = False, timeout: float = WAIT_TIMEOUT, output: str = "table") -> None:
        """Move every container off HOST; --wait shows progress until none is left."""
        check_output(output)
        with session() as client:
            reply = client.drain(host)
            if not wait:
                emit(reply, output, _admin_line)
                return
            progress = Progress()
            try:
                row = client.wait_drained(host, timeout=timeout, on_progress=lambda r: progress.show(
                    f"{host}: {r.get('admin')}, {r.get('containers', 0)} containers left"))
            finally:
                progress.done()
        emit(row, output, lambda r: f"host {host} drained: {r.get('containers', 0)} containers, "
                                    f"admin {r.get('admin')}\n")

    def label(self, host: str, *labels: str, output: str = "table") -> None:
        """Add LABELS to HOST: `galaxy agent label HOST ssd gpu`; HOST may be a comma list (h1,h2):
        every host gets them, or — if you lack host.admin on any one's pool — none does."""
        check_output(output)
        with session() as client:
            reply = client.label(str(host), list(labels))
        emit(reply, output, _labels_text)

    def unlabel(self, host: str, *labels: str, output: str = "table") -> None:
        """Remove LABELS from HOST (or from each of a comma list of hosts, all or none)."""
        check_output(output)
        with session() as client:
            reply = client.unlabel(str(host), list(labels))
        emit(reply, output, _labels_text)

    def move(self, host: str, pool: str, output: str = "table") -> None:
        """Put HOST into POOL."""
        check_output(output)
        with session() as client:
            reply = client.move(host, pool)
        emit(reply, output, lambda r: f"host {r.get('host')} moved to pool {r.get('pool')}\n")
