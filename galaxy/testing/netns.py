"""Test hosts made of network namespaces: real addresses, real kernel networking, one machine.

Why namespaces: multi-host behaviour (an Agent refusing traffic to an unassigned port, a ResMan
reaching Agents by address, iptables rules) is only tested for real against a real network stack,
and a namespace has its own interfaces, routes, iptables tables and ``net.*`` sysctls — without
touching the host's own.

Shape of a :class:`TestNetwork` named ``<prefix>``::

    netns galaxy-<prefix>-sw      bridge br0 ── v1 ── v2 ── …          (the "switch"; no address)
    netns galaxy-<prefix>-1       eth0 198.18.0.1/15, lo up           (TestHost 1)
    netns galaxy-<prefix>-2       eth0 198.18.0.2/15, lo up           (TestHost 2)

Addresses come from the benchmark range 198.18.0.0/15 (RFC 2544), never from 10/8, 172.16/12 or
192.168/16, so a test can never collide with a real network. Nothing is created in the root
namespace: the veth pairs are made inside the switch namespace with their peer moved straight into
the host namespace.

Use as a context manager (or call :meth:`TestNetwork.close`): every process started through
:meth:`TestHost.popen` is ended (by its PID/process group, TERM then KILL), every socket made by
:meth:`TestHost.listen_tcp` closed, every namespace deleted — also when the test fails. Networks
still open at interpreter exit are closed by an ``atexit`` hook; namespaces left by a test process
that was SIGKILLed are removed by :func:`sweep_orphans` (names from :func:`unique_prefix` carry the
creating PID).

:func:`in_netns` switches only the *calling thread* into a namespace (``setns(2)``) and back, which is
how a test drives python-iptables, sysctls or sockets inside a test host from its own process.

A pytest fixture::

    @pytest.fixture
    def net():
        require_netns()
        with TestNetwork(hosts=2) as network:
            yield network
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import ipaddress
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from galaxy.errors import HostError, InvalidInput, NotFound

log = logging.getLogger(__name__)

NETNS_DIR = "/run/netns"
SUBNET = ipaddress.IPv4Network("198.18.0.0/15")
CLONE_NEWNET = 0x40000000
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_ORPHAN_RE = re.compile(r"^galaxy-p(\d+)n\d+-")
_counter = itertools.count(1)
_open_networks: weakref.WeakSet[TestNetwork] = weakref.WeakSet()
_libc = ctypes.CDLL(None, use_errno=True)


# -- switching the current thread ----------------------------------------------------------------

def netns_path(name: str) -> str:
    """``/run/netns/<name>`` for a name, or the path itself for an absolute path."""
    return name if name.startswith("/") else os.path.join(NETNS_DIR, name)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise HostError(f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` for good (threads it starts follow).

    For a client of a cluster whose control plane lives in a test host (`make demo`): the CLI enters
    the namespace named in its config before it opens any connection.
    """
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFound(f"no network namespace {name!r} (is the demo cluster up?)", field="netns") from exc
    try:
        _setns(target)
    finally:
        os.close(target)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside network namespace ``name``, then switch back.

    Only this thread moves: other threads, and the process's ``/proc/self/net``, stay where they
    are (a thread *started* inside the block inherits the namespace, as does a child process).
    Sockets made inside stay in that namespace after the block; python-iptables handles and
    ``/proc/sys/net`` reads made inside act on it.
    """
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFound(f"no network namespace {name!r}", field="netns") from exc
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


# -- names ---------------------------------------------------------------------------------------

def unique_prefix() -> str:
    """A network prefix unique on this machine (``p<pid>n<k>``), recognisable by :func:`sweep_orphans`."""
    return f"p{os.getpid()}n{next(_counter)}"


def sweep_orphans() -> list[str]:
    """Delete ``galaxy-p<pid>n<k>-*`` namespaces whose creating process is gone; returns their names.

    Only names made by :func:`unique_prefix` are considered, and only when that PID no longer
    exists, so namespaces of a concurrently running test process are never touched.
    """
    removed: list[str] = []
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return removed
    for name in names:
        match = _ORPHAN_RE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise HostError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


# -- hosts ---------------------------------------------------------------------------------------

class TestHost:
    """One test host: a network namespace with ``eth0`` on the test network and ``lo`` up."""

    __test__ = False  # not a pytest test class

    def __init__(self, network: TestNetwork, index: int, name: str, address: str) -> None:
        self.network = network
        self.index = index
        self.name = name            # the namespace name, e.g. galaxy-p123n1-2
        self.address = address      # e.g. 198.18.0.2
        self.interface = "eth0"
        self._procs: list[subprocess.Popen[Any]] = []
        self._sockets: list[socket.socket] = []

    def __repr__(self) -> str:
        return f"TestHost({self.name}, {self.address})"

    def netns(self) -> contextlib.AbstractContextManager[None]:
        """``with host.netns():`` — the calling thread inside this host (see :func:`in_netns`)."""
        return in_netns(self.name)

    def command(self, argv: Sequence[str], *, private_mounts: bool = True) -> list[str]:
        """``argv`` wrapped to run inside this host.

        ``private_mounts=True`` uses ``ip netns exec``, which also gives the program a private mount
        namespace with this host's ``/sys`` (and ``/etc/netns/<name>`` files) — mounts it makes are
        invisible outside. ``private_mounts=False`` uses ``nsenter --net`` (util-linux): only the
        network namespace changes, so e.g. an Agent's loop mounts stay visible to the test.
        Both exec the program in place, so a Popen's PID is the program's own.
        """
        if private_mounts:
            return ["ip", "netns", "exec", self.name, *argv]
        return ["nsenter", f"--net={netns_path(self.name)}", "--", *argv]

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
            input: str | None = None, private_mounts: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside this host to completion; text output captured."""
        done = subprocess.run(self.command(argv, private_mounts=private_mounts), capture_output=True,
                              text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise HostError(f"{' '.join(argv)} in {self.name} failed ({done.returncode}): "
                            f"{done.stderr.strip()[:500]}")
        return done

    def popen(self, argv: Sequence[str], *, private_mounts: bool = True, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside this host in its own session; it is ended when the network closes.

        ``kwargs`` go to :class:`subprocess.Popen`; see :meth:`command` for ``private_mounts``.
        """
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.command(argv, private_mounts=private_mounts), **kwargs)
        self._procs.append(proc)
        return proc

    def listen_tcp(self, port: int, address: str = "0.0.0.0") -> socket.socket:
        """A TCP listener inside this host (the kernel completes handshakes; nobody needs to accept)."""
        with self.netns():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._sockets.append(sock)
        return sock

    def tcp_probe(self, address: str, port: int, timeout: float = 2.0) -> str:
        """Connect from this host to ``address:port``: ``"open"``, ``"refused"`` (RST) or ``"timeout"``."""
        with self.netns():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(timeout)
            try:
                sock.connect((address, port))
            except ConnectionRefusedError:
                return "refused"
            except TimeoutError:
                return "timeout"
            except OSError as exc:
                if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                    return "unreachable"
                raise
            return "open"

    def wait_reachable(self, address: str, port: int, timeout: float = 10.0) -> str:
        """Probe until the answer is not a timeout (the link may need a moment); returns the last one."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.tcp_probe(address, port, timeout=0.5)
            if answer in ("open", "refused") or time.monotonic() >= deadline:
                return answer
            time.sleep(0.05)

    def close(self, grace: float = 2.0) -> None:
        """End the processes this host started (TERM, then KILL after ``grace``) and close its sockets."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        live = [p for p in self._procs if p.poll() is None]
        for proc in live:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group a process we started leads (it was started in its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# -- the network ---------------------------------------------------------------------------------

class TestNetwork:
    """A bridge in its own namespace and the test hosts plugged into it. See the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(self, name_prefix: str | None = None, *, hosts: int = 0) -> None:
        prefix = name_prefix if name_prefix is not None else unique_prefix()
        if not _PREFIX_RE.match(prefix):
            raise InvalidInput(f"name prefix must be 1-40 characters of [A-Za-z0-9_.-], got {prefix!r}",
                               field="name_prefix")
        self.prefix = prefix
        self.switch = f"galaxy-{prefix}-sw"
        self.hosts: list[TestHost] = []
        self._lock = threading.Lock()
        self._closed = False
        self._made: list[str] = []
        _open_networks.add(self)
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for _ in range(hosts):
                self.add_host()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TestNetwork:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TestNetwork({self.prefix}, hosts={len(self.hosts)})"

    def add_host(self) -> TestHost:
        """Plug in one more host: ``galaxy-<prefix>-<n>`` at 198.18.0.<n> (counting on past .255)."""
        with self._lock:
            if self._closed:
                raise InvalidInput("the network is closed", field="network")
            index = len(self.hosts) + 1
            if index >= SUBNET.num_addresses - 1:
                raise InvalidInput("the test subnet is full", field="hosts")
            name = f"galaxy-{self.prefix}-{index}"
            address = str(SUBNET.network_address + index)
            self._add_namespace(name)
            port = f"v{index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            host = TestHost(self, index, name, address)
            self.hosts.append(host)
            return host

    def host(self, index: int) -> TestHost:
        """Host number ``index`` (1-based, as in its name and address)."""
        return self.hosts[index - 1]

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this network made (switch first), e.g. to check they are gone."""
        return list(self._made)

    def close(self) -> None:
        """End started processes, close sockets, delete every namespace. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        problems: list[str] = []
        for host in self.hosts:
            try:
                host.close()
            except Exception as exc:  # noqa: BLE001 - keep tearing down; report at the end
                problems.append(f"{host.name}: {exc}")
        for name in reversed(self._made):
            leftovers = _ip("netns", "pids", name, check=False).stdout.split()
            if leftovers:
                log.warning("processes still in %s (not started by this network, left alone): %s",
                            name, " ".join(leftovers))
            done = _ip("netns", "delete", name, check=False)
            if done.returncode != 0 and netns_exists(name):
                problems.append(f"delete {name}: {done.stderr.strip()}")
        _open_networks.discard(self)
        if problems:
            raise HostError("test network teardown incomplete: " + "; ".join(problems))

    def detach(self) -> list[str]:
        """Leave the network up after this process exits (``make demo``); returns its namespaces.

        Nothing is ended or deleted at exit any more; the caller records the names and deletes them
        later with :func:`delete_namespaces`.
        """
        with self._lock:
            self._closed = True
        _open_networks.discard(self)
        for host in self.hosts:
            host._procs.clear()
        return list(self._made)

    def _add_namespace(self, name: str) -> None:
        if netns_exists(name):
            raise HostError(f"network namespace {name} exists already (name clash or a leak)")
        _ip("netns", "add", name)
        self._made.append(name)


def delete_namespaces(names: Sequence[str]) -> list[str]:
    """Delete namespaces by name (switch last), e.g. those a detached network left; returns problems."""
    problems = []
    for name in sorted(names, key=lambda n: n.endswith("-sw")):
        if netns_exists(name):
            done = _ip("netns", "delete", name, check=False)
            if done.returncode != 0:
                problems.append(f"delete {name}: {done.stderr.strip()}")
    return problems


@atexit.register
def _close_open_networks() -> None:
    for network in list(_open_networks):
        with contextlib.suppress(Exception):
            network.close()


# -- pytest helpers ------------------------------------------------------------------------------

def netns_problem() -> str | None:
    """Why network-namespace test hosts cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "no network namespace support in /proc"
    try:
        subprocess.run(["ip", "-V"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "the ip(8) command (iproute2) is missing"
    return None


def require_netns() -> None:
    """Skip the calling pytest test when test hosts cannot be built here."""
    problem = netns_problem()
    if problem is not None:
        import pytest

        pytest.skip(f"network namespaces unavailable: {problem}")


TIME_SCALE = float(os.environ.get("GALAXY_TEST_TIME_SCALE", "1"))
"""How many times slower this machine runs than the ones the tests' deadlines were set on: the
cgroup v2 VM (QEMU without KVM, ~7x slower) sets it, so a deadline means "something is wrong", not
"this machine is slow". Deadlines only: nothing a test measures is scaled."""


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate()`` until it returns something truthy (returned) or raise after ``timeout``
    (times ``TIME_SCALE``)."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


__all__ = [
    "delete_namespaces", "enter_netns",
    "TestNetwork", "TestHost", "in_netns", "netns_exists", "netns_path", "unique_prefix", "sweep_orphans",
    "netns_problem", "require_netns", "wait_until", "SUBNET", "TIME_SCALE",
]
