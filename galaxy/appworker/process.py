"""Supervising the one service process: start it with its output piped to rotating logs, stop it.

Stop follows the usual escalation (circus, systemd): the job's own ``stop`` command if it has one, a
grace period, SIGTERM to the service's whole process group, another grace period, SIGKILL. Whatever
is left of the group after the leader exits is killed too, so a stop leaves nothing behind.
The blocking parts run on a worker thread; exits arrive through the reaper's callbacks.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from galaxy.appworker.logs import RotatingLog, pump
from galaxy.appworker.reaper import Child, ExitInfo, OomCounter, Reaper, RunAs

KILL_WAIT = 10.0


class ServiceProcess:
    """One run of the service: ``sh -c start`` as the service user, in its own session."""

    def __init__(self, child: Child, version: str, oom: OomCounter, oom_before: int | None) -> None:
        self.child = child
        self.version = version
        self.started_at = time.monotonic()
        self._oom = oom
        self._oom_before = oom_before
        self._signalled_by_worker = threading.Event()
        self._pumps: list[threading.Thread] = []

    @classmethod
    def start(cls, reaper: Reaper, command: str, *, version: str, run_as: RunAs | None,
              cwd: str | Path, env: Mapping[str, str], stdout: RotatingLog, stderr: RotatingLog,
              oom: OomCounter) -> ServiceProcess:
        before = oom.read()
        child = reaper.spawn(["/bin/sh", "-c", command], run_as=run_as, cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.popen.stdout is not None and child.popen.stderr is not None
        service = cls(child, version, oom, before)
        service._pumps = [pump(child.popen.stdout, stdout, f"{version}-stdout"),
                          pump(child.popen.stderr, stderr, f"{version}-stderr")]
        return service

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def alive(self) -> bool:
        return self.child.alive

    def on_exit(self, fn: Callable[[ExitInfo], None]) -> None:
        self.child.on_exit(fn)

    def drain_output(self, timeout: float = 0.5) -> None:
        """Wait (briefly: a leftover child may hold the pipes) for the last output to reach the logs,
        so a failure's reason can quote it."""
        deadline = time.monotonic() + timeout
        for thread in self._pumps:
            thread.join(max(0.0, deadline - time.monotonic()))

    def oom_killed(self, info: ExitInfo) -> bool:
        """True only when the service died of a SIGKILL the worker did not send and the memory
        cgroup's OOM counter rose meanwhile (unknowable without /sys/fs/cgroup: then False)."""
        if info.signal != signal.SIGKILL or self._signalled_by_worker.is_set() or self._oom_before is None:
            return False
        after = self._oom.read()
        return after is not None and after > self._oom_before

    def forward(self, sig: int) -> None:
        """Pass a signal the worker received (HUP, USR1 …) on to the service's group."""
        self.child.signal_group(sig)

    def stop(self, reaper: Reaper, stop_command: str | None, *, run_as: RunAs | None, cwd: str | Path,
             env: Mapping[str, str], grace: float) -> ExitInfo | None:
        """Blocking: escalate until the service is gone; returns how it ended (None if unkillable)."""
        if not self.child.alive:
            self._kill_leftovers()
            return self.child.exit
        if stop_command:
            stop_env = dict(env, GALAXY_SERVICE_PID=str(self.pid))
            try:
                helper = reaper.spawn(["/bin/sh", "-c", stop_command], run_as=run_as, cwd=cwd, env=stop_env)
            except Exception:  # a stop command that cannot start must not stop the escalation
                helper = None
            deadline = time.monotonic() + grace
            if helper is not None:
                helper.wait(grace)
                if helper.alive:
                    helper.signal_group(signal.SIGKILL)
            self.child.wait(max(0.0, deadline - time.monotonic()))
        if self.child.alive:
            self._signalled_by_worker.set()
            self.child.signal_group(signal.SIGTERM)
            self.child.wait(grace)
        if self.child.alive:
            self._signalled_by_worker.set()
            self.child.signal_group(signal.SIGKILL)
            self.child.wait(KILL_WAIT)
        self._kill_leftovers()
        return self.child.exit

    def kill(self) -> None:
        """At once: SIGKILL the whole group (a start that never became healthy, worker shutdown)."""
        self._signalled_by_worker.set()
        self.child.signal_group(signal.SIGKILL)

    def _kill_leftovers(self) -> None:
        # The leader is gone; children it left in its group would hold ports and files of the old run.
        self.child.signal_group(signal.SIGKILL)
