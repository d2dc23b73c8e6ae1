"""Supervising the one service process: start it with its output piped to rotating logs, stop it.

Stop follows the usual escalation (circus, systemd): the job's own ``stop`` command if it has one, a
grace period, SIGTERM to the service's whole process group, another grace period, SIGKILL.

However a run ends — stopped, exited, killed by a signal or the OOM killer — what is left of it is
stopped before anything else starts (:func:`end_incarnation`), as systemd's control-group kill mode
does: a server left running under a dead ``sh -c`` would keep its port, the next run would fail
with "Address already in use" and a TCP health check would pass against the orphan. And a ``start``
that is one simple command runs as ``exec command`` (:func:`exec_form`): the server is then the
process the worker watches, not a child of a shell (Debian's ``sh``, dash, forks for a lone command).
The blocking parts run on a worker thread; exits arrive through the reaper's callbacks.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from galaxy.appworker.logs import RotatingLog, pump
from galaxy.appworker.reaper import Child, ExitInfo, OomCounter, Reaper, RunAs

KILL_WAIT = 10.0
POLL = 0.05
_OPERATOR_CHARS = set("();<>|&")
# Words `exec` cannot run: the shell's grammar and its builtins that have no program of their own.
_NOT_EXECUTABLE = frozenset({
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
    "select", "then", "time", "until", "while", "[[", ".", ":", "alias", "bg", "break", "cd", "command",
    "continue", "eval", "exit", "export", "fg", "getopts", "hash", "jobs", "let", "local", "read",
    "readonly", "return", "set", "shift", "source", "trap", "type", "ulimit", "umask", "unalias", "unset",
    "wait"})


def exec_form(command: str) -> str:
    """``command`` for ``sh -c``: ``exec command`` when it is one simple command (a program and its
    arguments, variables and quotes allowed), else unchanged (a script of several commands, a
    pipeline, a redirection, an assignment first, a builtin or keyword, or already ``exec``)."""
    if "\n" in command or "`" in command:
        return command
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return command
    if not words or words[0] == "exec" or words[0] in _NOT_EXECUTABLE or "=" in words[0]:
        return command
    if any(set(word) <= _OPERATOR_CHARS for word in words) or "$(" in command:
        return command
    return "exec " + command


def end_incarnation(reaper: Reaper, group: int, grace: float, *, whole_namespace: bool) -> int:
    """Stop what is left of a run whose leader has exited: SIGTERM, up to ``grace`` seconds, SIGKILL.
    Returns how many processes were still there.

    Left of a run is its process group (``group``: the leader's pid) and, with ``whole_namespace``
    (the worker is PID 1 of the pod's pid namespace, so every process there is the pod's), every
    process but the worker and the groups of its live children (a new run, a health check, an exec):
    that also catches what left the group (``setsid``, a daemon's double fork). Zombies are the
    reaper's to collect and count as gone."""
    def strays() -> list[int]:
        with reaper.held() as live:
            return [pid for pid, pgrp in _processes()
                    if pid != os.getpid() and (pgrp == group or (whole_namespace and pgrp not in live))]

    def signal_all(pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    left = strays()
    if not left:
        return 0
    signal_all(left, signal.SIGTERM)
    for deadline, sig in ((time.monotonic() + grace, signal.SIGKILL), (time.monotonic() + grace + KILL_WAIT, 0)):
        while (remaining := strays()) and time.monotonic() < deadline:
            time.sleep(POLL)
        if not remaining:
            break
        if sig:
            signal_all(remaining, sig)
    return len(left)


def _processes(proc: str = "/proc") -> list[tuple[int, int]]:
    """(pid, process group) of every live (not zombie) process this pid namespace shows. A process
    that ends between the listing and the read of its stat is skipped."""
    found = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces and ")"
        if len(fields) > 2 and fields[0] not in (b"Z", b"X"):
            found.append((int(name), int(fields[2])))
    return found


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
        child = reaper.spawn(["/bin/sh", "-c", exec_form(command)], run_as=run_as, cwd=cwd, env=env,
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

    def end(self, reaper: Reaper, grace: float) -> int:
        """After the leader's exit: :func:`end_incarnation` of this run (the whole pid namespace when
        the worker is its PID 1)."""
        return end_incarnation(reaper, self.pid, grace, whole_namespace=os.getpid() == 1)

    def kill(self) -> None:
        """At once: SIGKILL the whole group (a start that never became healthy, worker shutdown)."""
        self._signalled_by_worker.set()
        self.child.signal_group(signal.SIGKILL)

    def _kill_leftovers(self) -> None:
        # The leader is gone; children it left in its group would hold ports and files of the old run.
        self.child.signal_group(signal.SIGKILL)
