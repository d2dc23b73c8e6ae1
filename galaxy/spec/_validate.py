"""`parse_job`: plain data (from YAML, JSON, ZooKeeper or the mesh) → a validated, normalised `JobSpec`.

Every field is checked and every problem is collected before one `SpecError` is raised, so a user
sees all their mistakes at once. The limits below are sanity bounds that catch typos (``memory: 256``
bytes, ``replicas: 1000000``), not cluster policy: quotas and host sizes are checked by ResMan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from galaxy.errors import InvalidInput
from galaxy.spec._errors import SpecError, join
from galaxy.spec._model import (
    JOB_TYPES,
    SECRET_KEY,
    DataPackage,
    DiskRequest,
    HealthCheck,
    JobSpec,
    JobType,
    MountSpec,
    PortRequest,
    Program,
    Resources,
    RestartPolicy,
    UpdatePolicy,
)
from galaxy.spec._reader import (
    Reader,
    boolean,
    byte_size,
    choice,
    command,
    did_you_mean,
    duration,
    integer,
    is_utf8,
    named,
    optional_command,
    optional_url,
    string,
    url,
)
from galaxy.spec._rules import (
    DNS_LABEL,
    DNS_LABEL_RULE,
    LABEL,
    LABEL_RULE,
    MEDIUM,
    MEDIUM_RULE,
    USER_NAME,
    USER_NAME_RULE,
    VERSION,
    VERSION_RULE,
    container_path,
    env_name_problem,
    host_path,
    nests,
)
from galaxy.spec._units import describe, parse_cpu, parse_duration_range, shown

MAX_REPLICAS = 100_000
MIN_MEMORY = 4 * 2**20
MAX_MEMORY = 16 * 2**40
MIN_DISK = 2**20
MAX_DISK = 64 * 2**40
MAX_DISKS = 16
MAX_PORTS = 64
MAX_MOUNTS = 32
MAX_LABELS = 32
MAX_ENV = 256
MAX_ENV_VALUE = 32 * 1024
MAX_RETRIES = 1_000_000
DAY = 86400.0
HOUR = 3600.0

TOP_KEYS = ("name", "type", "pool", "replicas", "max_per_host", "resources", "program", "user", "env",
            "capabilities", "update", "restart")
RESOURCE_KEYS = ("cpu", "cpu_excess", "memory", "disks", "ports", "labels", "mounts")
PROGRAM_KEYS = ("version", "package", "sha256", "deploy", "start", "stop", "health", "data")
MAX_CAPABILITIES = 64
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
DEFAULTS = JobSpec(name="defaults", resources=Resources(cpu=1.0, memory=MIN_MEMORY),
                   program=Program(version="1", start="true"))


def parse_job(data: Mapping[str, Any]) -> JobSpec:
    """Validate a job given as plain data; raises `SpecError` listing every problem found."""
    r = Reader()
    top = r.mapping(data, "", TOP_KEYS, required=("name", "resources", "program"),
                    what="a mapping of job fields at the top level", null_is_empty=False)
    if top is None:
        r.errors.raise_if_any()
        raise AssertionError("unreachable")  # pragma: no cover
    name = r.field(top, "name", "", named, "", DNS_LABEL, DNS_LABEL_RULE)
    default_type: str = DEFAULTS.type
    job_type = r.field(top, "type", "", choice, default_type, JOB_TYPES)
    pool = r.field(top, "pool", "", named, DEFAULTS.pool, DNS_LABEL, DNS_LABEL_RULE)
    replicas = r.field(top, "replicas", "", integer, DEFAULTS.replicas, 0, MAX_REPLICAS)
    max_per_host = r.field(top, "max_per_host", "", _max_per_host, None)
    user = r.field(top, "user", "", named, DEFAULTS.user, USER_NAME, USER_NAME_RULE)
    secrets: set[str] = set()
    env = _env(r, top.get("env"), "env", secrets)
    capabilities = _capabilities(r, top.get("capabilities"), "capabilities")
    port_names: list[str] | None = None  # the ports health.tcp may name; None when they are unknown
    resources = None
    if "resources" in top:
        resources, port_names = _resources(r, top["resources"], "resources")
    program = _program(r, top["program"], "program", port_names) if "program" in top else None
    update = _update(r, top.get("update"), "update")
    restart = _restart(r, top.get("restart"), "restart")
    r.errors.raise_if_any()
    assert resources is not None and program is not None
    return JobSpec(name=name, type=cast(JobType, job_type), pool=pool, replicas=replicas,
                   max_per_host=max_per_host, resources=resources, program=program, user=user, env=env,
                   secrets=frozenset(secrets), capabilities=capabilities, update=update, restart=restart)


def _max_per_host(value: Any, path: str) -> int | None:
    return None if value is None else integer(value, path, 1, MAX_REPLICAS)


def _env(r: Reader, value: Any, path: str, secrets: set[str]) -> dict[str, str]:
    """name → value; the names whose values the job marks secret are added to ``secrets``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        r.error(path, f"expected a mapping of variable names to strings, got {describe(value)}")
        return {}
    if len(value) > MAX_ENV:
        r.error(path, f"at most {MAX_ENV} variables, got {len(value)}")
        return {}
    env: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            r.error(join(path, shown(key, 30)), f"variable names must be strings, got {describe(key)}")
            continue
        where = join(path, key)
        problem = env_name_problem(key)
        if problem:
            r.error(where, problem)
        if isinstance(item, Mapping):  # {secret: value}: sealed at rest, never shown
            if set(item) != {SECRET_KEY}:
                r.error(where, f"expected a string or {{{SECRET_KEY}: string}}, got keys "
                               f"{', '.join(sorted(map(str, item))) or 'none'}")
                continue
            where, item = join(where, SECRET_KEY), item[SECRET_KEY]
            secrets.add(key)
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            r.error(where, f"expected a string (quote numbers and booleans), got {describe(item)}")
        elif "\x00" in item or len(item) > MAX_ENV_VALUE or not is_utf8(item):
            r.error(where, f"must be valid text of at most {MAX_ENV_VALUE} characters, without NUL")
        else:
            env[key] = item
    return env


def _capabilities(r: Reader, value: Any, path: str) -> tuple[str, ...]:
    """Linux capability names (``NET_BIND_SERVICE``; ``cap_net_bind_service`` is the same), sorted, once each.

    The names are the kernel's, from the one table the Agent's shim uses (galaxy.isolate); it is
    imported only when a job asks for a capability, so reading an ordinary job file stays cheap."""
    names: set[str] = set()
    for where, item in r.items(value, path, MAX_CAPABILITIES, "capability names"):
        from galaxy.isolate import normalise_capability

        try:
            names.add(normalise_capability(item, where))
        except InvalidInput as err:
            r.error(where, err.message)
    return tuple(sorted(names))


def _sha256(value: Any, path: str) -> str | None:
    if value is None:
        return None
    text = string(value, path, "a SHA-256 digest: 64 hexadecimal digits")
    if not SHA256.fullmatch(text):
        raise SpecError.at(path, f"expected a SHA-256 digest of 64 hexadecimal digits, got {shown(text)}")
    return text.lower()


def _resources(r: Reader, value: Any, path: str) -> tuple[Resources | None, list[str] | None]:
    """The resources, and the job's port names when its ports section is valid (for health.tcp)."""
    sec = r.mapping(value, path, RESOURCE_KEYS, required=("cpu", "memory"),
                    what="a mapping with at least cpu and memory", null_is_empty=False)
    if sec is None:
        return None, None
    mark = r.mark()
    cpu = r.field(sec, "cpu", path, lambda v, p: parse_cpu(v, field=p), 1.0)
    cpu_excess = r.field(sec, "cpu_excess", path, boolean, False)
    memory = r.field(sec, "memory", path, byte_size, MIN_MEMORY, MIN_MEMORY, MAX_MEMORY)
    points: list[tuple[str, str]] = []  # (field path, container path) of disks and mounts, for overlaps
    disks = _disks(r, sec.get("disks"), join(path, "disks"), points)
    ports_mark = r.mark()
    ports = _ports(r, sec.get("ports"), join(path, "ports"))
    port_names = [p.name for p in ports] if r.clean_since(ports_mark) else None
    labels = _labels(r, sec.get("labels"), join(path, "labels"))
    mounts = _mounts(r, sec.get("mounts"), join(path, "mounts"), points)
    for i, (where, point) in enumerate(points):
        for other_where, other in points[:i]:
            if nests(point, other):
                r.error(where, f"{point!r} overlaps {other!r} ({other_where}): disk and mount paths must "
                               f"be distinct and not inside one another")
                break
    if not r.clean_since(mark):
        return None, port_names
    return Resources(cpu=cpu, cpu_excess=cpu_excess, memory=memory, disks=disks, ports=ports,
                     labels=labels, mounts=mounts), port_names


def _container_path(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError.at(path, f"expected an absolute path inside the container, got {describe(value)}")
    problem, normal = container_path(value)
    if problem:
        raise SpecError.at(path, problem)
    return normal


def _host_path(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError.at(path, f"expected an absolute path on the host, got {describe(value)}")
    problem, normal = host_path(value)
    if problem:
        raise SpecError.at(path, problem)
    return normal


def _disks(r: Reader, value: Any, path: str, points: list[tuple[str, str]]) -> tuple[DiskRequest, ...]:
    disks = []
    for where, item in r.items(value, path, MAX_DISKS, "disks"):
        sec = r.mapping(item, where, ("medium", "size", "path"), required=("medium", "size", "path"),
                        what="a disk: {medium, size, path}", null_is_empty=False)
        if sec is None:
            continue
        mark = r.mark()
        medium = r.field(sec, "medium", where, named, "", MEDIUM, MEDIUM_RULE)
        size = r.field(sec, "size", where, byte_size, MIN_DISK, MIN_DISK, MAX_DISK)
        point = r.field(sec, "path", where, _container_path, "")
        if point:
            points.append((join(where, "path"), point))
        if r.clean_since(mark):
            disks.append(DiskRequest(medium=medium, size=size, path=point))
    return tuple(disks)


def _ports(r: Reader, value: Any, path: str) -> tuple[PortRequest, ...]:
    ports: list[PortRequest] = []
    names: dict[str, str] = {}
    numbers: dict[int, str] = {}
    for where, item in r.items(value, path, MAX_PORTS, "ports"):
        sec = r.mapping(item, where, ("name", "port"), required=("name",),
                        what="a port: {name} or {name, port}", null_is_empty=False)
        if sec is None:
            continue
        mark = r.mark()
        name = r.field(sec, "name", where, named, "", DNS_LABEL, "a port name, " + DNS_LABEL_RULE)
        number = r.field(sec, "port", where, _port_number, None)
        if name in names:
            r.error(join(where, "name"), f"duplicate port name {name!r} (also {names[name]})")
        elif name:
            names[name] = where
        if number is not None and number in numbers:
            r.error(join(where, "port"), f"port {number} is also asked for by {numbers[number]}")
        elif number is not None:
            numbers[number] = where
        if r.clean_since(mark):
            ports.append(PortRequest(name=name, port=number))
    return tuple(ports)


def _port_number(value: Any, path: str) -> int | None:
    return None if value is None else integer(value, path, 1, 65535)


def _labels(r: Reader, value: Any, path: str) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for where, item in r.items(value, path, MAX_LABELS, "labels"):
        label = r.take(named, "", item, where, LABEL, LABEL_RULE)
        if label in seen:
            r.error(where, f"duplicate label {label!r} (also {seen[label]})")
        elif label:
            seen[label] = where
    return tuple(sorted(seen))


def _mounts(r: Reader, value: Any, path: str, points: list[tuple[str, str]]) -> tuple[MountSpec, ...]:
    mounts = []
    for where, item in r.items(value, path, MAX_MOUNTS, "mounts"):
        sec = r.mapping(item, where, ("host", "path", "readonly"), required=("host", "path"),
                        what="a mount: {host, path, readonly}", null_is_empty=False)
        if sec is None:
            continue
        mark = r.mark()
        host = r.field(sec, "host", where, _host_path, "")
        point = r.field(sec, "path", where, _container_path, "")
        readonly = r.field(sec, "readonly", where, boolean, True)
        if point:
            points.append((join(where, "path"), point))
        if r.clean_since(mark):
            mounts.append(MountSpec(host=host, path=point, readonly=readonly))
    return tuple(mounts)


def _version(value: Any, path: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, float):
        raise SpecError.at(path, f"expected {VERSION_RULE}; got number {shown(value)}: quote versions "
                                 f"(version: \"1.10\") so YAML does not read them as numbers")
    return named(value, path, VERSION, VERSION_RULE)


def _program(r: Reader, value: Any, path: str, port_names: list[str] | None) -> Program | None:
    sec = r.mapping(value, path, PROGRAM_KEYS, required=("version", "start"),
                    what="a mapping with at least version and start", null_is_empty=False)
    if sec is None:
        return None
    mark = r.mark()
    version = r.field(sec, "version", path, _version, "")
    package = r.field(sec, "package", path, optional_url, None)
    sha256 = r.field(sec, "sha256", path, _sha256, None)
    if sha256 is not None and sec.get("package") is None:
        r.error(join(path, "sha256"), "a digest needs a package to check: set program.package too")
    deploy = r.field(sec, "deploy", path, optional_command, None)
    start = r.field(sec, "start", path, command, "")
    stop = r.field(sec, "stop", path, optional_command, None)
    health = _health(r, sec.get("health"), join(path, "health"), port_names)
    data = _data(r, sec.get("data"), join(path, "data"))
    if not r.clean_since(mark):
        return None
    return Program(version=version, package=package, sha256=sha256, deploy=deploy, start=start, stop=stop,
                   health=health, data=data)


def _health(r: Reader, value: Any, path: str, port_names: list[str] | None) -> HealthCheck | None:
    if value is None:
        return None
    sec = r.mapping(value, path, ("tcp", "command", "interval", "timeout"),
                    what="{tcp: <port name>} or {command: <shell command>}")
    if sec is None:
        return None
    tcp = sec.get("tcp")
    cmd = sec.get("command")
    if (tcp is None) == (cmd is None):
        r.error(path, "give exactly one of tcp (a port name of the job) or command (a shell command)")
    if tcp is not None:
        tcp = r.take(named, None, tcp, join(path, "tcp"), DNS_LABEL, "a port name of this job")
        if tcp is not None and port_names is not None and tcp not in port_names:
            hint = did_you_mean(tcp, port_names) if port_names else " (the job asks for no ports)"
            r.error(join(path, "tcp"), f"no port named {tcp!r} in resources.ports{hint}")
    if cmd is not None:
        cmd = r.take(command, None, cmd, join(path, "command"))
    interval = r.field(sec, "interval", path, duration, 5.0, 0.001, HOUR)
    timeout = r.field(sec, "timeout", path, duration, 2.0, 0.001, HOUR)
    return HealthCheck(tcp=tcp, command=cmd, interval=interval, timeout=timeout)


def _data(r: Reader, value: Any, path: str) -> DataPackage | None:
    if value is None:
        return None
    sec = r.mapping(value, path, ("package", "reload", "sha256"), required=("package",),
                    what="{package: <url>, reload: <shell command>, sha256: <digest>}")
    if sec is None:
        return None
    package = r.field(sec, "package", path, url, "")
    reload = r.field(sec, "reload", path, optional_command, None)
    sha256 = r.field(sec, "sha256", path, _sha256, None)
    return DataPackage(package=package, reload=reload, sha256=sha256)


def _update(r: Reader, value: Any, path: str) -> UpdatePolicy:
    default = DEFAULTS.update
    sec = r.mapping(value, path, ("step", "pause_between", "max_failures"),
                    what="{step, pause_between, max_failures}")
    if sec is None:
        return default
    step, percent = r.field(sec, "step", path, _step, (default.step, default.step_is_percent))
    pause = r.field(sec, "pause_between", path, duration, default.pause_between, 0.0, DAY)
    failures = r.field(sec, "max_failures", path, integer, default.max_failures, 0, MAX_REPLICAS)
    return UpdatePolicy(step=step, step_is_percent=percent, pause_between=pause, max_failures=failures)


def _step(value: Any, path: str) -> tuple[int, bool]:
    expected = "a number of pods (>= 1) or a percentage of replicas such as \"25%\""
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%") or not text[:-1].isdigit():
            raise SpecError.at(path, f"expected {expected}, got {describe(value)}")
        percent = int(text[:-1])
        if not 1 <= percent <= 100:
            raise SpecError.at(path, f"a percentage must be from 1% to 100%, got {shown(value)}")
        return percent, True
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError.at(path, f"expected {expected}, got {describe(value)}")
    return integer(value, path, 1, MAX_REPLICAS), False


def _restart(r: Reader, value: Any, path: str) -> RestartPolicy:
    default = DEFAULTS.restart
    sec = r.mapping(value, path, ("max_retries", "backoff"), what="{max_retries, backoff}")
    if sec is None:
        return default
    retries = r.field(sec, "max_retries", path, integer, default.max_retries, 0, MAX_RETRIES)
    lo, hi = r.field(sec, "backoff", path, _backoff, (default.backoff_min, default.backoff_max))
    return RestartPolicy(max_retries=retries, backoff_min=lo, backoff_max=hi)


def _backoff(value: Any, path: str) -> tuple[float, float]:
    lo, hi = parse_duration_range(value, field=path)
    if lo < 0.001:
        raise SpecError.at(path, "the lower end must be at least 1ms: a zero backoff restarts a crashing "
                                 "service in a hot loop")
    if hi > DAY:
        raise SpecError.at(path, f"the upper end must be at most 1d, got {shown(value)}")
    return lo, hi
