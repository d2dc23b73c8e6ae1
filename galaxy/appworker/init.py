"""A minimal PID 1 for a container: run one command, forward signals to it, reap every orphan.

PID 1 in a pid namespace has two duties the kernel gives no one else: it inherits every orphaned
process (so it must reap them, or zombies pile up) and it ignores signals it has no handler for (so it
must pass TERM/INT on, or `stop` would hang until KILL). The full AppWorker (service layer) does this
too; this is what runs until it does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def exit_code_of(status: int) -> int:
    """Shell convention: the exit code, or 128 + the signal that killed the child."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_init(argv: list[str]) -> int:
    if not argv:
        print("galaxy-appworker: error: no command given (usage: galaxy-appworker -- CMD [ARGS…])",
              file=sys.stderr)
        return 2
    try:
        child = subprocess.Popen(argv)
    except OSError as err:
        print(f"galaxy-appworker: error: cannot start {argv[0]}: {err.strerror}", file=sys.stderr)
        return 127
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(child.pid, signum))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # nothing left at all
            return 0
        except InterruptedError:
            continue
        if pid == child.pid:
            code = exit_code_of(status)
            _reap_rest()
            return code


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap_rest() -> None:
    """Reap orphans already dead; live ones die with the pid namespace when PID 1 exits."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
