"""Daemon configuration files (YAML), validated the way job files are: every error names its key.

One file shape serves every daemon; the `agent:` section only matters to `galaxy-agent`, the
`resman:` section (ResMan's tunables, checked by `galaxy.resman.settings`) only to `galaxy-resman`. A bad file
stops the daemon before it touches ZooKeeper or the kernel, with every problem listed at once.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from galaxy.coord import Credential, StateKey, check_ca_file
from galaxy.errors import InvalidInput

ROLES = ("resman", "appmaster", "agent")


@dataclass(frozen=True)
class HostDiskConfig:
    path: str
    medium: str
    capacity: int


@dataclass(frozen=True)
class AgentSettings:
    pool: str = "default"
    address: str = ""        # how other hosts reach this one; "" = the first non-loopback IPv4
    labels: tuple[str, ...] = ()
    disks: tuple[HostDiskConfig, ...] = ()
    port_range: tuple[int, int] = (20000, 29999)
    reserved_cpu: float = 0.5
    reserved_memory: int = 512 << 20
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_base: str | None = None   # where container cgroups live; None = under the Agent's own
    firewall: bool = True
    user_namespaces: bool = True     # each container in its own user namespace where the kernel allows
    userns_root: int = 1879048192    # the host uid and gid root in a container maps to (an unused id)
    work_disk: int = 1 << 30         # each container's /galaxy/work: an ext4 image of this size; 0 = a plain dir
    favor_dynmods: bool = True       # remount cgroup2 with favordynmods: cgroup moves skip an RCU wait


@dataclass(frozen=True)
class DaemonConfig:
    role: str
    cluster: str
    zookeeper: str
    id: str
    listen: str
    advertise: str
    key: str
    trusted_keys: str
    state_dir: str
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    log_level: str = "info"
    # The daemons' ZooKeeper digest credential (a 0600 file holding `user:password`); "" = none: the
    # daemon talks to an open ZooKeeper and creates open znodes (a cluster from before ACLs).
    zookeeper_auth: str = ""
    # ResMan's and the AppMaster's key for secrets at rest (galaxy/coord/_sealed.py: a 0600 file);
    # "" = none: worker keys and pod seeds are written to ZooKeeper in plain text (as before sealing).
    state_key: str = ""
    # The cluster's ZooKeeper CA certificate (galaxy/coord/_tls.py): "" = plain TCP to ZooKeeper;
    # set, `zookeeper` names the servers' TLS (secure client) ports and their certificates are checked.
    zookeeper_ca: str = ""
    agent: AgentSettings = field(default_factory=AgentSettings)
    resman: dict[str, Any] = field(default_factory=dict)     # as written; ResManSettings.load checks it

    def zk_credential(self) -> Credential | None:
        """The credential named by ``zookeeper_auth``, read now (InvalidInput naming the key if the
        file went missing or was opened up since the config was checked)."""
        return Credential.load(self.zookeeper_auth, "zookeeper_auth") if self.zookeeper_auth else None

    def sealing_key(self) -> StateKey | None:
        """The key named by ``state_key``, read now (InvalidInput naming the key if it went bad)."""
        return StateKey.load(self.state_key, "state_key") if self.state_key else None


class ConfigError(InvalidInput):
    """A daemon config file is wrong; ``problems`` lists every (key, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"{k}: {m}" for k, m in problems)
        super().__init__(f"{source}: {lines}", field=problems[0][0] if problems else None)


class _Reader:
    """Pulls typed values out of a mapping and records every problem with its dotted path."""

    def __init__(self, data: dict[str, Any], prefix: str, problems: list[tuple[str, str]]) -> None:
        self.data, self.prefix, self.problems = data, prefix, problems

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.problems.append((self.path(key), "is required"))
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            self.problems.append((self.path(key), f"expected a number, got {value!r}"))
            return default
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.problems.append((self.path(key), f"expected {want}, got {type(value).__name__}"))
            return default
        return value

    def unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.problems.append((self.path(str(key)), "unknown key"))


def _size(reader: _Reader, key: str, default: int) -> int:
    from galaxy.spec import parse_bytes

    raw = reader.get(key, (int, str), None)
    if raw is None:
        return default
    try:
        return parse_bytes(raw)
    except InvalidInput as err:
        reader.problems.append((reader.path(key), err.message))
        return default


def _seconds(reader: _Reader, key: str, default: float) -> float:
    from galaxy.spec import parse_duration

    raw = reader.get(key, (int, float, str), None)
    if raw is None:
        return default
    try:
        return float(raw) if isinstance(raw, int | float) else parse_duration(raw)
    except InvalidInput as err:
        reader.problems.append((reader.path(key), err.message))
        return default


def _agent(data: Any, problems: list[tuple[str, str]]) -> AgentSettings:
    if data is None:
        return AgentSettings()
    if not isinstance(data, dict):
        problems.append(("agent", "expected a mapping"))
        return AgentSettings()
    r = _Reader(data, "agent.", problems)
    r.unknown({"pool", "address", "labels", "disks", "port_range", "reserved_cpu", "reserved_memory", "cgroup_root",
               "cgroup_base", "firewall", "user_namespaces", "userns_root",
               "work_disk", "favor_dynmods"})
    labels = r.get("labels", list, [])
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            problems.append((f"agent.labels[{i}]", "expected a non-empty string"))
    disks: list[HostDiskConfig] = []
    for i, disk in enumerate(r.get("disks", list, [])):
        if not isinstance(disk, dict):
            problems.append((f"agent.disks[{i}]", "expected a mapping with path, medium, capacity"))
            continue
        dr = _Reader(disk, f"agent.disks[{i}].", problems)
        dr.unknown({"path", "medium", "capacity"})
        path = dr.get("path", str, "", required=True)
        if path and not os.path.isabs(path):
            problems.append((dr.path("path"), "must be an absolute path"))
        medium = dr.get("medium", str, "", required=True)
        capacity = _size(dr, "capacity", 0)
        if "capacity" not in disk:
            problems.append((dr.path("capacity"), "is required"))
        disks.append(HostDiskConfig(path, medium, capacity))
    port_range = r.get("port_range", (list, str), [20000, 29999])
    if isinstance(port_range, str):
        port_range = port_range.replace("..", "-").split("-")
    lo_hi: tuple[int, int] = (20000, 29999)
    try:
        lo, hi = (int(p) for p in port_range)
        if not 1024 <= lo <= hi <= 65535:
            raise ValueError
        lo_hi = (lo, hi)
    except (TypeError, ValueError):
        problems.append(("agent.port_range", "expected LO-HI with 1024 <= LO <= HI <= 65535"))
    reserved_cpu = float(r.get("reserved_cpu", (int, float), 0.5))
    if reserved_cpu < 0:
        problems.append(("agent.reserved_cpu", "must be >= 0"))
    userns_root = r.get("userns_root", int, 1879048192)
    if not 65536 <= userns_root < 2**32 - 1:
        problems.append(("agent.userns_root", "expected an unused host uid above 65535"))
    return AgentSettings(
        pool=r.get("pool", str, "default"),
        address=r.get("address", str, ""),
        labels=tuple(x for x in labels if isinstance(x, str)),
        disks=tuple(disks),
        port_range=lo_hi,
        reserved_cpu=reserved_cpu,
        reserved_memory=_size(r, "reserved_memory", 512 << 20),
        cgroup_root=r.get("cgroup_root", str, "/sys/fs/cgroup"),
        cgroup_base=r.get("cgroup_base", str, None),
        firewall=bool(r.get("firewall", bool, True)),
        user_namespaces=bool(r.get("user_namespaces", bool, True)),
        userns_root=userns_root,
        work_disk=_size(r, "work_disk", 1 << 30),
        favor_dynmods=bool(r.get("favor_dynmods", bool, True)),
    )


def parse_config(data: Any, role: str, *, source: str = "<config>") -> DaemonConfig:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; expected one of {', '.join(ROLES)}", field="role")
    if not isinstance(data, dict):
        raise ConfigError(source, [("<top>", "expected a mapping of settings")])
    problems: list[tuple[str, str]] = []
    r = _Reader(data, "", problems)
    r.unknown({"cluster", "zookeeper", "id", "listen", "advertise", "key", "trusted_keys", "state_dir",
               "session_timeout", "heartbeat_interval", "log_level", "zookeeper_auth", "state_key", "agent",
               "resman", "zookeeper_ca"})
    ident = r.get("id", str, socket.gethostname())
    listen = r.get("listen", str, "tcp://127.0.0.1:0" if role != "agent" else "")
    advertise = r.get("advertise", str, "") or listen
    resman = r.get("resman", dict, {})
    level = r.get("log_level", str, "info")
    zookeeper_auth = r.get("zookeeper_auth", str, "")
    if zookeeper_auth:
        try:
            Credential.load(zookeeper_auth, "zookeeper_auth")
        except InvalidInput as err:
            problems.append(("zookeeper_auth", err.message))
    zookeeper_ca = r.get("zookeeper_ca", str, "")
    if zookeeper_ca:
        try:
            check_ca_file(zookeeper_ca, "zookeeper_ca")
        except InvalidInput as err:
            problems.append(("zookeeper_ca", err.message))
    state_key = r.get("state_key", str, "")
    if state_key and role == "agent":
        problems.append(("state_key", "is for ResMan and the AppMaster only: an Agent must not hold it"))
    elif state_key:
        try:
            StateKey.load(state_key, "state_key")
        except InvalidInput as err:
            problems.append(("state_key", err.message))
    if level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(("log_level", "expected debug, info, warning or error"))
    config = DaemonConfig(
        role=role,
        cluster=r.get("cluster", str, "", required=True),
        zookeeper=r.get("zookeeper", str, "", required=True),
        id=ident,
        listen=listen,
        advertise=advertise,
        key=r.get("key", str, "", required=True),
        trusted_keys=r.get("trusted_keys", str, "", required=True),
        state_dir=r.get("state_dir", str, f"/var/lib/galaxy/{role}-{ident}"),
        session_timeout=_seconds(r, "session_timeout", 10.0),
        heartbeat_interval=_seconds(r, "heartbeat_interval", 1.0),
        log_level=level.lower(),
        zookeeper_auth=zookeeper_auth,
        state_key=state_key,
        zookeeper_ca=zookeeper_ca,
        agent=_agent(data.get("agent"), problems),
        resman=dict(resman or {}),
    )
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | os.PathLike[str], role: str) -> DaemonConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise InvalidInput(f"cannot read config file {p}: {err.strerror}", field="config") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(p), [("<yaml>", str(err).replace("\n", " "))]) from None
    return parse_config(data, role, source=str(p))
