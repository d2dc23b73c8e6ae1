"""A three- (or five-, seven-) server ZooKeeper ensemble on test hosts, and a LocalCluster on it.

Each server is one JVM from the Debian package's jars (as :mod:`galaxy.testing.zk` launches one),
running inside its own test host (a network namespace of a :class:`~galaxy.testing.netns.TestNetwork`)
on that host's own address. Each server's ``zoo.cfg`` is the playbook's: the zookeeper role's
``templates/zoo.cfg.j2`` rendered with jinja2, the role's ``defaults/main.yml`` and an inventory
made of the test hosts (``groups['zookeeper']``, each host's ``galaxy_node_address``), so the
``server.N=address:2888:3888`` lines and the ``myid`` file are exactly what the role writes.

Faults on purpose, each on one member by its index (1-based, its ``myid``): :meth:`kill` (SIGKILL
by the PID this process started), :meth:`start_member` (the same data dir again), :meth:`isolate`
/ :meth:`heal` (iptables DROP on ``eth0`` inside the member's namespace: no packet in or out, no
RST — a cut cable, not a dead process). Who leads is asked with ``srvr`` from inside each host.

Every JVM is started through ``TestHost.popen`` (so closing the network ends it too) under
``setpriv --pdeathsig KILL`` (a SIGKILLed test run takes its JVMs along), and :meth:`stop` ends
each by its PID (TERM, KILL after a grace) and removes the rules it added.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

from galaxy.errors import GalaxyError, HostError, Timeout
from galaxy.testing.cluster import LocalCluster
from galaxy.testing.netns import TestHost, in_netns
from galaxy.testing.zk import _JVM_FLAGS, _MAIN_CLASS, find_classpath, four_letter_word

ROLE_DIR = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "zookeeper"
CLIENT_PORT = 2181
_ISOLATE_RULES = (("INPUT", "-i"), ("OUTPUT", "-o"))


def role_variables(names: Sequence[str], addresses: Mapping[str, str], host: str, *,
                   overrides: Mapping[str, Any] | None = None, role_dir: Path = ROLE_DIR) -> dict[str, Any]:
    """The variables the zookeeper role sees on inventory host ``host`` of a ``zookeeper`` group of
    ``names`` (each at ``addresses[name]``): its defaults, the inventory, then ``overrides``.

    Defaults that are themselves templates (``zookeeper_id``, the directories) are rendered with
    the others, as Ansible does lazily.
    """
    defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text()) or {}
    context: dict[str, Any] = {
        "groups": {"zookeeper": list(names)},
        "hostvars": {name: {"galaxy_node_address": addresses[name]} for name in names},
        "inventory_hostname": host,
        "galaxy_address": addresses[host],
        "galaxy_node_address": addresses[host],
        "galaxy_zookeeper_port": CLIENT_PORT,
        # The ensemble tests are about quorum; TLS is proven on the standalone path (tests/coord/test_tls.py,
        # every LocalCluster, the playbook test), so these members serve the role's plain variant.
        "galaxy_zookeeper_tls": False,
        "galaxy_etc_dir": "/etc/galaxy",
        "galaxy_state_dir": "/var/lib/galaxy",
        "ansible_managed": "rendered from the zookeeper role by galaxy.testing.zk_ensemble",
    }
    context.update(defaults)
    context.update(overrides or {})
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(3):       # a default may name another default
        for key, value in list(context.items()):
            if isinstance(value, str) and "{{" in value and key not in (overrides or {}):
                context[key] = env.from_string(value).render(context)
    return context


def render_role_template(name: str, variables: Mapping[str, Any], role_dir: Path = ROLE_DIR) -> str:
    """``templates/<name>`` of the role, rendered as Ansible's template module does (trim_blocks)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    return env.from_string((role_dir / "templates" / name).read_text()).render(dict(variables))


class Member:
    """One server of the ensemble: its test host, its id, its directory, its JVM."""

    def __init__(self, index: int, host: TestHost, base: Path) -> None:
        self.index = index            # its myid, 1-based
        self.host = host
        self.base = base
        self.proc: subprocess.Popen[bytes] | None = None
        self.isolated = False

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        return f"Member({self.index}, {self.address}, pid={self.pid})"


class ZooKeeperEnsemble:
    """ZooKeeper servers, one per test host in ``hosts``, configured by the playbook's zookeeper role.

    ``tick_ms`` overrides the role's ``zookeeper_tick_ms`` (tests use 500 ms, as the standalone
    harness does, so a lost leader is noticed in ``syncLimit`` × tick = 2.5 s); ``variables`` adds
    any other role variable.
    """

    def __init__(self, hosts: Sequence[TestHost], base: str | os.PathLike[str], *, tick_ms: int = 500,
                 variables: Mapping[str, Any] | None = None) -> None:
        if len(hosts) not in (3, 5, 7):
            raise GalaxyError("an ensemble needs 3, 5 or 7 hosts", field="hosts")
        self.base = Path(base)
        self.members = [Member(i, host, self.base / f"zk-{i}") for i, host in enumerate(hosts, start=1)]
        self.variables = {"zookeeper_tick_ms": tick_ms, **(variables or {})}
        self.tick_ms = int(self.variables["zookeeper_tick_ms"])
        self._lock = threading.Lock()

    # ---- configuration ---------------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        """The connect string Galaxy is given: ``a:2181,b:2181,c:2181``."""
        return ",".join(f"{m.address}:{CLIENT_PORT}" for m in self.members)

    def member(self, index: int) -> Member:
        return self.members[index - 1]

    def _inventory_name(self, member: Member) -> str:
        return f"zk{member.index}"

    def configure(self) -> None:
        """Write each member's ``zoo.cfg`` and ``myid`` as the role would."""
        names = [self._inventory_name(m) for m in self.members]
        addresses = {self._inventory_name(m): m.address for m in self.members}
        for member in self.members:
            name = self._inventory_name(member)
            variables = role_variables(names, addresses, name, overrides={
                **self.variables, "zookeeper_data_dir": str(member.base / "data"),
                "zookeeper_conf_dir": str(member.base)})
            (member.base / "data").mkdir(parents=True, exist_ok=True)
            (member.base / "zoo.cfg").write_text(render_role_template("zoo.cfg.j2", variables))
            # The role's "Write this server's id" task: content "{{ zookeeper_id }}\n".
            (member.base / "data" / "myid").write_text(f"{variables['zookeeper_id']}\n")

    def config_text(self, index: int) -> str:
        return (self.member(index).base / "zoo.cfg").read_text()

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> ZooKeeperEnsemble:
        """Configure and launch every member; return once each serves (a quorum formed)."""
        self.configure()
        try:
            for member in self.members:
                self._launch(member)
            self.wait_serving(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_member(self, index: int, *, wait: bool = True, timeout: float = 60.0) -> Member:
        """(Re)launch one member on its existing data dir; with ``wait``, return once it serves."""
        member = self.member(index)
        if not member.running:
            self._launch(member)
        if wait:
            self.wait_serving([index], timeout=timeout)
        return member

    def kill(self, index: int, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Signal one member's JVM by its PID and reap it (SIGKILL: a crashed server)."""
        member = self.member(index)
        proc = member.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop(self, grace: float = 5.0) -> list[str]:
        """End every JVM by its PID (TERM, KILL after ``grace``), remove the rules added; problems."""
        problems: list[str] = []
        with self._lock:
            for member in self.members:
                if member.isolated:
                    try:
                        self.heal(member.index)
                    except GalaxyError as err:
                        problems.append(str(err))
            live = [m.proc for m in self.members if m.proc is not None and m.proc.poll() is None]
            for proc in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in live:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            for member in self.members:
                if member.proc is not None and member.proc.poll() is None:
                    problems.append(f"zookeeper {member.index} (pid {member.proc.pid}) did not end")
        return problems

    def __enter__(self) -> ZooKeeperEnsemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- observing -------------------------------------------------------------------------------
    def four_letter_word(self, index: int, word: str, timeout: float = 1.0) -> str:
        """Ask one member from inside its own host (the test network is not routed from the host)."""
        member = self.member(index)
        with in_netns(member.host.name):
            return four_letter_word(member.address, CLIENT_PORT, word, timeout=timeout)

    def mode(self, index: int) -> str | None:
        """``leader``, ``follower`` (``standalone``) while the member serves, else None."""
        if not self.member(index).running:
            return None
        try:
            text = self.four_letter_word(index, "srvr")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def modes(self) -> dict[int, str | None]:
        return {m.index: self.mode(m.index) for m in self.members}

    def leader(self, timeout: float = 30.0, *, other_than: int | None = None) -> int:
        """The index of the member that leads (waits for one, and for one other than ``other_than``)."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = [i for i, mode in self.modes().items() if mode == "leader" and i != other_than]
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() >= deadline:
                raise Timeout(f"no single ZooKeeper leader within {timeout:g} s: {self.modes()}")
            time.sleep(0.05)

    def wait_serving(self, indexes: Sequence[int] | None = None, timeout: float = 60.0) -> None:
        """Wait until each of ``indexes`` (default: all) serves, i.e. is leader or follower of a quorum."""
        wanted = list(indexes) if indexes is not None else [m.index for m in self.members]
        deadline = time.monotonic() + timeout
        while True:
            for index in wanted:
                member = self.member(index)
                if member.proc is not None and member.proc.poll() is not None:
                    raise HostError(f"zookeeper {index} exited ({member.proc.returncode}); log tail:\n"
                                    f"{self.log_text(index)[-2000:]}")
            modes = {i: self.mode(i) for i in wanted}
            if all(mode in ("leader", "follower") for mode in modes.values()):
                return
            if time.monotonic() >= deadline:
                raise Timeout(f"ZooKeeper servers {wanted} did not all serve within {timeout:g} s: {modes}")
            time.sleep(0.05)

    def log_text(self, index: int) -> str:
        try:
            return (self.member(index).base / "zookeeper.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- network faults --------------------------------------------------------------------------
    def isolate(self, index: int) -> None:
        """Cut one member off the network: DROP everything in and out of its ``eth0`` (its namespace's
        own iptables; the process keeps running and sees only silence, as peers do of it)."""
        member = self.member(index)
        for chain, flag in _ISOLATE_RULES:
            member.host.run(["iptables", "-w", "-I", chain, "1", flag, member.host.interface, "-j", "DROP"])
        member.isolated = True

    def heal(self, index: int) -> None:
        """Remove the rules :meth:`isolate` added."""
        member = self.member(index)
        problems = []
        for chain, flag in _ISOLATE_RULES:
            done = member.host.run(["iptables", "-w", "-D", chain, flag, member.host.interface, "-j", "DROP"],
                                   check=False)
            if done.returncode != 0 and "does a matching rule exist" not in done.stderr.lower() \
                    and "bad rule" not in done.stderr.lower():
                problems.append(done.stderr.strip())
        member.isolated = False
        if problems:
            raise HostError(f"could not heal zookeeper {index}: {'; '.join(problems)}")

    # ---- internals -------------------------------------------------------------------------------
    def _launch(self, member: Member) -> None:
        java = shutil.which("java")
        if java is None:
            raise HostError("no `java` on PATH; install the `zookeeper` package (it pulls a JRE)")
        command = [java, *_JVM_FLAGS, f"-Dzookeeper.log.dir={member.base}",
                   "-Dorg.slf4j.simpleLogger.showDateTime=true",
                   "-cp", find_classpath(), _MAIN_CLASS, str(member.base / "zoo.cfg")]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        with open(member.base / "zookeeper.log", "ab") as log_file:
            member.proc = member.host.popen(command, private_mounts=False, stdin=subprocess.DEVNULL,
                                            stdout=log_file, stderr=subprocess.STDOUT, cwd=member.base)


class EnsembleCluster(LocalCluster):
    """A :class:`LocalCluster` whose daemons use a ZooKeeper ensemble on test hosts of their own.

    Hosts: 1 the control plane, 2… the Agents, then one per ZooKeeper server. ``cluster.ensemble``
    is the :class:`ZooKeeperEnsemble`; ``zk_hosts`` (every daemon's, the admin's and ``zk()``'s
    connect string) names all its servers. Its servers are plain (see ``role_variables``).
    """

    zookeeper_tls = False

    def __init__(self, base: str | os.PathLike[str], *, zookeepers: int = 3, zk_tick_ms: int = 500,
                 **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.zookeepers = zookeepers
        self.zk_tick_ms = zk_tick_ms
        self.ensemble: ZooKeeperEnsemble | None = None

    def _start_zookeeper(self, timeout: float) -> None:
        assert self.network is not None
        hosts = [self.network.add_host() for _ in range(self.zookeepers)]
        self.state.namespaces = self.network.namespaces
        self.ensemble = ZooKeeperEnsemble(hosts, self.base / "zk", tick_ms=self.zk_tick_ms)
        self.ensemble.start(timeout=timeout)
        self.state.zookeeper = self.ensemble.hosts

    def stop(self) -> list[str]:
        """Daemons first (while ZooKeeper serves, so their sessions close at once), then the
        ensemble (LocalCluster ends it with the network; ending it here too makes it explicit)."""
        problems = super().stop()
        if self.ensemble is not None:
            problems += self.ensemble.stop()
        return problems

    def leftovers(self, cgroups: Any = ()) -> list[str]:
        left = super().leftovers(cgroups)
        if self.ensemble is not None:
            left += [f"zookeeper {m.index} (pid {m.proc.pid})" for m in self.ensemble.members
                     if m.proc is not None and m.proc.poll() is None]
        return left


__all__ = ["EnsembleCluster", "Member", "ZooKeeperEnsemble", "render_role_template", "role_variables"]
