"""Test helpers: a scriptable master (the pull protocol's other side), packages, polling."""

from __future__ import annotations

import io
import os
import signal
import socket
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from galaxy.errors import Unreachable
from galaxy.protocol.pod import EXEC_RESULT, REPORT, PodCommand, PodReport


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_package(where: Path, name: str, files: dict[str, str], *, extra: list[tarfile.TarInfo] | None = None
                 ) -> str:
    """A tar.gz of ``files`` at ``where/name``; returns its file:// URL."""
    path = where / name
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return f"file://{path}"


def program(version: str, start: str, **fields: Any) -> dict[str, Any]:
    """A program dict as the AppMaster sends it (Program.to_dict() + restart + env)."""
    body: dict[str, Any] = {"version": version, "package": None, "deploy": None, "start": start, "stop": None,
                            "health": None, "data": None,
                            "restart": {"max_retries": 5, "backoff": {"min": 0.2, "max": 1.0}}, "env": {}}
    body.update(fields)
    return body


HTTP_START = "exec python3 -m http.server $GALAXY_PORT_HTTP --bind 127.0.0.1"
HTTP_HEALTH = {"tcp": "http", "command": None, "interval": 0.5, "timeout": 1.0}


def http_get(port: int, path: str = "/index.html") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group(pid: int | None) -> None:
    """Finalizer: SIGKILL a service's process group we know the leader pid of."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class FakeMaster:
    """The master's side of the pull protocol, scripted by the test.

    ``send(command, ...)`` is answered to every report until ``until(report)`` holds — by default
    until a report with a newer ``seq`` than the first one it answered (the worker applied it).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.down = False
        self.reports: list[PodReport] = []
        self.exec_results: list[dict[str, Any]] = []
        self.service_pids: set[int] = set()
        self._lock = threading.Lock()
        self._pending: dict[str, Any] | None = None
        self._pending_seq: int | None = None
        self._until: Callable[[PodReport], bool] | None = None

    def __call__(self, method: str, body: Any) -> Any:
        if self.down:
            raise Unreachable("the master is down (test)")
        return self.handle(method, body)

    def handle(self, method: str, body: Any) -> Any:
        with self._lock:
            if method == EXEC_RESULT:
                self.exec_results.append(body)
                return None
            assert method == REPORT
            report = PodReport.from_wire(body)
            self.reports.append(report)
            if report.pid is not None:
                self.service_pids.add(report.pid)
            reply = PodCommand(interval=self.interval).to_wire()
            if self._pending is not None:
                if self._until is not None:
                    done = self._until(report)
                else:
                    if self._pending_seq is None:
                        self._pending_seq = report.seq
                    done = report.seq > self._pending_seq
                if done:
                    self._pending = None
                else:
                    reply.update(self._pending)
            return reply

    def send(self, command: str, *, until: Callable[[PodReport], bool] | None = None, **fields: Any) -> None:
        with self._lock:
            self._pending = {"command": command, **fields}
            self._pending_seq = None
            self._until = until

    def latest(self) -> PodReport | None:
        with self._lock:
            return self.reports[-1] if self.reports else None

    def wait_for(self, check: Callable[[PodReport], bool], timeout: float = 20.0, what: str = "report") -> PodReport:
        deadline = time.monotonic() + timeout
        while True:
            report = self.latest()
            if report is not None and check(report):
                return report
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last report: {report}")
            time.sleep(0.05)

    def wait_exec(self, exec_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            with self._lock:
                return next((r for r in self.exec_results if r.get("exec_id") == exec_id), None)

        return wait_until(found, timeout, f"exec result {exec_id}")  # type: ignore[no-any-return]
