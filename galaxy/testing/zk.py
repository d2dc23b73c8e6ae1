"""A real, throw-away ZooKeeper server for tests, benchmarks and `galaxy dev zk`.

Why a real server: every guarantee Galaxy's coordination layer gives (fencing, takeover after a
session expires, ordered transactions) is a property of ZooKeeper itself, so a stand-in would test
nothing. The server runs from the Debian package's jars, standalone, bound to loopback on a free
port, with its data and log in a temporary directory that is removed on ``stop()``.

The JVM is launched through ``setpriv --pdeathsig KILL`` when util-linux provides it, so a test run
that is itself SIGKILLed does not leave a JVM behind. (The death signal follows the *thread* that
started the server, so start servers from a long-lived thread — the main thread in practice.)
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from galaxy.coord._tls import CA_FILE, NETTY_EXTRA_JARS, server_config_lines
from galaxy.errors import GalaxyError, HostError, Timeout

_JAVA_DIRS = ("/usr/share/java", "/usr/share/zookeeper", "/usr/share/zookeeper/lib", "/opt/zookeeper/lib")
_CLASSPATH_ENV = "GALAXY_ZOOKEEPER_CLASSPATH"
_MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_JVM_FLAGS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
_START_ATTEMPTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller must tolerate losing a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0, ca: str | None = None,
                     check_hostname: bool = True) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``, ``stat``, ``cons``) and return the answer;
    over TLS, checking the server against the CA certificate ``ca``, when the port is a secure one
    (``check_hostname=False``: any certificate that CA signed, for a harness asking its own server)."""
    context = ssl.create_default_context(cafile=ca) if ca else None
    sock = socket.create_connection((host, port), timeout=timeout)
    if context is not None:
        context.check_hostname = check_hostname
        # takes the descriptor over (closing the TLS socket closes it), or closes it on failure
        sock = context.wrap_socket(sock, server_hostname=host)
    with contextlib.closing(sock):
        sock.sendall(word.encode("ascii"))
        chunks: list[bytes] = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def find_classpath() -> str:
    """The class path of the installed ZooKeeper: its jar (whose manifest names the rest) and an SLF4J binding.

    Looks at ``$GALAXY_ZOOKEEPER_CLASSPATH`` first, then the Debian layout, then tarball-like layouts,
    so a slightly different packaging still works.
    """
    override = os.environ.get(_CLASSPATH_ENV)
    if override:
        return override
    jars: list[str] = []
    for directory in _JAVA_DIRS:
        exact = os.path.join(directory, "zookeeper.jar")
        found = [exact] if os.path.exists(exact) else sorted(glob.glob(os.path.join(directory, "zookeeper-[0-9]*.jar")))
        if found:
            jars.append(found[-1])
            # The Debian jar's manifest carries the Class-Path; other layouts ship the dependencies
            # beside it, so take every jar of that directory too.
            if not os.path.exists(exact):
                jars.extend(j for j in sorted(glob.glob(os.path.join(directory, "*.jar"))) if j not in jars)
            break
    if not jars:
        raise HostError(f"no ZooKeeper jar found in {', '.join(_JAVA_DIRS)} (install the `zookeeper` "
                        f"package or set {_CLASSPATH_ENV})")
    # TLS (a secure client port) needs two netty jars the Debian jar's manifest leaves out.
    jars.extend(j for j in NETTY_EXTRA_JARS if os.path.exists(j) and j not in jars)
    if not any("slf4j-simple" in os.path.basename(j) or "logback-classic" in j for j in jars):
        for directory in _JAVA_DIRS:
            binding = sorted(glob.glob(os.path.join(directory, "slf4j-simple*.jar")))
            if binding:
                jars.append(binding[0])
                break
    return ":".join(jars)


def delete_tree(client: Any, path: str, chunk: int = 1000) -> int:
    """Remove ``path`` and everything below it, fast: deepest level first, in pipelined multis.

    kazoo's ``delete(recursive=True)`` costs one round trip per node (~5 s for 5k nodes); this
    costs a few. Returns how many nodes were removed (0 if ``path`` did not exist).
    """
    from kazoo.exceptions import NoNodeError

    levels: list[list[str]] = [[path]]
    while levels[-1]:
        asked = [(p, client.get_children_async(p)) for p in levels[-1]]
        below: list[str] = []
        for parent, result in asked:
            try:
                below.extend(f"{parent.rstrip('/')}/{child}" for child in result.get())
            except NoNodeError:
                continue
        levels.append(below)
    removed = 0
    for level in reversed(levels):
        pending = []
        for start in range(0, len(level), chunk):
            tx = client.transaction()
            for node in level[start:start + chunk]:
                tx.delete(node)
            pending.append(tx.commit_async())
        for result in pending:
            outcome = result.get()
            removed += sum(1 for r in outcome if r is True)
    return removed


class ZooKeeperServer:
    """One standalone ZooKeeper (on 127.0.0.1 unless ``address`` names another local address), owned
    by this process.

    ``tick_ms`` bounds session timeouts to [2, 20] ticks and sets how quickly an expired session is
    noticed, so tests use a short tick (500 ms) to make takeover fast.

    ``tls_dir`` (holding ``zookeeper-ca.pem`` and ``zookeeper-server.pem``, see
    ``galaxy.coord._tls.write_server_tls``) makes the port a TLS-only secure client port; clients
    then connect with ``ca=server.ca``.
    """

    def __init__(self, *, tick_ms: int = 500, data_dir: str | os.PathLike[str] | None = None,
                 port: int = 0, max_session_timeout_ms: int = 60_000, address: str = "127.0.0.1",
                 tls_dir: str | os.PathLike[str] | None = None) -> None:
        if tick_ms <= 0:
            raise GalaxyError("tick_ms must be positive", field="tick_ms")
        self.tick_ms = tick_ms
        self.max_session_timeout_ms = max(max_session_timeout_ms, 20 * tick_ms)
        self._requested_port = port
        self.address = address
        self.tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._own_dir = data_dir is None
        self._base = Path(data_dir) if data_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self.port = 0
        self._lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        """The connect string, ``"ADDRESS:PORT"``."""
        if not self.port:
            raise GalaxyError("ZooKeeper server is not started")
        return f"{self.address}:{self.port}"

    @property
    def ca(self) -> str | None:
        """The CA certificate clients check this server with (None: plain TCP)."""
        return str(self.tls_dir / CA_FILE) if self.tls_dir is not None else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> ZooKeeperServer:
        """Launch the JVM and return once it serves (a kazoo connect before that can stall ~10 s)."""
        with self._lock:
            if self.running:
                return self
            if self._base is None:
                self._base = Path(tempfile.mkdtemp(prefix="galaxy-zk-"))
            self._base.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + timeout
            for attempt in range(_START_ATTEMPTS):
                port = self._requested_port or free_port(self.address)
                self._launch(port)
                if self._wait_ready(port, deadline):
                    self.port = port
                    return self
                # Lost the race for the port, or the JVM died: try a fresh port unless one was asked.
                exited = self._proc is not None and self._proc.poll() is not None
                self._terminate()
                if not exited or self._requested_port or attempt == _START_ATTEMPTS - 1:
                    break
            tail = self.log_text()[-2000:]
            self._cleanup_dir()
            raise Timeout(f"ZooKeeper did not answer ruok within {timeout:.0f} s; log tail:\n{tail}")
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, grace: float = 5.0) -> None:
        """TERM the JVM by its PID, KILL it after ``grace`` seconds, reap it, and remove its temp dir."""
        with self._lock:
            self._terminate(grace)
            self._cleanup_dir()
            self.port = 0

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_text(self) -> str:
        """Everything the server logged so far (for dumping on a test failure)."""
        if self._base is None:
            return ""
        path = self._base / "zookeeper.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def four_letter_word(self, word: str) -> str:
        return four_letter_word(self.address, self.port, word, ca=self.ca)

    # ---- fault injection -------------------------------------------------------------------------
    def expire_session(self, client: Any, timeout: float = 10.0) -> None:
        """Make the server expire ``client``'s session, and wait until the client has seen LOST.

        The classic trick: a second client attaches to the same session id and password, which
        moves the session away from the first connection, then closes it, which ends the session.
        """
        from kazoo.client import KazooClient
        from kazoo.protocol.states import KazooState

        lost = threading.Event()

        def on_state(state: str) -> bool:
            if state == KazooState.LOST:
                lost.set()
                return True
            return False

        client.add_listener(on_state)
        intruder = KazooClient(hosts=self.hosts, client_id=client.client_id, timeout=timeout)
        try:
            intruder.start(timeout=timeout)
            intruder.stop()
        finally:
            intruder.close()
        if not lost.wait(timeout):
            client.remove_listener(on_state)
            raise Timeout(f"client did not see its session expire within {timeout} s")

    def drop_connection(self, client: Any) -> None:
        """Cut ``client``'s TCP connection; its session survives, it goes SUSPENDED and reconnects.

        Uses the hook kazoo's own test harness uses to drop a connection.
        """
        from kazoo.protocol.connection import _CONNECTION_DROP

        client._call(_CONNECTION_DROP, client.handler.async_result())

    def pause(self) -> None:
        """SIGSTOP the server (a hung server: clients time out and go SUSPENDED)."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)

    # ---- internals -------------------------------------------------------------------------------
    def _launch(self, port: int) -> None:
        assert self._base is not None
        data = self._base / "data"
        data.mkdir(exist_ok=True)
        config = self._base / "zoo.cfg"
        config.write_text("\n".join([
            f"tickTime={self.tick_ms}",
            f"dataDir={data}",
            *([f"secureClientPort={port}", f"secureClientPortAddress={self.address}",
               *server_config_lines(self.tls_dir)] if self.tls_dir is not None
              else [f"clientPort={port}", f"clientPortAddress={self.address}"]),
            f"minSessionTimeout={2 * self.tick_ms}",
            f"maxSessionTimeout={self.max_session_timeout_ms}",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat,cons",
            "autopurge.purgeInterval=0",
            "",
        ]))
        java = shutil.which("java")
        if java is None:
            raise HostError("no `java` on PATH; install the `zookeeper` package (it pulls a JRE)")
        command = [java, *_JVM_FLAGS, "-Dzookeeper.log.dir=" + str(self._base),
                   "-Dorg.slf4j.simpleLogger.showDateTime=true",
                   "-cp", find_classpath(), _MAIN_CLASS, str(config)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = open(self._base / "zookeeper.log", "ab")  # noqa: SIM115  # lives with the process
        self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, cwd=self._base, start_new_session=True)

    def _wait_ready(self, port: int, deadline: float) -> bool:
        assert self._proc is not None
        delay = 0.02
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                # `ruok` answers before the server serves; `srvr` names the mode only once it does.
                ask = functools.partial(four_letter_word, self.address, port, timeout=1.0, ca=self.ca,
                                        check_hostname=False)
                if ask("ruok") == "imok" and "Mode:" in ask("srvr"):
                    return True
            except OSError:
                pass
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        return False

    def _terminate(self, grace: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)  # a paused JVM cannot act on TERM
                proc.send_signal(signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        elif proc is not None:
            proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup_dir(self) -> None:
        if self._own_dir and self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None


__all__ = ["ZooKeeperServer", "delete_tree", "find_classpath", "four_letter_word", "free_port"]
