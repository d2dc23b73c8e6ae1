"""launch / adopt / destroy: the three verbs the Agent uses, each safe to repeat and to interrupt.

``launch`` checks every value, applies the cgroup, writes the shim's config and starts the shim (a fresh
``python -I -S`` process, or a fork of the Agent's zygote — never of the threaded Agent itself); it
returns once PID 1 has exec'd the command (or, from the zygote, runs the init), or raises after
undoing everything it made. ``destroy`` works from the state dir and the
cgroup name alone, so it also cleans up after a launch that died half way or an Agent that crashed.

State dir layout (all of it removed by ``destroy``)::

    launch.cfg    the shim's config (marshal)      shim.pid / init.pid   "<pid> <start ticks>"
    status.json   written by the shim at the end   console.log           PID 1's stdout + stderr
    shim.log      the shim's own stderr            rootfs/               empty mount point on the host
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import marshal
import os
import signal
import subprocess
import sys
import time

from galaxy.errors import Conflict, GalaxyError, InvalidInput
from galaxy.isolate._caps import INIT_CAPABILITIES, capability_mask
from galaxy.isolate._cgroup import CgroupDriver, check_name
from galaxy.isolate._errors import IsolateError
from galaxy.isolate._plan import mount_plan, rootfs_dir
from galaxy.isolate._process import (
    CONFIG_FILE,
    CONSOLE_LOG,
    INIT_PID_FILE,
    SHIM_LOG,
    SHIM_PID_FILE,
    STATE_FILES,
    STATUS_FILE,
    ContainerProcess,
    ProcessId,
    read_line,
    wait_exit,
)
from galaxy.isolate._seccomp import default_filter
from galaxy.isolate._spec import WORK_DIR_INSIDE, ContainerSpec, validate_spec
from galaxy.isolate._zygote_handle import Zygote

SHIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shim.py")
REPORT_TIMEOUT_S = 30.0
SHIM_EXIT_GRACE_S = 3.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_STAGE_FIELD = {"exec": "argv", "mount": "mounts", "cgroup": "cgroup", "user": "run_as", "userns": "userns",
                "confine": "capabilities"}
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


@functools.cache
def last_capability() -> int:
    """The highest capability number this kernel knows: the bounding set is dropped up to it."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def launch(spec: ContainerSpec, driver: CgroupDriver, zygote: Zygote | None = None) -> ContainerProcess:
    """Start the container; return once its PID 1 runs the command. On any failure, nothing is left.

    With a ``zygote`` that serves ``spec.argv`` (see :class:`Zygote`), the shim and PID 1 are forked
    from it and PID 1 runs the pre-imported init without exec; without one, or when it cannot be
    reached, a fresh shim interpreter is started and PID 1 execs. Files and guarantees are the same."""
    validate_spec(spec)
    previous = ContainerProcess.load(spec.state_dir)
    if previous is not None and previous.alive():
        raise Conflict(f"container {spec.id} is already running (pid {previous.pid})", field="id")
    shim = ProcessId.read(os.path.join(spec.state_dir, SHIM_PID_FILE))
    if shim is not None and shim.running():
        raise Conflict(f"container {spec.id} is being launched or ended by another caller", field="id")
    if driver.exists(spec.cgroup) and driver.pids(spec.cgroup):
        raise Conflict(f"cgroup {spec.cgroup} already has processes", field="cgroup")
    _remove_state_files(spec.state_dir)
    try:
        driver.ensure(spec.cgroup, spec.limits)
        return _start_shim(spec, driver, zygote)
    except BaseException as exc:
        try:
            destroy(spec, driver)
        except (GalaxyError, OSError) as cleanup:
            exc.add_note(f"cleanup after the failed launch also failed: {cleanup}")
        raise


def _start_shim(spec: ContainerSpec, driver: CgroupDriver, zygote: Zygote | None) -> ContainerProcess:
    state = spec.state_dir
    os.makedirs(rootfs_dir(state), mode=0o755, exist_ok=True)
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    config = {
        "rootfs": rootfs_dir(state),
        "plan": mount_plan(spec),
        "hostname": spec.effective_hostname,
        "argv": list(spec.argv),
        "env": env,
        "cwd": WORK_DIR_INSIDE,
        "run_as": tuple(spec.run_as) if spec.run_as is not None else None,
        "caps": {"last": last_capability(), "service": capability_mask(spec.capabilities),
                 "init": capability_mask(INIT_CAPABILITIES) if spec.run_as is None else 0},
        "seccomp": default_filter(),
        "userns": spec.userns.maps() if spec.userns is not None else None,
        "join_files": driver.join_files(spec.cgroup),
        "oom_file": driver.oom_counter_file(spec.cgroup),
        "files": {"shim_pid": os.path.join(state, SHIM_PID_FILE),
                  "init_pid": os.path.join(state, INIT_PID_FILE),
                  "status": os.path.join(state, STATUS_FILE),
                  "console": os.path.join(state, CONSOLE_LOG),
                  "shim_log": os.path.join(state, SHIM_LOG)},
    }
    config_path = os.path.join(state, CONFIG_FILE)
    with open(os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        marshal.dump(config, f)  # 0600: the env it carries may hold secrets (a worker's key)
    line = None
    if zygote is not None and zygote.serves(list(spec.argv)):
        line = _report_from_zygote(zygote, config_path)
    if line is None:
        line = _report_from_exec(config_path, state)
    if line.startswith("ok "):
        container = ContainerProcess.load(state)
        if container is None:
            raise IsolateError(f"shim of {spec.id} reported a start but wrote no {INIT_PID_FILE}")
        return container
    if line.startswith("err "):
        stage, _, message = line[4:].partition(" ")
        raise IsolateError(f"container {spec.id}: {message}", field=_STAGE_FIELD.get(stage))
    raise IsolateError(f"shim of {spec.id} died before reporting: {_tail(os.path.join(state, SHIM_LOG))}")


def _report_from_zygote(zygote: Zygote, config_path: str) -> str | None:
    """The shim's report line through the zygote, or None if no zygote took the request."""
    sock = zygote.request(config_path)
    if sock is None:
        return None
    with sock:
        return read_line(sock.fileno(), REPORT_TIMEOUT_S, "container shim")


def _report_from_exec(config_path: str, state: str) -> str:
    """Start a fresh shim interpreter (``python -I -S``) and read its report line."""
    with open(os.path.join(state, SHIM_LOG), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-I", "-S", SHIM_PATH, config_path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                close_fds=True, start_new_session=True, cwd="/")
    try:
        assert proc.stdout is not None
        return read_line(proc.stdout.fileno(), REPORT_TIMEOUT_S, "container shim")
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        try:
            proc.wait(timeout=REPORT_TIMEOUT_S)  # the first shim process exits right after its fork
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace").strip() or "(shim.log is empty)"
    except OSError:
        return "(no shim.log)"


def adopt(spec: ContainerSpec, driver: CgroupDriver) -> ContainerProcess | None:
    """The container recorded in ``spec.state_dir``, alive or ended (its exit status readable), or None
    if none was ever started there. A live one gets its limits re-applied: same code as creation."""
    if not isinstance(spec.state_dir, str) or not os.path.isabs(spec.state_dir):
        raise InvalidInput("must be an absolute path", field="state_dir")
    container = ContainerProcess.load(spec.state_dir)
    if container is not None and container.alive() and driver.exists(spec.cgroup):
        driver.ensure(spec.cgroup, spec.limits)
    return container


def destroy(spec: ContainerSpec, driver: CgroupDriver) -> None:
    """Kill every process, drop every mount, remove the cgroup and isolate's files. Idempotent, and fine
    on a half-made container; the state dir itself and the work dir (the Agent's) are left."""
    check_name(spec.cgroup, field="cgroup")
    state = spec.state_dir
    if not isinstance(state, str) or not os.path.isabs(state):
        raise InvalidInput("must be an absolute path", field="state_dir")
    driver.release(spec.cgroup)  # PID 1 dies, and with it every process of its pid namespace
    for name in (SHIM_PID_FILE, INIT_PID_FILE):
        proc = ProcessId.read(os.path.join(state, name))
        if proc is not None:
            _end(proc, group=name == SHIM_PID_FILE)
    driver.release(spec.cgroup)  # a PID 1 that joined while we were killing its shim
    _unmount_below(state)
    _remove_state_files(state)
    rootfs = rootfs_dir(state)
    try:
        os.rmdir(rootfs)  # never rm -rf: if anything were still mounted here, it would be host files
    except FileNotFoundError:
        pass
    except OSError as err:
        raise IsolateError(f"cannot remove {rootfs}: {err.strerror}") from err


def _end(proc: ProcessId, *, group: bool) -> None:
    """Give the shim a moment to record PID 1's end, then SIGKILL it (and its group) if it lingers."""
    deadline = time.monotonic() + SHIM_EXIT_GRACE_S
    while proc.running() and time.monotonic() < deadline:
        wait_exit(proc, deadline - time.monotonic())
    if not proc.running():
        return
    pgid = proc.process_group()
    with contextlib.suppress(ProcessLookupError):
        if group and pgid == proc.pid:
            os.killpg(pgid, signal.SIGKILL)
        elif proc.stat() is not None:
            os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + SHIM_EXIT_GRACE_S
    while proc.running() and time.monotonic() < deadline:
        wait_exit(proc, deadline - time.monotonic())
    if proc.running():
        raise IsolateError(f"process {proc.pid} survived SIGKILL")


def mounts_below(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points strictly below ``path`` in this mount namespace, deepest first."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    found = []
    with open(mountinfo) as f:
        for line in f:
            point = line.split()[4]
            point = point.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
                .replace("\\134", "\\")
            if point.startswith(prefix):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _unmount_below(path: str) -> None:
    """Mounts live in the container's private namespace and vanish with it; this only sweeps what an
    older or interrupted setup may have left in the host's namespace."""
    for point in mounts_below(path):
        if _libc.umount2(os.fsencode(point), ctypes.c_int(MNT_DETACH)) != 0:
            err = ctypes.get_errno()
            if err not in (22, 2):  # EINVAL: not a mount point any more; ENOENT: gone
                raise IsolateError(f"cannot unmount {point}: {os.strerror(err)}")


def _remove_state_files(state: str) -> None:
    for name in STATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state, name))


__all__ = ["launch", "adopt", "destroy", "mounts_below"]
