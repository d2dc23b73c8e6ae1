"""The supervisor process: owns the programs of one host, takes requests through its run directory.

Why a file drop and a signal rather than a socket: the supervisor then needs no listener, no
protocol and no authentication beyond the directory's permissions (root-only), and a request is
still answered if the signal is lost (the directory is scanned every tick). A request is
``requests/<id>.req`` (JSON ``{"op", "program", "signal"}``); the answer appears as ``<id>.rep``.

Signals: TERM/INT stop every program (in reverse order) and exit; HUP re-reads the config and
applies it to every program (start new ones, restart changed ones, stop removed ones); USR1 says
"a request is waiting".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from galaxy.errors import Conflict, GalaxyError, InvalidInput
from galaxy.supervisor._config import SupervisorConfig, load_config
from galaxy.supervisor._program import Program, write_atomic, write_pidfile

log = logging.getLogger(__name__)

TICK = 0.2
OPS = ("ensure", "restart", "stop", "signal")


class Supervisor:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self.config: SupervisorConfig = load_config(config_path)
        self.programs: dict[str, Program] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._reload = False
        self._lock_fd: int | None = None

    # -- signals ---------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR1, lambda *_: self._wake.set())

    def _on_stop(self, *_: Any) -> None:
        self._stopping = True
        self._wake.set()

    def _on_hup(self, *_: Any) -> None:
        self._reload = True
        self._wake.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def _claim(self) -> None:
        """Hold an exclusive lock for our lifetime, so two supervisors never share a run dir."""
        for directory in (self.config.run_dir, self.config.log_dir, self.config.request_dir):
            os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(os.path.join(self.config.run_dir, "supervisor.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"another supervisor runs with run_dir {self.config.run_dir}", field="run_dir") from None
        self._lock_fd = fd
        write_pidfile(self.config.pidfile, os.getpid())

    def run(self) -> None:
        """Start every configured program, then supervise until TERM; stops them all on the way out."""
        self._claim()
        try:
            for name, spec in self.config.programs.items():
                program = Program(spec, self.config.run_dir, self.config.log_dir)
                program.stop_leftover()
                program.start()
                self.programs[name] = program
            self._write_state()
            while not self._stopping:
                self._wake.wait(TICK)
                self._wake.clear()
                changed = False
                if self._reload:
                    self._reload = False
                    changed |= self._apply_all()
                changed |= self._serve_requests()
                for program in list(self.programs.values()):
                    if self._stopping:
                        break
                    changed |= program.poll()
                if changed:
                    self._write_state()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for program in reversed(list(self.programs.values())):
            try:
                program.stop()
            except GalaxyError as err:
                log.error("%s: %s", program.spec.name, err)
        for path in (self.config.state_file, self.config.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("supervisor stopped")

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "config": self.config.source,
                 "programs": {name: p.status() for name, p in self.programs.items()}}
        write_atomic(self.config.state_file, json.dumps(state, indent=1, sort_keys=True))

    # -- applying definitions --------------------------------------------------------------------
    def _reread(self) -> None:
        self.config = load_config(self.config_path)

    def ensure(self, name: str) -> bool:
        """Run ``name`` with its current definition; True if that meant starting or restarting it."""
        spec = self.config.program(name)
        program = self.programs.get(name)
        if program is not None and program.digest == spec.digest() and program.state == "running":
            return False
        if program is not None:
            program.stop()
            log.info("%s: definition changed or not running: (re)starting", name)
        fresh = Program(spec, self.config.run_dir, self.config.log_dir)
        if program is not None:
            fresh.restarts = program.restarts + 1
        self.programs[name] = fresh
        fresh.start()
        return True

    def restart(self, name: str) -> bool:
        spec = self.config.program(name)
        program = self.programs.pop(name, None)
        if program is not None:
            program.stop()
        fresh = Program(spec, self.config.run_dir, self.config.log_dir)
        fresh.restarts = program.restarts + 1 if program is not None else 0
        self.programs[name] = fresh
        fresh.start()
        return True

    def stop_program(self, name: str) -> bool:
        program = self.programs.pop(name, None)
        if program is None:
            return False
        running = program.state == "running"
        program.stop()
        return running

    def _apply_all(self) -> bool:
        try:
            self._reread()
        except GalaxyError as err:
            log.error("reload refused, keeping the running set: %s", err)
            return False
        changed = False
        for name in [n for n in self.programs if n not in self.config.programs]:
            changed |= self.stop_program(name)
        for name in self.config.programs:
            changed |= self.ensure(name)
        return changed

    # -- requests --------------------------------------------------------------------------------
    def _serve_requests(self) -> bool:
        changed = False
        try:
            pending = sorted(Path(self.config.request_dir).glob("*.req"), key=lambda p: p.stat().st_mtime)
        except FileNotFoundError:
            return False
        for path in pending:
            reply: dict[str, Any]
            try:
                request = json.loads(path.read_text())
                did = self._handle(request)
                changed |= did
                program = self.programs.get(str(request.get("program")))
                reply = {"ok": True, "changed": did, "pid": program.pid if program else None,
                         "digest": program.digest if program else None}
            except (GalaxyError, ValueError, OSError) as err:
                reply = {"ok": False, "error": str(err)}
            write_atomic(str(path.with_suffix(".rep")), json.dumps(reply))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return changed

    def _handle(self, request: Any) -> bool:
        if not isinstance(request, dict) or request.get("op") not in OPS:
            raise InvalidInput(f"expected op one of {', '.join(OPS)}", field="op")
        op, name = request["op"], str(request.get("program", ""))
        if op == "stop":
            return self.stop_program(name)
        if op == "signal":
            program = self.programs.get(name)
            if program is not None:   # a program that does not run has nothing to re-read
                program.signal(int(request.get("signal", signal.SIGHUP)))
            return False
        self._reread()
        if op == "ensure":
            return self.ensure(name)
        return self.restart(name)


def run_foreground(config_path: str) -> int:
    """`python -m galaxy.supervisor run`: log to stderr, supervise until TERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    supervisor = Supervisor(config_path)
    supervisor.install_signal_handlers()
    started = time.monotonic()
    supervisor.run()
    log.info("ran %.0f s", time.monotonic() - started)
    return 0
