"""The zygote: a single-threaded process that has already imported a container init (the AppWorker)
and forks a shim + PID 1 per launch, so no container pays an interpreter start and the init's imports.

Run as ``python -I -m galaxy.isolate._zygote <dir> <module>`` by :class:`galaxy.isolate.Zygote` (never
imported by Galaxy itself). It binds ``<dir>/zygote.sock`` (mode 0600, and only a peer with our uid
is served), writes ``<dir>/zygote.pid`` and detaches into a session of its own, so, like the shims, it
outlives the Agent that started it; the next Agent re-finds it through the pid file.

One request per connection, one line each:

    ping              → ``pong fresh`` / ``pong stale`` (a file of an imported module changed since
                        we imported it: the caller should replace us)
    launch <config>   → exactly what the shim prints on stdout (``ok <pid>`` / ``err <stage> <msg>``)

For ``launch`` the zygote forks; that child points fd 1 at the connection and fd 2 at the container's
``shim.log`` and runs the shim's own code (``_shim.detach_and_supervise``), so the shim process, the
files it writes and what the Agent reads are the same as on the exec path. When the config's argv is
``[<this python>, -m, <module>, …]`` PID 1 does not exec but calls ``<module>.main(args)`` in the
already-warm interpreter (see :func:`run_inline`); any other argv is exec'd as the shim would.

Why single-threaded, and why it must stay so: only the forking thread survives a fork, so a lock held
by any other thread would be held forever in the child. Nothing here starts a thread; the imported
init must not start one at import time (checked at start-up: the zygote refuses to serve otherwise).
"""

from __future__ import annotations

import gc
import importlib
import logging
import marshal
import os
import select
import signal
import socket
import struct
import sys
from collections.abc import Callable

from galaxy.isolate import _shim

SOCKET_NAME = "zygote.sock"
PID_NAME = "zygote.pid"
REQUEST_TIMEOUT_S = 5.0
WATCH_INTERVAL_S = 2.0
BACKLOG = 128
PR_SET_NAME = 15


def _fingerprint() -> dict[str, int]:
    """mtime of every imported module's file: a changed one means an upgrade we have not loaded."""
    marks: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            try:
                marks[path] = os.stat(path).st_mtime_ns
            except OSError:
                marks[path] = -1
    return marks


def _is_stale(marks: dict[str, int]) -> bool:
    for path, mtime in marks.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            if mtime != -1:
                return True
    return False


def run_inline(entry: Callable[[list[str]], int], args: list[str], cfg: dict) -> int:
    """PID 1's life on the zygote path, after the shim's set-up: what a fresh interpreter started by
    exec would have had (its env, no stray fds, default signals, fresh random state), then ``entry``.
    Never raises: PID 1 exits with the returned code."""
    try:
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the zygote's and shim's fds: an exec would have dropped them
        os.environ.clear()
        os.environ.update(cfg["env"])
        sys.argv = [cfg["argv"][2], *args]
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                       signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random = sys.modules.get("random")
        if random is not None:
            random.seed()  # every fork would otherwise draw the zygote's sequence
        name = cfg["argv"][2].split(".", 1)[-1]  # ps shows "appworker.main", not the zygote's name
        _shim._libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except BaseException as exc:  # noqa: BLE001 - PID 1 must exit with a status, not unwind the zygote
        os.write(2, f"galaxy zygote: cannot prepare PID 1: {type(exc).__name__}: {exc}\n".encode())
        return 127
    try:
        code = entry(args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - as an interpreter would: print it, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code if isinstance(code, int) else 0


class ZygoteServer:
    """The serving loop; everything runs on the one thread."""

    def __init__(self, directory: str, module: str) -> None:
        self.directory = directory
        self.module = module
        self.entry: Callable[[list[str]], int] = importlib.import_module(module).main
        self.marks = _fingerprint()
        # Everything imported so far is shared with every child, page by page, until written. A
        # child's garbage collector would write to (and so copy) every tracked object's header:
        # frozen objects are never scanned.
        gc.collect()
        gc.freeze()
        self.dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid_file = os.path.join(directory, PID_NAME)
        self.me = ""

    def bind(self) -> None:
        # Through our own fd of the dir: an Agent's state dir may be longer than sun_path's 108 bytes.
        path = f"/proc/self/fd/{self.dir_fd}/{SOCKET_NAME}"
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old_mask = os.umask(0o077)
        try:
            self.listener.bind(path)
        finally:
            os.umask(old_mask)
        self.listener.listen(BACKLOG)

    def announce(self) -> None:
        pid = os.getpid()
        self.me = f"{pid} {_shim.start_time(pid)}\n"
        _shim.write_atomic(self.pid_file, self.me)
        os.write(1, f"ready {pid}\n".encode())
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)

    def still_wanted(self) -> bool:
        """False once our pid file is gone or names another zygote: the Agent's state dir was removed
        (a test's teardown, a decommission) or a newer zygote replaced us."""
        try:
            with open(self.pid_file) as f:
                return f.read() == self.me
        except OSError:
            return False

    def serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.listener], [], [], WATCH_INTERVAL_S)
            if not ready:
                if not self.still_wanted():
                    return
                continue
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            try:
                self.handle(conn)
            except OSError as err:
                os.write(2, f"galaxy zygote: request failed: {err}\n".encode())
            finally:
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.geteuid():
            return
        conn.settimeout(REQUEST_TIMEOUT_S)
        data = b""
        while b"\n" not in data and len(data) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        verb, _, arg = data.split(b"\n", 1)[0].decode(errors="replace").partition(" ")
        if verb == "ping":
            conn.sendall(b"pong stale\n" if _is_stale(self.marks) else b"pong fresh\n")
        elif verb == "launch":
            self.launch(conn, arg)
        else:
            conn.sendall(f"err setup unknown zygote request {verb!r}\n".encode())

    def launch(self, conn: socket.socket, config_path: str) -> None:
        try:
            with open(config_path, "rb") as f:
                cfg = marshal.load(f)
        except (OSError, ValueError, EOFError) as err:
            conn.sendall(f"err setup cannot read {config_path}: {err}\n".encode())
            return
        argv = cfg["argv"]
        inline = len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", self.module]
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            self._become_shim(conn, cfg, argv[3:] if inline else None)
        while True:
            try:
                os.waitpid(child, 0)  # it forks the shim and exits at once
                return
            except InterruptedError:
                continue
            except ChildProcessError:
                return

    def _become_shim(self, conn: socket.socket, cfg: dict, inline_args: list[str] | None) -> None:
        """In the forked child: never returns into the serving loop."""
        try:
            os.dup2(conn.fileno(), 1)
            log = os.open(cfg["files"]["shim_log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.dup2(log, 2)
            os.close(log)
            os.close(self.listener.fileno())
            os.close(conn.fileno())
            os.close(self.dir_fd)
            run = None
            if inline_args is not None:
                entry, args = self.entry, inline_args

                def run(config: dict) -> int:
                    return run_inline(entry, args, config)
            _shim.detach_and_supervise(cfg, run)
        except BaseException as exc:  # noqa: BLE001 - report, and never unwind into the zygote's loop
            try:
                os.write(1, f"err shim {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        os._exit(1)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        os.write(2, b"usage: python -I -m galaxy.isolate._zygote <dir> <module>\n")
        return 2
    server = ZygoteServer(argv[1], argv[2])
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        os.write(1, f"err {argv[2]} started {threads - 1} thread(s) at import: cannot fork safely\n".encode())
        return 1
    server.bind()
    if os.fork() != 0:
        os._exit(0)  # the Agent reaps this one; the zygote below is nobody's child but init's
    os.setsid()
    server.announce()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
