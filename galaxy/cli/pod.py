"""``galaxy pod …``: the instances of a job — list, show, recover, logs, trace."""

from __future__ import annotations

import sys
import threading
from typing import Any

from galaxy.cli.job import POD_COLUMNS
from galaxy.cli.output import (
    Column,
    check_output,
    clock,
    emit,
    fields,
    human_age,
    table,
    trace_table,
)
from galaxy.cli.session import session
from galaxy.errors import InvalidInput

HISTORY_COLUMNS: list[Column] = [
    ("TIME", lambda r: clock(r.get("t", r.get("at", r.get("updated_at"))))),
    ("STATUS", lambda r: r.get("status")),
    ("VERSION", lambda r: r.get("version")),
    ("REASON", lambda r: r.get("reason")),
]


def pod_text(row: dict[str, Any]) -> str:
    """``pod show`` for people: the pod's fields, then its status history."""
    top = fields([
        ("Pod", row.get("pod")), ("Job", row.get("job")), ("Status", row.get("status")),
        ("Version", row.get("version")), ("Host", row.get("host")), ("Address", row.get("address")),
        ("Endpoint", row.get("endpoint")), ("Ports", row.get("ports")), ("Restarts", row.get("restarts", 0)),
        ("Reason", row.get("reason")), ("Updated", f"{human_age(row.get('updated_at'))} ago"),
    ])
    history = [h for h in row.get("history") or [] if isinstance(h, dict)]
    return top + "\n" + table(history, HISTORY_COLUMNS, empty="no history")


class PodCommands:
    """Pods: the running instances of jobs."""

    def list(self, job: str, output: str = "table") -> None:
        """The pods of JOB: host, status, version, restarts, ports."""
        check_output(output)
        with session() as client:
            rows = client.pods(job)
        emit(rows, output, lambda rs: table(rs, POD_COLUMNS, empty=f"job {job} has no pods"))

    def show(self, pod: str, output: str = "table") -> None:
        """POD in full, with its status history."""
        check_output(output)
        with session() as client:
            row = client.pod(pod)
        emit(row, output, pod_text)

    def recover(self, pod: str, output: str = "table") -> None:
        """Try a FAILED pod again."""
        check_output(output)
        with session() as client:
            reply = client.recover(pod)
        emit(reply, output, lambda r: f"pod {r.get('pod')} recovering: status {r.get('status')}\n")

    def trace(self, pod: str, limit: int = 100, output: str = "table") -> None:
        """POD's lifecycle events (placed, started, failed, …), oldest first."""
        check_output(output)
        with session() as client:
            events = client.pod_trace(pod, limit)
        emit(events, output, trace_table)

    def logs(self, pod: str, follow: bool = False, stderr: bool = False, tail: int = 100,
             output: str = "table") -> None:
        """Print POD's stdout (--stderr: its stderr): the last --tail lines; --follow keeps printing new
        output until Ctrl-C or until the pod's container is destroyed.

        With --output json, prints {"data", "offset"} once (not with --follow).
        """
        check_output(output)
        stream = "stderr" if stderr else "stdout"
        if follow and output == "json":
            raise InvalidInput("--follow streams text and cannot be combined with --output json", field="output")
        with session() as client:
            if not follow:
                piece = client.logs(pod, stream=stream, tail=tail)
                emit(piece, output, lambda p: str(p.get("data", "")))
                return
            stop = threading.Event()
            try:
                for chunk in client.follow_logs(pod, stream=stream, tail=tail, stop=stop):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
            finally:
                stop.set()
