"""One supervised child: start it, notice it exit, restart it with backoff, stop it by its PID.

A child runs in a session of its own, so a signal meant for the supervisor (a terminal's ^C, a
group kill) never reaches it by accident, and its own children (an Agent's container shims, which
daemonise anyway) are left alone unless the program asks for ``kill: group``. Its PID and start time
go to ``<run_dir>/<name>.pid``: the pair names one process even after the PID is recycled, which is
how a restarted supervisor finds and stops a child its crashed predecessor left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from galaxy.errors import HostError
from galaxy.supervisor._config import ProgramSpec

log = logging.getLogger(__name__)


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def process_started(pid: int) -> float | None:
    """The start time of ``pid`` (seconds since the epoch), or None when no such process lives."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def read_pidfile(path: str) -> int | None:
    """The PID in a ``pid starttime`` file if that very process still runs (not a recycled PID)."""
    try:
        fields = Path(path).read_text().split()
        pid, started = int(fields[0]), float(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    now = process_started(pid)
    return pid if now is not None and abs(now - started) < 1.0 else None


def write_pidfile(path: str, pid: int) -> None:
    started = process_started(pid)
    write_atomic(path, f"{pid} {started if started is not None else 0.0:.2f}\n")


def terminate(pid: int, sig: int, timeout: float, *, group: bool = False,
              waiter: subprocess.Popen[Any] | None = None) -> None:
    """Send ``sig``, wait up to ``timeout`` for the process to end, then SIGKILL it (or its group)."""
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        send(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ended(pid, waiter):
            return
        time.sleep(0.05)
    log.warning("pid %d ignored signal %d for %.0f s: killing it", pid, sig, timeout)
    with contextlib.suppress(ProcessLookupError):
        send(pid, signal.SIGKILL)
    for _ in range(100):
        if _ended(pid, waiter):
            return
        time.sleep(0.05)
    raise HostError(f"pid {pid} did not die after SIGKILL")


def _ended(pid: int, waiter: subprocess.Popen[Any] | None) -> bool:
    if waiter is not None:
        return waiter.poll() is not None
    return process_started(pid) is None


class Program:
    def __init__(self, spec: ProgramSpec, run_dir: str, log_dir: str) -> None:
        self.spec = spec
        self.digest = spec.digest()
        self.pidfile = os.path.join(run_dir, f"{spec.name}.pid")
        self.log_path = os.path.join(log_dir, f"{spec.name}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0           # wall clock, for status
        self._started_mono = 0.0
        self.restarts = 0
        self.last_exit: int | None = None
        self.next_start: float | None = time.monotonic()   # None = stopped on purpose
        self._delay = spec.backoff_min

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def state(self) -> str:
        if self.pid is not None:
            return "running"
        return "stopped" if self.next_start is None else "backoff"

    def stop_leftover(self) -> None:
        """Stop a child a previous (crashed) supervisor left running, named by our pidfile."""
        pid = read_pidfile(self.pidfile)
        if pid is not None:
            log.warning("%s: stopping pid %d left by a previous supervisor", self.spec.name, pid)
            terminate(pid, self.spec.stop_signal, self.spec.stop_timeout, group=self.spec.kill_group)

    def start(self) -> None:
        env = {**os.environ, **dict(self.spec.env)}
        with open(self.log_path, "ab") as out:
            try:
                self.proc = subprocess.Popen(list(self.spec.command), cwd=self.spec.cwd, env=env,
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            except OSError as err:
                self.proc = None
                self.last_exit = -1
                self._schedule_retry()
                log.error("%s: cannot start %s: %s", self.spec.name, self.spec.command[0], err)
                return
        self.started_at, self._started_mono = time.time(), time.monotonic()
        self.next_start = None
        write_pidfile(self.pidfile, self.proc.pid)
        log.info("%s: started pid %d", self.spec.name, self.proc.pid)

    def poll(self) -> bool:
        """Reap the child if it exited; returns True when something changed (exit or restart)."""
        now = time.monotonic()
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return False
            self.proc = None
            self.last_exit = code
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pidfile)
            if now - self._started_mono >= self.spec.reset_after:
                self._delay = self.spec.backoff_min
            self._schedule_retry()
            log.warning("%s: exited with %d; restarting in %.1f s", self.spec.name, code,
                        self.next_start - now if self.next_start else 0.0)
            return True
        if self.next_start is not None and now >= self.next_start:
            self.restarts += 1
            self.start()
            return True
        return False

    def _schedule_retry(self) -> None:
        self.next_start = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.spec.backoff_max)

    def stop(self) -> None:
        """Stop the child (stop signal, grace, SIGKILL) and do not start it again."""
        self.next_start = None
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            terminate(proc.pid, self.spec.stop_signal, self.spec.stop_timeout, group=self.spec.kill_group,
                      waiter=proc)
            log.info("%s: stopped pid %d", self.spec.name, proc.pid)
        if proc is not None:
            proc.wait()
            self.last_exit = proc.returncode
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)

    def signal(self, sig: int) -> bool:
        pid = self.pid
        if pid is None:
            return False
        os.kill(pid, sig)
        return True

    def status(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state, "digest": self.digest, "started_at": self.started_at,
                "restarts": self.restarts, "last_exit": self.last_exit, "log": self.log_path,
                "command": list(self.spec.command)}
