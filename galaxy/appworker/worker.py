"""The worker's state machine: one thread owns every field of the pod's state.

Inputs are events in one queue — the master's replies, the service's exit, health results, results
of background steps (deploy, stop, reload), timers, signals — and the owner thread handles them one at
a time, so no lock guards the state. Every change bumps ``seq`` and publishes a snapshot the
:class:`Reporter` sends at once. A reply is applied only if it answers the current ``seq``: a reply to
an older state (sent before a change the master has not seen) could repeat a restart, so it is
dropped and the fresh report that follows gets a fresh answer. ``exec`` ids are remembered instead.

Flows (each step's result comes back as an event, tagged with a generation so a cancelled flow's late
result is ignored)::

    deploy V  : DEPLOYING → (fetch, unpack, deploy cmd) → STOPPED(V)            | DEPLOY_FAILED
    start     : [deploy if needed] → STARTING → healthy → RUNNING              | START_FAILED
    update V  : DEPLOYING (old runs) → STOPPING → STARTING(V) → RUNNING(V)      | UPDATE_FAILED
    restart   : [STOPPING →] STARTING → RUNNING, restarts + 1
    stop      : STOPPING → STOPPED;  give_up: → FAILED
    service exit while RUNNING: EXITED(code) | KILLED(signal, oom); with no master answering, a local
    restart after the restart policy's backoff.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from galaxy.appworker.deploy import Workspace, deploy_version, reload_data
from galaxy.appworker.exec import run_command
from galaxy.appworker.health import HealthMonitor, describe, tcp_probe
from galaxy.appworker.logs import RotatingLog
from galaxy.appworker.process import ServiceProcess
from galaxy.appworker.program import DataPlan, ProgramPlan, parse_data
from galaxy.appworker.reaper import ExitInfo, OomCounter, Reaper, RunAs
from galaxy.appworker.reporter import Reporter, Transport
from galaxy.appworker.settings import WorkerSettings, service_base_env
from galaxy.errors import GalaxyError, InvalidInput
from galaxy.protocol.pod import PodCommand, PodReport

log = logging.getLogger(__name__)

EXEC_TIMEOUT_MAX = 600.0
FAILED_RUN = ("EXITED", "KILLED", "START_FAILED")
EXEC_MEMORY = 256


class Worker:
    """The AppWorker minus its transport: give it ``transport(method, body) -> reply``."""

    def __init__(self, settings: WorkerSettings, transport: Transport, *, reaper: Reaper | None = None) -> None:
        self.settings = settings
        self.reaper = reaper or Reaper(reap_orphans=False)
        self._own_reaper = reaper is None
        self.workspace = Workspace(settings.work_dir, settings.uid, settings.gid, settings.keep_versions,
                                   package_max_bytes=settings.package_max_bytes)
        self.run_as = RunAs(settings.uid, settings.gid)
        self.stdout_log = RotatingLog(self.workspace.log_dir / "stdout.log", settings.log_max_bytes,
                                      settings.log_keep)
        self.stderr_log = RotatingLog(self.workspace.log_dir / "stderr.log", settings.log_max_bytes,
                                      settings.log_keep)
        self.oom = OomCounter()
        self.finished = threading.Event()
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._timers: list[tuple[float, int, str]] = []
        self._timer_ids: dict[str, int] = {}
        self._timer_counter = 0
        self._report = PodReport(pod=settings.pod, job=settings.job, status="PENDING",
                                 host=settings.host or settings.host_address, endpoint=settings.endpoint)
        self._published: tuple[int, dict[str, Any]] = (0, self._report.to_wire())
        self._publish_lock = threading.Lock()
        self._plan: ProgramPlan | None = None          # the program last received (target version)
        self._program: dict[str, Any] = {}
        self._pending_program: dict[str, Any] = {}     # the raw program of the command being applied
        self._running_plan: ProgramPlan | None = None  # what the live service was started from
        self._last_health_detail = ""
        self._service: ServiceProcess | None = None
        self._health: HealthMonitor | None = None
        self._busy: str | None = None
        self._gen = 0
        self._failure_status: str | None = None
        self._reloading = False
        self._master_lost = False
        self._local_attempts = 0
        self._exec_seen: OrderedDict[str, None] = OrderedDict()
        self._shutting_down = False
        interval = settings.report_interval
        self.reporter = Reporter(transport, self.snapshot_wire, lambda seq, body: self._post("reply", seq, body),
                                 lambda ok: self._post("master", ok), interval=interval,
                                 lost_after=max(3 * interval, 2.0))
        self._thread = threading.Thread(target=self._loop, name="galaxy-worker", daemon=True)

    # ---- public ------------------------------------------------------------------------------

    def start(self) -> Worker:
        self.workspace.ensure()
        self._thread.start()
        self.reporter.start()
        return self

    def snapshot(self) -> PodReport:
        return PodReport(**self.snapshot_wire()[1])

    def snapshot_wire(self) -> tuple[int, dict[str, Any]]:
        with self._publish_lock:
            seq, body = self._published
            return seq, dict(body)

    def request_shutdown(self) -> None:
        """Stop the service cleanly, report once more, then finish (SIGTERM to the worker)."""
        self._post("shutdown")

    def forward_signal(self, sig: int) -> None:
        self._post("signal", sig)

    def close(self, timeout: float = 60.0) -> None:
        """Shut down and wait for it (tests' finalizers; main after SIGTERM)."""
        if self._thread.is_alive():
            self.request_shutdown()
            self.finished.wait(timeout)
        self.reporter.close()
        if self._service is not None and self._service.alive:
            self._service.kill()
        if self._own_reaper:
            self.reaper.stop()
        self.stdout_log.close()
        self.stderr_log.close()

    # ---- plumbing ----------------------------------------------------------------------------

    def _post(self, kind: str, *args: Any) -> None:
        self._inbox.put((kind, *args))

    def _set(self, **fields: Any) -> None:
        changed = False
        for name, value in fields.items():
            if getattr(self._report, name) != value:
                setattr(self._report, name, value)
                changed = True
        if changed:
            self._report.seq += 1
            with self._publish_lock:
                self._published = (self._report.seq, self._report.to_wire())
            self.reporter.poke()

    def _count_restart(self) -> None:
        """Count a restart without publishing it alone: it goes out with the status change that follows
        at once (STARTING / STOPPING). Published alone, the old failure status under a new ``seq`` would
        make the master count the failure it is retrying a second time."""
        self._report.restarts += 1

    def _note(self, message: str) -> None:
        """Change only the message, keeping ``seq``: the master counts a failure once per ``seq``, so a
        remark about a failure already reported (a restart's countdown) must not look like a new one."""
        if self._report.message == message:
            return
        self._report.message = message
        with self._publish_lock:
            self._published = (self._report.seq, self._report.to_wire())
        self.reporter.poke()

    def _schedule(self, name: str, delay: float) -> None:
        self._timer_counter += 1
        self._timer_ids[name] = self._timer_counter
        heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_counter, name))

    def _cancel(self, *names: str) -> None:
        for name in names:
            self._timer_ids.pop(name, None)

    def _background(self, name: str, fn: Any, *args: Any) -> None:
        threading.Thread(target=fn, args=args, name=f"galaxy-{name}", daemon=True).start()

    def _loop(self) -> None:
        while not self.finished.is_set():
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                event = self._inbox.get(timeout=timeout)
            except queue.Empty:
                event = None
            if event is not None:
                self._handle(event)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, ident, name = heapq.heappop(self._timers)
                if self._timer_ids.get(name) == ident:
                    del self._timer_ids[name]
                    self._handle(("timer", name))

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind, *args = event
        try:
            getattr(self, f"_on_{kind}")(*args)
        except Exception:  # one bad event must not end PID 1's state machine
            log.exception("handling %s failed", kind)

    # ---- the master --------------------------------------------------------------------------

    def _on_reply(self, seq: int, body: Any) -> None:
        try:
            cmd = PodCommand.from_wire(body)
        except GalaxyError as err:
            log.warning("ignoring a malformed command: %s", err)
            return
        if cmd.command == "exec" or cmd.exec:
            self._exec(cmd.exec)
        if seq != self._report.seq or self._shutting_down or cmd.command in ("none", "exec"):
            return
        if self._busy and (cmd.command not in ("stop", "give_up", "reload") or self._busy == "stop"):
            return  # a repeat of the intent already under way
        try:
            self._command(cmd)
        except GalaxyError as err:
            status = self._failure_status or ("DEPLOY_FAILED" if cmd.command == "deploy" else
                                              "UPDATE_FAILED" if cmd.command == "update" else "START_FAILED")
            self._set(status=status, message=str(err))

    def _command(self, cmd: PodCommand) -> None:
        self._cancel("local_restart")
        if cmd.command == "reload":
            self._reload(parse_data(cmd.data, cmd.version))
            return
        if cmd.command in ("stop", "give_up"):
            self._cancel("restart", "start_deadline", "settled")
            self._gen += 1
            self._busy = None
            final = "FAILED" if cmd.command == "give_up" else "STOPPED"
            if self._service is not None and self._service.alive:
                self._begin_stop(then=final, reason=cmd.reason)
            else:
                self._set(status=final, message=cmd.reason or ("gave up" if final == "FAILED" else "stopped"),
                          pid=None, healthy=None)
            return
        if cmd.command == "restart":
            if self._plan is None:
                raise InvalidInput("nothing to restart: no program received yet", field="command")
            if cmd.delay > 0:
                if "restart" not in self._timer_ids:
                    self._schedule("restart", cmd.delay)
                    self._note(f"restarting in {cmd.delay:g} s")
                return
            self._restart()
            return
        plan = self._plan_of(cmd)
        if cmd.command == "deploy":
            self._failure_status = None
            if self._service is not None and self._service.alive and self._service.version == plan.version:
                return
            self._deploy(plan, then=None)
        elif cmd.command == "start":
            self._failure_status = None
            if self._service is not None and self._service.alive:
                return
            if self._report.status in FAILED_RUN:
                self._count_restart()
            self._start(plan)
        elif cmd.command == "update":
            self._failure_status = "UPDATE_FAILED"
            running = self._service is not None and self._service.alive
            if running and self._service is not None and self._service.version == plan.version:
                self._plan, self._program = plan, dict(cmd.program or self._program)
                self._failure_status = None
                self._set(status="RUNNING", message=f"running {plan.version}")
                return
            self._deploy(plan, then="update" if running else "start")

    def _plan_of(self, cmd: PodCommand) -> ProgramPlan:
        if cmd.program is not None:
            plan = ProgramPlan.parse(cmd.version, cmd.program)
            self._pending_program = dict(cmd.program)
            return plan
        if self._plan is None or (cmd.version is not None and cmd.version != self._plan.version):
            raise InvalidInput(f"no program for version {cmd.version}", field="program")
        self._pending_program = self._program
        return self._plan

    def _on_master(self, ok: bool) -> None:
        self._master_lost = not ok
        if ok:
            self._cancel("local_restart")
            self._local_attempts = 0
            log.info("the master answers again")
        else:
            log.warning("no master has answered for a while: carrying on alone")
            self._maybe_restart_locally()

    # ---- deploy ------------------------------------------------------------------------------

    def _deploy(self, plan: ProgramPlan, then: str | None) -> None:
        self._gen += 1
        self._busy = "deploy"
        program = self._pending_program
        running = self._report.version if self._service is not None and self._service.alive else None
        note = f"deploying {plan.version}" + (f" while {running} runs" if running else "")
        self._set(status="DEPLOYING", message=note)
        self._background("deploy", self._deploy_step, self._gen, plan, program, then, running, self._env(plan))

    def _deploy_step(self, gen: int, plan: ProgramPlan, program: dict[str, Any], then: str | None,
                     running: str | None, env: dict[str, str]) -> None:
        error = None
        try:
            deploy_version(self.workspace, self.reaper, self.run_as, plan, program, env, running)
        except (GalaxyError, OSError) as err:
            error = str(err)
        except Exception as err:
            log.exception("deploy of %s failed", plan.version)
            error = f"deploy failed: {err}"
        self._post("deployed", gen, plan, program, then, error)

    def _on_deployed(self, gen: int, plan: ProgramPlan, program: dict[str, Any], then: str | None,
                     error: str | None) -> None:
        if gen != self._gen:
            return
        self._busy = None
        if error is not None:
            status = self._failure_status or "DEPLOY_FAILED"
            alive = self._service is not None and self._service.alive
            self._set(status=status, message=error, **({} if alive else {"pid": None}))
            return
        self._plan, self._program = plan, program
        if then is None:
            alive = self._service is not None and self._service.alive
            self._set(status="RUNNING" if alive else "STOPPED",
                      version=self._report.version if alive else plan.version, message=f"deployed {plan.version}")
        elif then == "update":
            self._begin_stop(then="update")
        else:
            self._start(plan)

    # ---- start / exit / health ---------------------------------------------------------------

    def _start(self, plan: ProgramPlan) -> None:
        if not self.workspace.is_deployed(plan.version, self._pending_program):
            self._deploy(plan, then="start")
            return
        self._plan, self._program = plan, self._pending_program
        self._gen += 1
        vdir = self.workspace.version_dir(plan.version)
        try:
            service = ServiceProcess.start(self.reaper, plan.start, version=plan.version, run_as=self.run_as,
                                           cwd=vdir, env=self._env(plan), stdout=self.stdout_log,
                                           stderr=self.stderr_log, oom=self.oom)
        except GalaxyError as err:
            self._set(status=self._failure_status or "START_FAILED", message=str(err), pid=None)
            return
        self._service = service
        self._running_plan = plan
        self._last_health_detail = ""
        self._busy = "start"
        gen = self._gen
        service.on_exit(lambda info: self._background("exit", self._after_exit, gen, service, info))
        self._set(status="STARTING", version=plan.version, pid=service.pid, exit_code=None, signal=None,
                  oom=False, core_dumped=False, healthy=None, message=f"starting {plan.version}")
        timeout = plan.start_timeout or self.settings.start_timeout
        self._schedule("start_deadline", timeout)
        if plan.health is None:
            self._schedule("settled", self.settings.settle_time)
        else:
            self._watch_health(plan, gen)

    def _watch_health(self, plan: ProgramPlan, gen: int) -> None:
        health = plan.health
        assert health is not None
        if health.tcp is not None:
            port = self.settings.port(health.tcp)
            if port is None:
                self._set(message=f"health: no port named {health.tcp} (GALAXY_PORT_{health.tcp.upper()})")
                return
            probe = tcp_probe(port, health.timeout)
        else:
            command, env, cwd = health.command or "", self._env(plan), self.workspace.version_dir(plan.version)

            def probe() -> tuple[bool, str]:
                result = run_command(self.reaper, command, run_as=self.run_as, cwd=cwd, env=env,
                                     timeout=health.timeout, limit=4096)
                return result.ok, "" if result.ok else result.describe("health command", health.timeout)

        self._health = HealthMonitor(probe, health.interval,
                                     lambda ok, detail: self._post("health", gen, ok, detail)).start()

    def _on_health(self, gen: int, healthy: bool, detail: str) -> None:
        if gen != self._gen or self._service is None or not self._service.alive:
            return
        if healthy and self._report.status == "STARTING":
            self._running()
        elif self._report.status == "RUNNING":
            self._set(healthy=healthy, message="healthy" if healthy else f"unhealthy: {detail}")
        elif not healthy:
            self._last_health_detail = detail

    def _on_timer(self, name: str) -> None:
        if name == "settled" and self._report.status == "STARTING" and self._service and self._service.alive:
            self._running()
        elif name == "start_deadline" and self._report.status == "STARTING" and self._service is not None:
            plan = self._plan
            detail = self._last_health_detail
            self._service.kill()
            self._fail_start(f"not healthy ({describe(plan.health if plan else None)}) within "
                             f"{(plan.start_timeout if plan else None) or self.settings.start_timeout:g} s"
                             + (f": {detail}" if detail else ""))
        elif name == "restart":
            self._restart()
        elif name == "local_restart":
            if self._master_lost and self._report.status in FAILED_RUN and self._plan is not None:
                self._local_attempts += 1
                self._pending_program = self._program
                self._count_restart()
                self._start(self._plan)

    def _running(self) -> None:
        self._busy = None
        self._failure_status = None
        self._cancel("start_deadline", "settled")
        self._set(status="RUNNING", healthy=True, message=f"running {self._report.version}")

    def _fail_start(self, reason: str) -> None:
        self._busy = None
        self._stop_health()
        self._cancel("start_deadline", "settled")
        self._set(status=self._failure_status or "START_FAILED", message=reason, healthy=None)
        self._maybe_restart_locally()

    def _after_exit(self, gen: int, service: ServiceProcess, info: ExitInfo) -> None:
        """The leader has exited: its run's leftovers are stopped before the exit is reported, so no
        restart (the master's or a local one) starts beside them."""
        left = service.end(self.reaper, self.settings.stop_grace)
        if left:
            log.info("stopped %d process(es) left by %s's run of %s", left, self.settings.pod, service.version)
        service.drain_output()
        self._post("exited", gen, service, info)

    def _on_exited(self, gen: int, service: ServiceProcess, info: ExitInfo) -> None:
        if service is not self._service:
            return
        self._stop_health()
        fields: dict[str, Any] = {"pid": None, "exit_code": info.exit_code, "signal": info.signal,
                                  "core_dumped": info.core_dumped, "oom": service.oom_killed(info)}
        del gen
        if self._busy in ("stop", "deploy") or self._report.status in ("STOPPING", "START_FAILED",
                                                                       "UPDATE_FAILED"):
            self._set(**fields)  # the step under way (or a failed start) decides the status
            return
        self._set(**fields)
        tail = self.stderr_log.tail(400).strip().splitlines()[-2:]
        reason = info.describe() + (" (out of memory)" if fields["oom"] else "") + \
            (": " + " | ".join(tail) if tail else "")
        # A clean exit 0 is no failed start: it is a batch job done before it settled (the master, which
        # knows the job's type, calls it success or a service's exit).
        if self._report.status == "STARTING" and not (info.exit_code == 0 and info.signal is None):
            self._fail_start(f"start command {reason} before it was healthy")
            return
        self._busy = None
        self._set(status="KILLED" if info.signal is not None else "EXITED", healthy=None,
                  message=f"service {reason}")
        self._maybe_restart_locally()

    def _stop_health(self) -> None:
        if self._health is not None:
            self._health.stop()
            self._health = None

    def _maybe_restart_locally(self) -> None:
        """With no master to ask, a dead service is restarted here by the last restart policy."""
        plan = self._plan
        if not self._master_lost or plan is None or self._report.status not in FAILED_RUN:
            return
        if self._report.status == "EXITED" and self._report.exit_code == 0:
            return  # a clean exit (a batch job's success) is not a failure to retry
        if self._local_attempts >= plan.restart.max_retries:
            self._note(self._report.message + f" (no master; gave up after {self._local_attempts} local restarts)")
            return
        delay = plan.restart.delay(self._local_attempts)
        self._schedule("local_restart", delay)

    def _restart(self) -> None:
        plan = self._plan
        if plan is None:
            return
        self._pending_program = self._program
        self._count_restart()
        if self._service is not None and self._service.alive:
            self._begin_stop(then="restart")
        else:
            self._start(plan)

    # ---- stop --------------------------------------------------------------------------------

    def _begin_stop(self, then: str, reason: str = "") -> None:
        service = self._service
        assert service is not None
        self._cancel("start_deadline", "settled")
        self._stop_health()
        self._gen += 1
        self._busy = "stop"
        plan = self._running_plan
        self._set(status="STOPPING", healthy=None, message=reason or f"stopping {service.version}")
        stop_cmd = plan.stop if plan is not None else None
        env = self._env(plan)
        self._background("stop", self._stop_step, self._gen, service, stop_cmd, env, then)

    def _stop_step(self, gen: int, service: ServiceProcess, stop_cmd: str | None, env: dict[str, str],
                   then: str) -> None:
        info = service.stop(self.reaper, stop_cmd, run_as=self.run_as, cwd=self.workspace.version_dir(service.version),
                            env=env, grace=self.settings.stop_grace)
        self._post("stopped", gen, then, info)

    def _on_stopped(self, gen: int, then: str, info: ExitInfo | None) -> None:
        if gen != self._gen:
            return
        self._busy = None
        self._service = None  # its exit event, if still on the way, is now ignored
        if info is not None:
            self._set(exit_code=info.exit_code, signal=info.signal, core_dumped=info.core_dumped, oom=False)
        if then in ("STOPPED", "FAILED"):
            self._set(status=then, pid=None, message=self._report.message if then == "FAILED" else "stopped")
        elif then == "shutdown":
            self._set(status="STOPPED", pid=None, message="worker shut down")
            self._finish()
        elif self._plan is not None:  # update or restart: start the (new) version
            self._pending_program = self._program
            self._start(self._plan)

    # ---- reload / exec -----------------------------------------------------------------------

    def _reload(self, data: DataPlan) -> None:
        if self._reloading or self._report.data_version == data.version:
            return
        self._reloading = True
        self._set(message=f"reloading data {data.version}")
        plan = self._plan
        env = self._env(plan)
        if self._service is not None and self._service.alive:
            env["GALAXY_SERVICE_PID"] = str(self._service.pid)
        cwd = self.workspace.version_dir(plan.version) if plan is not None else None
        self._background("reload", self._reload_step, data, env, cwd)

    def _reload_step(self, data: DataPlan, env: dict[str, str], cwd: Path | None) -> None:
        error = None
        try:
            reload_data(self.workspace, self.reaper, self.run_as, data, env, cwd)
        except (GalaxyError, OSError) as err:
            error = str(err)
        self._post("reloaded", data, error)

    def _on_reloaded(self, data: DataPlan, error: str | None) -> None:
        self._reloading = False
        if error is not None:
            self._set(message=f"reload of data {data.version} failed: {error}")
        else:
            self._set(data_version=data.version, message=f"reloaded data {data.version}")

    def _exec(self, spec: Any) -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("exec_id"), str) \
                or not isinstance(spec.get("command"), str):
            log.warning("ignoring a malformed exec: %r", spec)
            return
        exec_id = spec["exec_id"]
        if exec_id in self._exec_seen:
            return
        self._exec_seen[exec_id] = None
        while len(self._exec_seen) > EXEC_MEMORY:
            self._exec_seen.popitem(last=False)
        timeout = spec.get("timeout")
        timeout = min(EXEC_TIMEOUT_MAX, float(timeout)) if isinstance(timeout, int | float) and timeout > 0 else 30.0
        plan = self._plan
        cwd = self.workspace.version_dir(plan.version) if plan else self.settings.work_dir
        env = self._env(plan)
        self._background("exec", self._exec_step, exec_id, spec["command"], timeout, cwd, env)

    def _exec_step(self, exec_id: str, command: str, timeout: float, cwd: Path, env: dict[str, str]) -> None:
        try:
            result = run_command(self.reaper, command, run_as=self.run_as, cwd=cwd, env=env, timeout=timeout)
            body = {"pod": self.settings.pod, "exec_id": exec_id, "exit_code": result.exit_code,
                    "stdout": result.stdout,
                    "stderr": result.stderr + (f"\n[timed out after {timeout:g} s]" if result.timed_out else "")}
        except GalaxyError as err:
            body = {"pod": self.settings.pod, "exec_id": exec_id, "exit_code": 127, "stdout": "",
                    "stderr": str(err)}
        self.reporter.queue_exec_result(body)

    # ---- signals and shutdown ----------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        if self._service is not None and self._service.alive:
            self._service.forward(sig)

    def _on_shutdown(self) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        self._cancel("restart", "local_restart", "start_deadline", "settled")
        if self._service is not None and self._service.alive:
            self._begin_stop(then="shutdown", reason="worker shutting down")
        else:
            self._gen += 1
            self._set(status="STOPPED" if self._report.status in ("RUNNING", "STARTING", "DEPLOYING")
                      else self._report.status, message="worker shut down")
            self._finish()

    def _finish(self) -> None:
        self._stop_health()
        self.reporter.close()
        self.reporter.final_report()
        self.finished.set()

    def _env(self, plan: ProgramPlan | None) -> dict[str, str]:
        env = service_base_env(self.settings, plan.env if plan else {})
        if plan is not None:
            env["GALAXY_VERSION"] = plan.version
            if plan.data is not None:
                env["GALAXY_DATA_DIR"] = str(self.workspace.data_dir(plan.version))
        return env

