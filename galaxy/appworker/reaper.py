"""Children of the worker: spawning as the service user, reaping, exit statuses, process groups.

The worker is PID 1, so it must reap every orphan (``waitpid(-1)``) — but that would steal the exit
status of its own children from ``Popen.wait``. So one :class:`Reaper` thread owns every wait: each
child is registered with a pidfd (readable when it exits), the reaper collects its status and hands it
to whoever waits, and, as PID 1, it also reaps orphans it knows nothing about. Children are spawned
under the reaper's lock, so even one that dies at once cannot be reaped as an "orphan" before it is
registered. ``reap_orphans=False`` keeps the reaper to its own children (a worker inside a test
process must not take the test's children).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galaxy.errors import HostError

log = logging.getLogger(__name__)

ORPHAN_SWEEP = 1.0


@dataclass(frozen=True)
class RunAs:
    """Who children run as. The worker changes user only when it is root; an unprivileged worker can
    run children only as itself (``GALAXY_UID`` = its own uid)."""

    uid: int
    gid: int

    def popen_args(self) -> dict[str, Any]:
        if os.geteuid() == 0:
            return {"user": self.uid, "group": self.gid, "extra_groups": []}
        if self.uid == os.geteuid() and self.gid == os.getegid():
            return {}
        raise HostError(f"cannot run as uid {self.uid} gid {self.gid}: the worker runs as uid "
                        f"{os.geteuid()} and is not root", field="GALAXY_UID")


@dataclass(frozen=True)
class ExitInfo:
    """How a child ended: ``exit_code`` or the ``signal`` that killed it (and whether it dumped core)."""

    exit_code: int | None
    signal: int | None
    core_dumped: bool = False

    @classmethod
    def from_status(cls, status: int) -> ExitInfo:
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status), os.WCOREDUMP(status))
        return cls(os.WEXITSTATUS(status), None)

    def describe(self) -> str:
        if self.signal is not None:
            name = signal.Signals(self.signal).name if self.signal in signal.Signals._value2member_map_ else ""
            return f"killed by signal {self.signal}{f' ({name})' if name else ''}" + \
                (", core dumped" if self.core_dumped else "")
        return f"exited with code {self.exit_code}"


class Child:
    """A spawned process whose exit the reaper reports; ``wait`` never calls waitpid itself."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.exit: ExitInfo | None = None
        self._done = threading.Event()
        self._callbacks: list[Callable[[ExitInfo], None]] = []
        self._lock = threading.Lock()

    def on_exit(self, fn: Callable[[ExitInfo], None]) -> None:
        """Call ``fn`` (on the reaper thread: keep it quick) when the child has been reaped."""
        with self._lock:
            if self.exit is None:
                self._callbacks.append(fn)
                return
        fn(self.exit)

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        self._done.wait(timeout)
        return self.exit

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    def signal_group(self, sig: int) -> bool:
        """Signal the child's whole process group (it leads one: ``start_new_session``)."""
        try:
            os.killpg(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _finish(self, status: int) -> None:
        info = ExitInfo.from_status(status)
        self.popen.returncode = info.exit_code if info.signal is None else -info.signal
        with self._lock:
            self.exit = info
            callbacks, self._callbacks = self._callbacks, []
        self._done.set()
        for fn in callbacks:
            try:
                fn(info)
            except Exception:  # a callback's bug must not kill the reaper
                log.exception("exit callback of pid %d failed", self.pid)


class Reaper:
    """The one place the worker waits for children (see the module docstring)."""

    def __init__(self, *, reap_orphans: bool) -> None:
        self.reap_orphans = reap_orphans
        self.orphans_reaped = 0
        self._lock = threading.Lock()
        self._children: dict[int, tuple[Child, int]] = {}   # pid -> (child, pidfd)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="galaxy-reaper", daemon=True)
        self._thread.start()

    def spawn(self, argv: list[str], *, run_as: RunAs | None, cwd: str | os.PathLike[str],
              env: Mapping[str, str], stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.DEVNULL,
              stderr: Any = subprocess.DEVNULL) -> Child:
        """Start ``argv`` in a new session (so its whole group can be signalled) and register it."""
        extra = run_as.popen_args() if run_as is not None else {}
        with self._lock:
            try:
                popen = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=stdin, stdout=stdout,
                                         stderr=stderr, start_new_session=True, close_fds=True, **extra)
            except OSError as err:
                raise HostError(f"cannot start {argv[0]}: {err.strerror or err}", field="command") from None
            child = Child(popen)
            try:
                pidfd = os.pidfd_open(popen.pid)
            except OSError:
                pidfd = -1  # found by the orphan sweep instead
            self._children[popen.pid] = (child, pidfd)
        os.write(self._wake_w, b"x")
        return child

    @contextlib.contextmanager
    def held(self) -> Iterator[set[int]]:
        """Hold off spawns (and reaping) for a moment; yields the pids of the live children, each the
        leader of its own process group. While held, no child can appear unseen: what a caller lists
        and signals in the block is a consistent picture."""
        with self._lock:
            yield {pid for pid, (child, _) in self._children.items() if child.alive}

    def stop(self) -> None:
        self._stopped = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stopped:
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            with self._lock:
                watched = {fd: pid for pid, (_, fd) in self._children.items() if fd >= 0}
                blind = any(fd < 0 for _, fd in self._children.values())
            for fd in watched:
                poller.register(fd, select.POLLIN)
            timeout = ORPHAN_SWEEP if (self.reap_orphans or blind) else None
            ready = poller.poll(None if timeout is None else int(timeout * 1000))
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            with self._lock:
                for fd, _event in ready:
                    pid = watched.get(fd)
                    if pid is not None:
                        self._collect(pid)
                for pid in [p for p, (_, fd) in self._children.items() if fd < 0]:
                    self._collect(pid)
                if self.reap_orphans:
                    self._sweep()

    def _collect(self, pid: int) -> None:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got, status = pid, 0  # reaped elsewhere: nothing better is known
        if got == pid:
            self._dispatch(pid, status)

    def _sweep(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self._children:
                self._dispatch(pid, status)
            else:
                self.orphans_reaped += 1

    def _dispatch(self, pid: int, status: int) -> None:
        child, fd = self._children.pop(pid)
        if fd >= 0:
            os.close(fd)
        child._finish(status)


def set_child_subreaper() -> bool:
    """Outside a pid namespace, become the reaper of our descendants' orphans (PR_SET_CHILD_SUBREAPER),
    so a service that daemonises is still ours to reap and its group still ours to signal."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class OomCounter:
    """The ``oom_kill`` count of the worker's memory cgroup, when /sys/fs/cgroup is visible.

    Inside a Galaxy container /sys is not mounted, so this reads None and an OOM kill cannot be told
    from any other SIGKILL: the report then says ``oom: False`` (the Agent, which sees the cgroup,
    reports the container-level truth).
    """

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.path = _oom_file(Path(root))

    def read(self) -> int | None:
        if self.path is None:
            return None
        try:
            for line in self.path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return None
        return None


def _oom_file(root: Path) -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if "memory" in controllers.split(","):
            candidate = root / "memory" / rel / "memory.oom_control"
            if candidate.exists():
                return candidate
        if controllers == "":
            candidate = root / rel / "memory.events"
            if candidate.exists():
                return candidate
    return None
