"""The per-container shim: run as ``python -I -S _shim.py <config>``, never imported by Galaxy.

Why a separate process: the Agent is threaded (ZeroMQ, kazoo), so it must not fork-and-run-Python
(``preexec_fn``); this fresh single-threaded interpreter may. Why it stays: someone must be the parent
of the container's PID 1 to learn its exit status after the Agent died, so the shim daemonises (double
fork, own session, no parent-death signal), waits for PID 1 and writes ``status.json``.

Flow: fork (the launched process exits at once) → write ``shim.pid`` → ``unshare(CLONE_NEWPID)`` → fork
PID 1 → PID 1 enters its cgroups *first* (before it can fork anything), unshares mount/uts/ipc, builds
the root from the plan, ``pivot_root``s, drops to ``run_as`` if asked and execs the command. Setup errors
come back to the shim on a close-on-exec pipe (EOF means the exec succeeded); the shim reports one line
on stdout to the launcher (``ok <pid>`` or ``err <stage> <message>``) and then only waits.

The Agent's zygote (``_zygote.py``) runs the very same code in a fork of itself instead of a fresh
interpreter, with ``run`` given: PID 1 then does every step above except the exec and calls ``run``
(the AppWorker's main, already imported) instead; closing the error pipe by hand is its "exec succeeded".

Only the standard library, and only cheap modules (no json, no signal): this runs once per container.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would cost every launch ~2 ms
if TYPE_CHECKING:
    from collections.abc import Callable

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64 (generic syscall table)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
ENOSYS = 38

SIGPIPE = 13
SIGXFSZ = 25

PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
CAP_VERSION_3 = 0x20080522
SECURE_NOROOT = 0x1 | 0x2                 # root gains no capability by exec (and locked)
SECURE_NO_SETUID_FIXUP = 0x4 | 0x8        # a uid change keeps the sets we chose (and locked)
SECURE_KEEP_CAPS_LOCKED = 0x20
SECUREBITS = SECURE_NOROOT | SECURE_NO_SETUID_FIXUP | SECURE_KEEP_CAPS_LOCKED

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.signal.restype = ctypes.c_void_p
_libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class Failure(Exception):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           f"mount {source or fstype} on {target}")


def set_attrs(target: str, attrs: int) -> None:
    """Apply mount attributes to a bind and every mount below it (mount_setattr, kernel 5.12+)."""
    attr = MountAttr(attr_set=attrs)
    ret = _libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), _b(target),
                        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if ret == 0:
        return
    if ctypes.get_errno() != ENOSYS:
        _check(-1, f"mount_setattr {target}")
    flags = MS_REMOUNT | MS_BIND  # older kernels: the top mount only
    flags |= (MS_RDONLY if attrs & 0x1 else 0) | (MS_NOSUID if attrs & 0x2 else 0)
    flags |= (MS_NODEV if attrs & 0x4 else 0) | (MS_NOEXEC if attrs & 0x8 else 0)
    mount(None, target, None, flags, None)


def safe_target(rootfs: str, target: str, is_dir: bool) -> None:
    """Create ``target`` below ``rootfs`` refusing to follow any symlink on the way, so a link planted
    in a writable dir (the work dir survives restarts) cannot redirect a mount onto the host."""
    if target != rootfs and not target.startswith(rootfs + "/"):
        raise OSError(1, f"mount target {target} is outside the rootfs")
    path = rootfs
    parts = [p for p in target[len(rootfs):].split("/") if p]
    for i, part in enumerate(parts):
        path = path + "/" + part
        last = i == len(parts) - 1
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if last and not is_dir:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            else:
                os.mkdir(path, 0o755)
            continue
        if (st.st_mode & 0o170000) == 0o120000:
            raise OSError(40, f"mount target {target} crosses a symlink at {path}")


def run_plan(rootfs: str, plan: list) -> None:
    for step in plan:
        kind = step[0]
        if kind == "tmpfs":
            _, target, flags, options = step
            safe_target(rootfs, target, True)
            mount("tmpfs", target, "tmpfs", flags, options)
        elif kind == "bind":
            _, source, target, attrs, is_dir = step
            safe_target(rootfs, target, is_dir)
            mount(source, target, None, MS_BIND | MS_REC, None)
            if attrs:
                set_attrs(target, attrs)
        elif kind == "symlink":
            _, text, path = step
            safe_target(rootfs, os.path.dirname(path), True)
            os.symlink(text, path)
        elif kind == "mask":
            _, target, is_dir = step
            if is_dir:
                mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
            else:
                mount("/dev/null", target, None, MS_BIND, None)
                set_attrs(target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)  # same bits as MOUNT_ATTR_*
        elif kind == "devpts":
            safe_target(rootfs, step[1], True)
            mount("devpts", step[1], "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        elif kind == "proc":
            safe_target(rootfs, step[1], True)
            mount("proc", step[1], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        else:
            raise OSError(22, f"unknown mount step {kind!r}")


def pivot(rootfs: str) -> None:
    """Make ``rootfs`` the root: pivot_root(".", ".") stacks the old root on top, then detach it."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown architecture {os.uname().machine}")
    os.chdir(rootfs)
    _check(_libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", ctypes.c_int(MNT_DETACH)), "detach old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def become_init(cfg: dict, console_fd: int, *, inline: bool = False, sync: tuple[int, int] | None = None) -> None:
    """Runs as PID 1 of the new pid namespace. Execs the command and so returns only by raising
    Failure, unless ``inline``: then it returns, set up and ready to run Python code of the caller's.
    ``sync`` (to the shim, from the shim) is given when PID 1 enters a user namespace the shim maps."""
    stage = "cgroup"
    try:
        for path in cfg["join_files"]:
            with open(path, "w") as f:
                f.write("0")
        stage = "namespace"
        _check(_libc.unshare(ctypes.c_int(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC)), "unshare")
        name = cfg["hostname"].encode()
        _check(_libc.sethostname(name, ctypes.c_size_t(len(name))), "sethostname")
        stage = "mount"
        mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        run_plan(cfg["rootfs"], cfg["plan"])
        pivot(cfg["rootfs"])
        os.chdir(cfg["cwd"])
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(console_fd, 1)
        os.dup2(console_fd, 2)
        if sync is not None:
            stage = "userns"
            enter_user_namespace(sync)
        stage = "confine"
        confine(cfg["caps"], cfg["seccomp"], cfg["run_as"], inline)
        if inline:
            return  # Python's own signal set-up is what the inline code expects: keep it
        stage = "exec"
        for signum in (SIGPIPE, SIGXFSZ):  # Python ignores these; the command must not inherit that
            _libc.signal(signum, None)
        argv = cfg["argv"]
        os.execvpe(argv[0], argv, cfg["env"])
    except OSError as err:
        text = f"{err.strerror or err}" if stage != "exec" else f"cannot exec {cfg['argv'][0]!r}: {err.strerror}"
        if stage != "exec" and err.filename:
            text = f"{text}: {err.filename}"
        raise Failure(stage, text) from err


def prctl(option: int, arg2: int, arg3: int = 0, what: str = "prctl") -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), what)


def enter_user_namespace(sync: tuple[int, int]) -> None:
    """Become root of a new user namespace whose ids the shim maps (root inside = an unprivileged uid
    outside). The mount and pid namespaces stay owned by the host's user namespace, so root inside can
    neither mount nor unmount anything; and no capability inside applies to a host file whose owner is
    not mapped (all of the host's system files)."""
    ready_w, go_r = sync
    _check(_libc.unshare(ctypes.c_int(CLONE_NEWUSER)), "unshare(CLONE_NEWUSER)")
    os.write(ready_w, b"u")
    answer = os.read(go_r, 4096)
    if answer != b"ok":
        raise OSError(1, f"the shim could not map the user namespace: {answer.decode(errors='replace') or 'no answer'}")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def map_user_namespace(pid: int, userns: dict) -> None:
    """The shim's half: write PID 1's uid and gid maps (the shim is root of the host's namespace)."""
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write("".join(f"{inside} {outside} 1\n" for inside, outside in userns[kind]))


def current_permitted() -> int:
    header = CapHeader(CAP_VERSION_3, 0)
    data = (CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    return data[0].permitted | data[1].permitted << 32


def capset(permitted: int, inheritable: int) -> None:
    """Set this thread's permitted and effective sets to ``permitted`` and its inheritable set."""
    header = CapHeader(CAP_VERSION_3, 0)
    data = (CapData * 2)()
    for i in (0, 1):
        data[i].effective = data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def confine(caps: dict, seccomp: bytes | None, run_as: tuple[int, int] | None, inline: bool) -> None:
    """Drop to the capability sets the launcher chose, then no_new_privs and the seccomp filter.

    ``caps["service"]`` (the pool-granted extras) is the bounding set and the ambient set: all that any
    exec inside can ever hold, root or not (SECBIT_NOROOT: root gains nothing by exec). PID 1 keeps
    ``caps["init"]`` too (the AppWorker's own needs, 0 when PID 1 runs as the service user). When PID 1
    execs its init (no zygote), the init caps must cross that exec, so they are ambient as well and the
    init narrows them at its start (:func:`galaxy.isolate.narrow_inherited_capabilities`).
    Order matters: securebits and the bounding set need CAP_SETPCAP, a uid change needs CAP_SETUID,
    so both come before the capset that gives them up; with SECBIT_NO_SETUID_FIXUP that uid change
    keeps the sets."""
    prctl(PR_SET_SECUREBITS, SECUREBITS, what="set securebits")
    permitted = caps["service"] | caps["init"]
    inheritable = caps["service"] | (0 if inline else caps["init"])
    capset(current_permitted(), inheritable)  # an inheritable cap must be in the bounding set when raised
    for cap in range(caps["last"] + 1):
        if not caps["service"] >> cap & 1:
            prctl(PR_CAPBSET_DROP, cap, what=f"drop capability {cap} from the bounding set")
    if run_as is not None:
        uid, gid = run_as
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    capset(permitted, inheritable)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="clear ambient capabilities")
    for cap in range(caps["last"] + 1):
        if inheritable >> cap & 1:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, what=f"raise ambient capability {cap}")
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="no_new_privs")
    if seccomp:
        buf = ctypes.create_string_buffer(seccomp, len(seccomp))
        prog = SockFprog(len(seccomp) // 8, ctypes.addressof(buf))
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), what="load the seccomp filter")


def start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def oom_kills(path: str | None) -> int:
    if not path:
        return 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        pass
    return 0


def report(line: str) -> None:
    os.write(1, (line.replace("\n", " ") + "\n").encode())


def supervise(cfg: dict, run: Callable[[dict], int] | None = None) -> int:
    """The shim proper: make PID 1, report on fd 1, wait for PID 1 and record its end. With ``run``,
    PID 1 calls ``run(cfg)`` (which must not raise) and exits with what it returns, instead of exec."""
    files = cfg["files"]
    os.setsid()
    os.umask(0o022)
    me = os.getpid()
    write_atomic(files["shim_pid"], f"{me} {start_time(me)}\n")
    console_fd = os.open(files["console"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    oom_before = oom_kills(cfg["oom_file"])
    if _libc.unshare(ctypes.c_int(CLONE_NEWPID)) != 0:
        report(f"err namespace unshare(CLONE_NEWPID): {os.strerror(ctypes.get_errno())}")
        return 1
    err_r, err_w = os.pipe()  # both close-on-exec: the exec itself closes err_w
    userns = cfg.get("userns")
    if userns:
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(err_r)
        sync = None
        if userns:
            os.close(ready_r)
            os.close(go_w)
            sync = (ready_w, go_r)
        try:
            become_init(cfg, console_fd, inline=run is not None, sync=sync)
            if sync is not None:
                os.close(ready_w)
                os.close(go_r)
        except Failure as failure:
            os.write(err_w, f"{failure.stage} {failure}".encode()[:4000])
            os._exit(127)
        except BaseException as exc:  # noqa: BLE001 - anything else is still a setup failure to report
            os.write(err_w, f"setup {type(exc).__name__}: {exc}".encode()[:4000])
            os._exit(127)
        if run is None:
            os._exit(127)  # not reached: become_init execs or raises
        os.close(err_w)  # EOF: the shim reports "ok", as after an exec
        os._exit(run(cfg))
    os.close(err_w)
    if userns:
        os.close(ready_w)
        os.close(go_r)
        if os.read(ready_r, 1) == b"u":  # EOF instead: PID 1 failed before, the error pipe says why
            try:
                map_user_namespace(child, userns)
                os.write(go_w, b"ok")
            except OSError as err:
                os.write(go_w, f"{err}".encode()[:4000])
        os.close(ready_r)
        os.close(go_w)
    chunks = []
    while True:
        chunk = os.read(err_r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(err_r)
    if chunks:
        os.waitpid(child, 0)
        report("err " + b"".join(chunks).decode(errors="replace"))
        return 1
    write_atomic(files["init_pid"], f"{child} {start_time(child)}\n")
    report(f"ok {child}")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # the launcher sees EOF; an Agent that died no longer matters
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        oom = "true" if oom_kills(cfg["oom_file"]) > oom_before else "false"
        text = f'{{"signal": {os.WTERMSIG(status)}, "oom": {oom}}}\n'
    else:
        text = f'{{"exit_code": {os.WEXITSTATUS(status)}}}\n'
    write_atomic(files["status"], text)
    return 0


def detach_and_supervise(cfg: dict, run: Callable[[dict], int] | None = None) -> None:
    """Fork the shim off (the caller exits at once) and be it; never returns."""
    if os.fork() != 0:
        os._exit(0)  # the launcher reaps this one; the shim below is nobody's child but init's
    try:
        os._exit(supervise(cfg, run))  # skip interpreter teardown: waiters watch for this exit
    except BaseException as exc:  # noqa: BLE001 - the launcher must hear about any failure
        try:
            report(f"err shim {type(exc).__name__}: {exc}")
        except OSError:
            pass
        import traceback  # only on this failure path: the shim.log gets the whole story

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def main(argv: list[str]) -> None:
    with open(argv[1], "rb") as f:
        cfg = marshal.load(f)
    detach_and_supervise(cfg)


if __name__ == "__main__":
    main(sys.argv)
