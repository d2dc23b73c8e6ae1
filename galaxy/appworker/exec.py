"""Running a short command as the service user: a timeout, and output bounded in memory.

Used for ``exec`` from the master, for deploy, reload and health-check commands. Output beyond the
bound is read and dropped (never left in the pipe, or the command would block and hit its timeout),
and the result says it was cut. On timeout the command's whole process group is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from galaxy.appworker.reaper import ExitInfo, Reaper, RunAs

OUTPUT_LIMIT = 64 * 1024
TIMEOUT_EXIT = 124  # what timeout(1) reports


@dataclass(frozen=True)
class CommandResult:
    exit: ExitInfo | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit is not None and self.exit.exit_code == 0 and not self.timed_out

    @property
    def exit_code(self) -> int:
        """Shell convention: the code, 128 + signal, or 124 after a timeout."""
        if self.timed_out or self.exit is None:
            return TIMEOUT_EXIT
        if self.exit.signal is not None:
            return 128 + self.exit.signal
        return self.exit.exit_code or 0

    def describe(self, what: str, timeout: float) -> str:
        """One line for a report: why the command failed, with the end of its stderr."""
        if self.timed_out:
            head = f"{what} timed out after {timeout:g} s"
        else:
            head = f"{what} {self.exit.describe() if self.exit else 'ended in an unknown way'}"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-3:]
        return head + (": " + " | ".join(tail) if tail else "")


class _Collector:
    def __init__(self, source: IO[bytes], limit: int) -> None:
        self.data = bytearray()
        self.cut = False
        self._source = source
        self._limit = limit
        self.thread = threading.Thread(target=self._run, name="galaxy-exec-output", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            fd = self._source.fileno()
            while chunk := os.read(fd, 65536):
                room = self._limit - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                if len(chunk) > max(room, 0):
                    self.cut = True
        except OSError:
            pass
        finally:
            self._source.close()

    def text(self) -> str:
        return self.data.decode("utf-8", "replace") + ("\n…[output cut]" if self.cut else "")


def run_command(reaper: Reaper, command: str, *, run_as: RunAs | None, cwd: str | Path,
                env: Mapping[str, str], timeout: float, limit: int = OUTPUT_LIMIT) -> CommandResult:
    """Run ``sh -c command``; blocking, so call it from a worker thread."""
    child = reaper.spawn(["/bin/sh", "-c", command], run_as=run_as, cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.popen.stdout is not None and child.popen.stderr is not None
    out = _Collector(child.popen.stdout, limit)
    err = _Collector(child.popen.stderr, limit)
    info = child.wait(timeout)
    timed_out = info is None
    if timed_out:
        child.signal_group(signal.SIGKILL)
        info = child.wait(10.0)
    else:
        child.signal_group(signal.SIGKILL)  # background leftovers would hold the pipes open
    out.thread.join(5.0)
    err.thread.join(5.0)
    return CommandResult(info, out.text(), err.text(), timed_out)
