"""``galaxy job …``: verbs on jobs. ``validate`` and ``template`` work offline, from the job file alone;
every other verb is one SDK call (plus a wait, with ``--wait``) and printing.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from galaxy.cli.output import (
    Column,
    Progress,
    check_output,
    emit,
    fields,
    human_age,
    human_bytes,
    human_cpu,
    table,
    text,
    trace_table,
)
from galaxy.cli.session import session
from galaxy.errors import InvalidInput
from galaxy.spec import TEMPLATE, JobSpec, SpecError, dump_yaml, load_job_file

if TYPE_CHECKING:
    from galaxy.sdk import Client

OUTPUT_FORMATS = ("yaml", "json")
WAIT_TIMEOUT = 600.0

JOB_COLUMNS: list[Column] = [
    ("JOB", lambda r: r.get("job")),
    ("POOL", lambda r: r.get("pool")),
    ("OWNER", lambda r: r.get("owner")),
    ("TYPE", lambda r: r.get("type")),
    ("STATE", lambda r: r.get("state")),
    ("VERSION", lambda r: r.get("version")),
    ("PODS", lambda r: f"{r.get('running', 0)}/{r.get('replicas', 0)}"),
    ("PENDING", lambda r: r.get("pending", 0)),
    ("FAILED", lambda r: r.get("failed", 0)),
    ("UPDATED", lambda r: human_age(r.get("updated_at"))),
]

POD_COLUMNS: list[Column] = [
    ("POD", lambda r: r.get("pod")),
    ("HOST", lambda r: r.get("host")),
    ("ADDRESS", lambda r: r.get("address")),
    ("STATUS", lambda r: r.get("status")),
    ("VERSION", lambda r: r.get("version")),
    ("RESTARTS", lambda r: r.get("restarts", 0)),
    ("PORTS", lambda r: r.get("ports")),
    ("AGE", lambda r: human_age(r.get("updated_at"))),
    ("REASON", lambda r: r.get("reason")),
]


def render(data: Any, output: str) -> str:
    """Plain data as the chosen output format: ``yaml`` (block style, field order kept) or ``json``."""
    if output == "json":
        return json.dumps(data, indent=2)
    return dump_yaml(data)


def print_spec_errors(err: SpecError) -> None:
    """Every error of a job file, one ``path: message`` per line on stderr."""
    for item in err.errors:
        print(str(item), file=sys.stderr)


def pods_line(row: dict[str, Any]) -> str:
    return (f"{row.get('running', 0)}/{row.get('replicas', 0)} running, {row.get('pending', 0)} pending, "
            f"{row.get('failed', 0)} failed")


def show_text(row: dict[str, Any]) -> str:
    """``job show`` for people: the job's fields, its rollout, then its pods."""
    spec = row.get("spec") or {}
    resources = spec.get("resources") or {} if isinstance(spec, dict) else {}
    update = row.get("update")
    rollout = "-"
    if isinstance(update, dict):
        rollout = (f"to version {text(update.get('target'))}: {text(update.get('done'))} done, step "
                   f"{text(update.get('step'))}, breakpoint {text(update.get('breakpoint'))}, "
                   f"failures {text(update.get('failures'))}{', PAUSED' if update.get('paused') else ''}")
    top = fields([
        ("Job", row.get("job")), ("Pool", row.get("pool")), ("Owner", row.get("owner")), ("Type", row.get("type")),
        ("State", row.get("state")), ("Version", row.get("version")), ("Versions", row.get("versions")),
        ("Pods", pods_line(row)),
        ("Resources", f"cpu {human_cpu(resources.get('cpu'))}, memory {human_bytes(resources.get('memory'))}"
         if resources else None),
        ("Rollout", rollout), ("Updated", f"{human_age(row.get('updated_at'))} ago"),
    ])
    return top + "\n" + table(row.get("pods") or [], POD_COLUMNS, empty="no pods")


def plan_text(reply: dict[str, Any]) -> str:
    verdict = "feasible" if reply.get("feasible") else "NOT feasible"
    lines = [f"job {reply.get('job')}: {verdict}, {reply.get('placements', 0)} pods would be placed"]
    for key, value in reply.items():
        if key not in ("job", "feasible", "placements", "reasons"):
            lines.append(f"  {key}: {text(value)}")
    lines.extend(f"  - {reason}" for reason in reply.get("reasons") or [])
    return "\n".join(lines) + "\n"


def exec_text(results: dict[str, dict[str, Any]]) -> str:
    """Each pod's output under a header; the pod's stderr goes to our stderr as it would locally."""
    parts = []
    for pod, result in sorted(results.items()):
        parts.append(f"==> {pod} (exit {text(result.get('exit_code'))}) <==\n")
        out = str(result.get("stdout") or "")
        parts.append(out if not out or out.endswith("\n") else out + "\n")
        err = str(result.get("stderr") or "")
        if err:
            sys.stderr.write(f"{pod}: {err}" if err.endswith("\n") else f"{pod}: {err}\n")
    return "".join(parts) or "no pods ran the command\n"


def wait_for(client: Client, job: str, timeout: float) -> dict[str, Any]:
    """Wait for ``job`` to settle with a progress line on stderr; returns its last ``show``."""
    progress = Progress()
    try:
        return client.wait_job(job, timeout=timeout, on_progress=lambda r: progress.show(
            f"{job}: {r.get('state')}  {pods_line(r)}"))
    finally:
        progress.done()


def load_spec(file: str) -> JobSpec:
    return load_job_file(str(file))


class JobCommands:
    """Jobs: write one (template), check it (validate, plan), run it, change it, look at it, remove it."""

    def __init__(self) -> None:
        self._argv: list[str] | None = None  # `job exec JOB -- CMD…`: the words after `--`, set by main

    # ---- offline ----------------------------------------------------------------------------------

    def validate(self, file: str, output: str = "yaml") -> None:
        """Check a job file and print it normalised (every default filled in, sizes in bytes, durations in
        seconds), or print each problem as `field: message` and exit 1.

        Args:
            file: the job file (YAML or JSON).
            output: yaml or json.
        """
        if output not in OUTPUT_FORMATS:
            raise InvalidInput(f"--output must be one of {', '.join(OUTPUT_FORMATS)}, got {output!r}",
                               field="output")
        try:
            spec = load_job_file(str(file))
        except SpecError as err:
            print_spec_errors(err)
            raise SystemExit(1) from None
        sys.stdout.write(render(spec.to_dict(), output))
        if output == "json":
            sys.stdout.write("\n")

    def template(self) -> None:
        """Print a job file with every field and a comment on each: a starting point for your own."""
        sys.stdout.write(TEMPLATE)

    # ---- create and change --------------------------------------------------------------------------

    def submit(self, file: str, wait: bool = False, timeout: float = WAIT_TIMEOUT, output: str = "table") -> None:
        """Start the job in FILE. With --wait, show progress until every pod runs (or it fails: exit 1).

        With --output json, prints the submit reply, or with --wait the job as `job show` gives it.
        """
        spec = load_spec(file)
        check_output(output)  # before any network call
        with session() as client:
            reply = client.submit(spec)
            if not wait:
                emit(reply, output, lambda r: f"job {r.get('job')} submitted: version {r.get('version')}, "
                                              f"state {r.get('state')}\n")
                return
            row = wait_for(client, spec.name, timeout)
        emit(row, output, lambda r: f"job {r.get('job')} {r.get('state')}: {pods_line(r)} "
                                    f"(version {r.get('version')})\n")

    def plan(self, file: str, output: str = "table") -> None:
        """Show what submitting FILE would place and why anything would not fit; changes nothing."""
        spec = load_spec(file)
        check_output(output)
        with session() as client:
            emit(client.plan(spec), output, plan_text)

    def update(self, job: str, file: str, breakpoint: int | None = None, wait: bool = False,
               timeout: float = WAIT_TIMEOUT, output: str = "table") -> None:
        """Roll JOB to the spec in FILE; --breakpoint N pauses after N pods; --wait follows the rollout."""
        spec = load_spec(file)
        check_output(output)
        if spec.name != job:
            raise InvalidInput(f"the file describes job {spec.name!r}, not {job!r}", field="name")
        with session() as client:
            reply = client.update(job, spec, breakpoint=breakpoint)
            if not wait:
                emit(reply, output, lambda r: f"job {r.get('job')} updating to version {r.get('version')}: "
                                              f"state {r.get('state')}\n")
                return
            row = wait_for(client, job, timeout)
        emit(row, output, lambda r: f"job {r.get('job')} {r.get('state')}: {pods_line(r)} "
                                    f"(version {r.get('version')})\n")

    def pause(self, job: str, output: str = "table") -> None:
        """Hold JOB's rollout where it is."""
        self._state_verb("pause", job, output)

    def resume(self, job: str, output: str = "table") -> None:
        """Continue JOB's paused rollout."""
        self._state_verb("resume", job, output)

    def rollback(self, job: str, output: str = "table") -> None:
        """Roll JOB back to its previous version."""
        self._state_verb("rollback", job, output)

    def cancel(self, job: str, output: str = "table") -> None:
        """Stop JOB's rollout where it is."""
        self._state_verb("cancel", job, output)

    def stop(self, job: str, output: str = "table") -> None:
        """Stop every pod of JOB (containers are kept until `job remove`)."""
        self._state_verb("stop", job, output)

    def scale(self, job: str, replicas: int, output: str = "table") -> None:
        """Run REPLICAS pods of JOB."""
        check_output(output)
        with session() as client:
            reply = client.scale(job, replicas)
        emit(reply, output, lambda r: f"job {r.get('job')} scaled to {r.get('replicas')} replicas\n")

    def remove(self, job: str, output: str = "table") -> None:
        """Delete JOB with its pods and containers."""
        check_output(output)
        with session() as client:
            reply = client.remove(job)
        emit(reply, output, lambda r: f"job {r.get('job')} removed\n")

    def exec(self, job: str, command: str = "", timeout: float = 30.0, output: str = "table") -> None:
        """Run a command in every pod of JOB: `galaxy job exec JOB -- CMD ARGS…` (or --command "CMD ARGS").

        Prints each pod's output; exits 1 if any pod's command failed.
        """
        check_output(output)
        words = self._argv
        if words is not None and command:
            raise InvalidInput("give the command after `--` or with --command, not both", field="command")
        argv: str | list[str] = words if words is not None else str(command)
        if not argv:
            raise InvalidInput("give a command: galaxy job exec JOB -- CMD ARGS…", field="command")
        with session() as client:
            results = client.exec(job, argv, timeout=timeout)
        emit(results, output, exec_text)
        if any(r.get("exit_code") != 0 for r in results.values()):
            raise SystemExit(1)

    # ---- look --------------------------------------------------------------------------------------

    def list(self, pool: str | None = None, output: str = "table") -> None:
        """Every job (of --pool): state, version, pods running/wanted."""
        check_output(output)
        with session() as client:
            rows = client.jobs(pool)
        emit(rows, output, lambda rs: table(rs, JOB_COLUMNS, empty="no jobs"))

    def show(self, job: str, output: str = "table") -> None:
        """JOB in full: state, versions, the rollout in progress, its pods."""
        check_output(output)
        with session() as client:
            row = client.job(job)
        emit(row, output, show_text)

    def trace(self, job: str, limit: int = 100, output: str = "table") -> None:
        """JOB's lifecycle events (submitted, updated, paused, …), oldest first."""
        check_output(output)
        with session() as client:
            events = client.job_trace(job, limit)
        emit(events, output, trace_table)

    def _state_verb(self, verb: str, job: str, output: str) -> None:
        check_output(output)
        with session() as client:
            reply = getattr(client, verb)(job)
        done = {"pause": "paused", "resume": "resumed", "rollback": "rolling back", "cancel": "rollout cancelled",
                "stop": "stopping"}[verb]
        emit(reply, output, lambda r: f"job {r.get('job')} {done}: state {r.get('state')}"
                                      + (f", version {r['version']}" if r.get("version") is not None else "")
                                      + "\n")
