"""The caller's side: start the supervisor detached, hand it a request, wait for a program's health.

Everything here runs in the short-lived command an operator or Ansible invokes (`python -m
galaxy.supervisor ensure resman …`), so a slow health check never stalls the supervisor's loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from galaxy.errors import GalaxyError, HostError, Timeout
from galaxy.supervisor._config import HealthCheck, SupervisorConfig, load_config
from galaxy.supervisor._program import process_started, read_pidfile, write_atomic

SETTLE = 1.0   # a program without a health check must stay up this long to count as started


def check_health(check: HealthCheck, attempt_timeout: float = 10.0) -> tuple[bool, str]:
    """Run one health probe; (passed, what it said)."""
    if check.tcp:
        host, _, port = check.tcp.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=min(attempt_timeout, 2.0)):
                return True, "open"
        except (OSError, ValueError) as err:
            return False, str(err)
    try:
        done = subprocess.run(list(check.command), capture_output=True, text=True, timeout=attempt_timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    said = (done.stdout + done.stderr).strip()[-300:]
    return done.returncode == 0, said


class Control:
    def __init__(self, config_path: str) -> None:
        self.config_path = os.path.abspath(config_path)
        self.config: SupervisorConfig = load_config(self.config_path)

    # -- the supervisor itself -------------------------------------------------------------------
    def supervisor_pid(self) -> int | None:
        return read_pidfile(self.config.pidfile)

    def state(self) -> dict[str, Any]:
        """The supervisor's last published state (``{}`` when it does not run)."""
        if self.supervisor_pid() is None:
            return {}
        try:
            return dict(json.loads(Path(self.config.state_file).read_text()))
        except (OSError, ValueError):
            return {}

    def start_supervisor(self, timeout: float = 30.0) -> bool:
        """Start the supervisor detached (its own session) unless it runs; True if it was started."""
        if self.supervisor_pid() is not None:
            return False
        os.makedirs(self.config.log_dir, exist_ok=True)
        log_path = os.path.join(self.config.log_dir, "supervisor.log")
        with open(log_path, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "galaxy.supervisor", "run", "--config", self.config_path],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = Path(log_path).read_text(errors="replace")[-1500:]
                raise HostError(f"the supervisor exited at once ({proc.returncode}); {log_path}:\n{tail}")
            if self.state().get("pid") == proc.pid:
                return True
            time.sleep(0.05)
        raise Timeout(f"the supervisor did not report within {timeout:.0f} s (see {log_path})")

    def shutdown(self, timeout: float = 60.0) -> bool:
        """TERM the supervisor (it stops its programs first) and wait for it; True if it was running."""
        pid = self.supervisor_pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_started(pid) is not None:   # gone, not merely its pidfile removed
            if time.monotonic() >= deadline:
                raise Timeout(f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.05)
        return True

    # -- requests --------------------------------------------------------------------------------
    def request(self, op: str, program: str, *, sig: int | None = None, timeout: float = 120.0) -> dict[str, Any]:
        """Hand the supervisor one request and return its answer (raises on an error answer)."""
        pid = self.supervisor_pid()
        if pid is None:
            raise HostError(f"no supervisor runs for {self.config_path}", field="supervisor")
        base = Path(self.config.request_dir) / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"op": op, "program": program}
        if sig is not None:
            body["signal"] = sig
        write_atomic(str(base.with_suffix(".req")), json.dumps(body))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
        reply_path = base.with_suffix(".rep")
        deadline = time.monotonic() + timeout
        while not reply_path.exists():
            if time.monotonic() >= deadline or self.supervisor_pid() is None:
                with contextlib.suppress(FileNotFoundError):
                    base.with_suffix(".req").unlink()
                raise Timeout(f"the supervisor did not answer {op} {program} within {timeout:.0f} s")
            time.sleep(0.02)
        reply = dict(json.loads(reply_path.read_text()))
        reply_path.unlink()
        if not reply.get("ok"):
            raise GalaxyError(str(reply.get("error")), field="program")
        return reply

    def ensure(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        """Make ``name`` run its current definition (starting the supervisor if needed), then wait healthy."""
        self.config.program(name)   # fail early on an unknown name
        if self.start_supervisor():
            program = self.state().get("programs", {}).get(name, {})
            reply = {"ok": True, "changed": True, "pid": program.get("pid"), "digest": program.get("digest")}
        else:
            reply = self.request("ensure", name, timeout=timeout)
        self.wait_healthy(name, reply.get("pid"), timeout, settle=SETTLE if reply.get("changed") else 0.0)
        return reply

    def restart(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        reply = self.request("restart", name, timeout=timeout)
        self.wait_healthy(name, reply.get("pid"), timeout)
        return reply

    def wait_healthy(self, name: str, pid: int | None, timeout: float, settle: float = SETTLE) -> None:
        """Wait until ``name`` passes its health check (or stays up ``settle`` s), failing if it dies."""
        check = self.config.program(name).health
        deadline = time.monotonic() + (check.timeout if check is not None else timeout)
        up_since = time.monotonic()
        said = ""
        while True:
            current = self.state().get("programs", {}).get(name, {})
            if pid is None or current.get("pid") != pid:
                raise HostError(f"{name} is not running (state {current.get('state')}, last exit "
                                f"{current.get('last_exit')}); see {current.get('log')}", field="program")
            if check is None:
                if time.monotonic() - up_since >= settle:
                    return
            else:
                ok, said = check_health(check)
                if ok:
                    return
            if time.monotonic() >= deadline:
                raise Timeout(f"{name} (pid {pid}) is not healthy after {deadline - up_since:.0f} s: {said}")
            time.sleep(0.25)
