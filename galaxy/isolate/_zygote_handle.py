"""The launcher's side of the zygote (``_zygote.py``): find it, start it, ask it, end it.

A ``Zygote`` is cheap to make and starts nothing by itself: :meth:`refind` adopts one that survived
the previous Agent (replacing it if the code on disk changed since it imported), and the first
:meth:`request` starts one if none runs. Every failure to reach a zygote *before* it took a request
comes back as ``None``, and the caller then launches through the exec'ing shim as before, so a
broken zygote costs speed, never a container.

Files in ``directory``: ``zygote.sock`` (0600), ``zygote.pid`` ("<pid> <start ticks>"),
``zygote.log`` (its stderr; a launch's own messages go to that container's ``shim.log``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from galaxy.isolate._errors import IsolateError
from galaxy.isolate._process import ProcessId, read_line, wait_exit

log = logging.getLogger(__name__)

SOCKET_NAME = "zygote.sock"
PID_NAME = "zygote.pid"
LOG_NAME = "zygote.log"
START_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 5.0
STOP_GRACE_S = 3.0
RETRY_AFTER_S = 10.0


class Zygote:
    """One zygote serving the containers whose argv is ``[sys.executable, "-m", module, …]``."""

    def __init__(self, directory: str, module: str) -> None:
        self.directory = directory
        self.module = module
        self._lock = threading.Lock()     # one start at a time; requests themselves run in parallel
        self._dir_fd: int | None = None
        self._failed_at: float | None = None  # a failed start is not retried on every launch

    def serves(self, argv: list[str]) -> bool:
        return len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", self.module]

    @property
    def process(self) -> ProcessId | None:
        """The zygote named by the pid file, if that very process still runs."""
        proc = ProcessId.read(os.path.join(self.directory, PID_NAME))
        return proc if proc is not None and proc.running() else None

    # -- talking -------------------------------------------------------------------------------
    def _socket_path(self) -> str:
        # Through an fd of the dir: sun_path holds 108 bytes, an Agent's state dir may be longer.
        if self._dir_fd is None:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._dir_fd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._dir_fd}/{SOCKET_NAME}"

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self._socket_path())
        except OSError:
            sock.close()
            return None
        return sock

    def request(self, config_path: str) -> socket.socket | None:
        """Ask the zygote to launch ``config_path``; the socket then carries the shim's report line.
        None when no zygote could take the request (nothing was started: use the exec path)."""
        for attempt in range(2):
            sock = self._connect()
            if sock is None:
                if attempt == 0 and self.ensure():
                    continue
                return None
            try:
                sock.sendall(f"launch {config_path}\n".encode())
            except OSError:
                sock.close()  # it died between accept and read: it cannot have forked for us
                continue
            return sock
        return None

    def ping(self) -> str | None:
        """"fresh", "stale", or None when unreachable."""
        sock = self._connect()
        if sock is None:
            return None
        with sock:
            sock.settimeout(PING_TIMEOUT_S)
            try:
                sock.sendall(b"ping\n")
                answer = sock.recv(64).decode(errors="replace").strip()
            except OSError:
                return None
        return answer.removeprefix("pong ") if answer.startswith("pong ") else None

    # -- life ----------------------------------------------------------------------------------
    def refind(self) -> bool:
        """After an Agent restart: keep a running zygote if it answers and runs the code on disk,
        else end it (the next request starts a fresh one). True when one is kept."""
        with self._lock:
            if self.process is None:
                return False
            answer = self.ping()
            if answer == "fresh":
                return True
            log.info("replacing the zygote in %s (%s)", self.directory, answer or "not answering")
            self._stop_locked()
            return False

    def ensure(self) -> bool:
        """A zygote runs after this returns True; False (logged) if one could not be started."""
        with self._lock:
            if self.process is not None and self._connectable():
                return True
            if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER_S:
                return False
            try:
                self._stop_locked()  # a hung one (alive, not accepting) is ended first
                self._start_locked()
            except (IsolateError, OSError) as err:
                self._failed_at = time.monotonic()
                log.warning("zygote in %s did not start (containers launch by exec meanwhile): %s",
                            self.directory, err)
                return False
            self._failed_at = None
            return True

    def _connectable(self) -> bool:
        sock = self._connect()
        if sock is None:
            return False
        sock.close()  # the zygote reads nothing and moves on
        return True

    def _start_locked(self) -> None:
        self._socket_path()
        with open(os.path.join(self.directory, LOG_NAME), "ab") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-m", "galaxy.isolate._zygote", self.directory,
                                     self.module], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, close_fds=True, start_new_session=True, cwd="/")
        assert proc.stdout is not None
        try:
            line = read_line(proc.stdout.fileno(), START_TIMEOUT_S, "zygote")
        finally:
            proc.stdout.close()
            try:
                proc.wait(timeout=START_TIMEOUT_S)  # the launched process exits right after its fork
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not line.startswith("ready "):
            raise IsolateError(f"zygote said {line or 'nothing'!r}; see {LOG_NAME}")

    def stop(self) -> None:
        """End the zygote (containers it launched are not its children and stay) and drop its files."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc = self.process
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while proc.running() and time.monotonic() < deadline:
                wait_exit(proc, deadline - time.monotonic())
            if proc.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                while proc.running():
                    wait_exit(proc, 1.0)
        for name in (SOCKET_NAME, PID_NAME):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(os.path.join(self.directory, name))

    def close(self) -> None:
        """Forget the zygote (it keeps running for the next launcher)."""
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


__all__ = ["Zygote"]
