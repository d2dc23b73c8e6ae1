"""The body of `container.create`: what ResMan asks an Agent to make."""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from galaxy.errors import InvalidInput
from galaxy.isolate._caps import normalise_capability

CONTAINER_STATES = ("creating", "running", "exited", "destroying")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class DiskAsk:
    medium: str
    size: int
    path: str


@dataclass(frozen=True)
class PortAsk:
    name: str
    port: int | None = None


@dataclass(frozen=True)
class MountAsk:
    host: str
    path: str
    readonly: bool = True


@dataclass(frozen=True)
class ContainerRequest:
    id: str
    group: str
    cpu: float
    memory: int
    argv: tuple[str, ...]
    cpu_excess: bool = False
    pids: int = 4096
    user: str = "nobody"              # the service's user: owns the disks and the work dir
    init_as_root: bool = False        # PID 1 runs as root (the AppWorker drops to `user` itself)
    disks: tuple[DiskAsk, ...] = ()
    ports: tuple[PortAsk, ...] = ()
    mounts: tuple[MountAsk, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()  # added to the service's empty set; the pool's policy must allow each
    owner: str = ""                    # the job's owner (set by ResMan from the group): whom the pool policy asks about

    def to_wire(self) -> dict[str, Any]:
        """Plain CBOR/JSON data: tuples become lists, so a stored record equals a received body."""
        return _plain(asdict(self))

    @classmethod
    def from_wire(cls, body: Any) -> ContainerRequest:
        if not isinstance(body, dict):
            raise InvalidInput("expected a mapping", field="body")
        known = {f for f in cls.__dataclass_fields__}
        for key in body:
            if key not in known:
                raise InvalidInput("unknown field", field=str(key))
        ident = _want(body, "id", str)
        if not _ID.match(ident):
            raise InvalidInput("expected lowercase letters, digits, '.', '_' or '-', at most 63", field="id")
        cpu = _want(body, "cpu", (int, float))
        if not 0 < cpu <= 1024:
            raise InvalidInput("expected cores in (0, 1024]", field="cpu")
        memory = _want(body, "memory", int)
        if memory < 4 << 20:
            raise InvalidInput("expected at least 4 MiB", field="memory")
        argv = _want(body, "argv", list)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise InvalidInput("expected a non-empty list of non-empty strings", field="argv")
        pids = body.get("pids", 4096)
        if not isinstance(pids, int) or isinstance(pids, bool) or pids < 8:
            raise InvalidInput("expected an integer >= 8", field="pids")
        user = body.get("user", "nobody")
        if not isinstance(user, str) or not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", user):
            raise InvalidInput("expected a POSIX user name", field="user")
        env = body.get("env", {})
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and isinstance(v, str)
                for k, v in env.items()):
            raise InvalidInput("expected a mapping of NAME: string", field="env")
        return cls(
            id=ident, group=_want(body, "group", str), cpu=float(cpu), memory=memory, argv=tuple(argv),
            cpu_excess=bool(body.get("cpu_excess", False)), pids=pids, user=user,
            init_as_root=bool(body.get("init_as_root", False)),
            disks=tuple(_disks(body.get("disks", []))), ports=tuple(_ports(body.get("ports", []))),
            mounts=tuple(_mounts(body.get("mounts", []))), env=dict(env),
            capabilities=tuple(_capabilities(body.get("capabilities", []))),
            owner=_owner(body.get("owner", "")),
        )


def _owner(value: Any) -> str:
    if not isinstance(value, str) or (value and not _NAME.match(value)):
        raise InvalidInput("expected the name of the job's owner", field="owner")
    return value


def _capabilities(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidInput("expected a list of capability names", field="capabilities")
    names = [normalise_capability(v, f"capabilities[{i}]") for i, v in enumerate(value)]
    return sorted(set(names))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _want(body: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in body:
        raise InvalidInput("is required", field=name)
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidInput(f"wrong type {type(value).__name__}", field=name)
    return value


def _container_path(value: str, name: str) -> str:
    norm = posixpath.normpath(value)
    if not value.startswith("/") or norm in ("/", "//") or ".." in value.split("/"):
        raise InvalidInput("expected an absolute path inside the container, not /", field=name)
    if norm.split("/")[1] in ("proc", "sys", "dev", "galaxy"):
        raise InvalidInput("may not be under /proc, /sys, /dev or /galaxy", field=name)
    return norm


def _items(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput("expected a list of mappings", field=name)
    return value


def _disks(value: Any) -> list[DiskAsk]:
    out = []
    for i, d in enumerate(_items(value, "disks")):
        where = f"disks[{i}]."
        medium = _want(d, "medium", str, where)
        if not _NAME.match(medium):
            raise InvalidInput("expected a medium name", field=where + "medium")
        size = _want(d, "size", int, where)
        if size < 1 << 20:
            raise InvalidInput("expected at least 1 MiB", field=where + "size")
        out.append(DiskAsk(medium, size, _container_path(_want(d, "path", str, where), where + "path")))
    return out


def _ports(value: Any) -> list[PortAsk]:
    out, names = [], set()
    for i, p in enumerate(_items(value, "ports")):
        where = f"ports[{i}]."
        name = _want(p, "name", str, where)
        if not _NAME.match(name) or name in names:
            raise InvalidInput("expected a unique lowercase port name", field=where + "name")
        names.add(name)
        port = p.get("port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
            raise InvalidInput("expected a port number 1..65535", field=where + "port")
        out.append(PortAsk(name, port))
    return out


def _mounts(value: Any) -> list[MountAsk]:
    out = []
    for i, m in enumerate(_items(value, "mounts")):
        where = f"mounts[{i}]."
        host = _want(m, "host", str, where)
        if not host.startswith("/"):
            raise InvalidInput("expected an absolute host path", field=where + "host")
        path = _container_path(_want(m, "path", str, where), where + "path")
        out.append(MountAsk(posixpath.normpath(host), path, bool(m.get("readonly", True))))
    return out
