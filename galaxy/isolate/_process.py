"""A running (or ended) container as seen from the host, whoever launched it.

The Agent is never the parent of a container's processes (the shim daemonises), so a freshly launched
container and one adopted after an Agent restart are the same object built from the same files: the
pids recorded in the state dir, each with its kernel start time so a recycled pid is never mistaken for
ours, and ``status.json`` that the shim writes when PID 1 ends. Waiting uses a pidfd on the shim, which
works on processes that are not our children.
"""

from __future__ import annotations

import json
import os
import select
import time
from dataclasses import dataclass
from typing import Any

from galaxy.isolate._errors import IsolateError

SHIM_PID_FILE = "shim.pid"
INIT_PID_FILE = "init.pid"
STATUS_FILE = "status.json"
CONFIG_FILE = "launch.cfg"
CONSOLE_LOG = "console.log"
SHIM_LOG = "shim.log"
STATE_FILES = (SHIM_PID_FILE, INIT_PID_FILE, STATUS_FILE, CONFIG_FILE, CONSOLE_LOG, SHIM_LOG,
               STATUS_FILE + ".tmp", SHIM_PID_FILE + ".tmp", INIT_PID_FILE + ".tmp")


@dataclass(frozen=True)
class ProcessId:
    """A pid plus its start time (clock ticks since boot): together they name one process forever."""

    pid: int
    start: int

    @classmethod
    def read(cls, path: str) -> ProcessId | None:
        try:
            with open(path) as f:
                pid, start = f.read().split()
            return cls(int(pid), int(start))
        except (OSError, ValueError):
            return None

    def stat(self) -> list[str] | None:
        """Fields of /proc/<pid>/stat after the command name, if this very process still exists."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].decode().split()
        except (OSError, IndexError):
            return None
        if int(fields[19]) != self.start:
            return None
        return fields

    def running(self) -> bool:
        """Exists and is not a zombie waiting to be reaped."""
        fields = self.stat()
        return fields is not None and fields[0] not in ("Z", "X")

    def process_group(self) -> int | None:
        fields = self.stat()
        return int(fields[2]) if fields is not None else None


def start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


class ContainerProcess:
    """The init (PID 1) of one container. ``pid`` is its host pid."""

    def __init__(self, state_dir: str, init: ProcessId, shim: ProcessId | None) -> None:
        self.state_dir = state_dir
        self.init = init
        self.shim = shim

    def __repr__(self) -> str:
        return f"ContainerProcess(pid={self.pid}, state_dir={self.state_dir!r})"

    @property
    def pid(self) -> int:
        return self.init.pid

    @classmethod
    def load(cls, state_dir: str) -> ContainerProcess | None:
        """The container recorded in ``state_dir``, or None if none was ever started there."""
        init = ProcessId.read(os.path.join(state_dir, INIT_PID_FILE))
        if init is None:
            return None
        return cls(state_dir, init, ProcessId.read(os.path.join(state_dir, SHIM_PID_FILE)))

    def _read_status(self) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.state_dir, STATUS_FILE)) as f:
                status = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise IsolateError(f"unreadable status file in {self.state_dir}: {err}") from err
        return status if isinstance(status, dict) else None

    def alive(self) -> bool:
        return self._read_status() is None and self.init.running()

    def exit_status(self) -> dict[str, Any] | None:
        """``{"exit_code": n}`` or ``{"signal": n, "oom": bool}`` once PID 1 ended, else None.

        If both PID 1 and its shim are gone without a status (someone SIGKILLed the shim), the status is
        unknowable: ``{"exit_code": -1, "lost": True}``."""
        status = self._read_status()
        if status is not None:
            return status
        if self.init.running() or (self.shim is not None and self.shim.running()):
            return None
        status = self._read_status()  # the shim may have finished between the two reads
        return status if status is not None else {"exit_code": -1, "lost": True}

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until PID 1 has ended and its status is recorded; None if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.exit_status()
            if status is not None:
                return status
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            # PID 1 first: its exit is the event; the shim then records it within microseconds.
            watched = self.init if self.init.running() or self.shim is None else self.shim
            wait_exit(watched, remaining)


def read_line(fd: int, timeout: float, sender: str) -> str:
    """One line from a pipe or socket (a shim's or the zygote's report); '' on EOF first. Raises
    IsolateError if nothing comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise IsolateError(f"no word from the {sender} within {timeout:.0f}s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 8192)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").split("\n", 1)[0]


def wait_exit(proc: ProcessId, timeout: float | None) -> None:
    """Sleep until ``proc`` exits or ``timeout`` passes (a pidfd wakes us exactly at the exit)."""
    slice_s = 1.0 if timeout is None else min(timeout, 1.0)
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (old kernel): poll gently
        time.sleep(min(slice_s, 0.01))
        return
    try:
        if proc.stat() is None:  # the pid was recycled before we opened it: not ours
            return
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(slice_s * 1000)
    finally:
        os.close(fd)


__all__ = ["ContainerProcess", "ProcessId", "start_time", "read_line", "wait_exit"]
