"""The supervisor's config file: where it keeps its pidfiles and logs, and the programs it runs.

One main file names the run and log directories and may ``include`` a glob of program files, so a
deployment tool writes one small file per program (``supervisor.d/resman.yaml``) and never has to
edit a shared list. Every problem is reported at once, each named by its key, like the daemons' own
config files::

    run_dir: /run/galaxy               # supervisor.pid, <program>.pid, state.json, requests/
    log_dir: /var/log/galaxy           # supervisor.log, <program>.log
    include: /etc/galaxy/supervisor.d/*.yaml
    programs:                          # optional; same shape as an included file
      resman:
        command: [/opt/galaxy/current/bin/galaxy-resman, --config, /etc/galaxy/resman.yaml]
        env: {}
        cwd: /
        stop_signal: TERM              # sent to the program's PID only (kill: group = its process group)
        stop_timeout: 10s
        backoff: {min: 1s, max: 60s, reset_after: 30s}
        watch: [/etc/galaxy/resman.yaml]   # a change of these files' content counts as a new definition
        health: {command: [...], timeout: 60s}   # or {tcp: "127.0.0.1:2181"}

A program's *digest* covers its definition and the content of its ``watch`` files; ``ensure``
restarts a program exactly when the digest it was started with differs from the one on disk now.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from galaxy.daemon.config import ConfigError
from galaxy.errors import InvalidInput

_PROGRAM_KEYS = {"command", "env", "cwd", "stop_signal", "stop_timeout", "kill", "backoff", "watch", "health"}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class HealthCheck:
    """How a caller of ``ensure``/``restart`` learns the program is ready: a command or a TCP connect."""

    command: tuple[str, ...] = ()
    tcp: str = ""
    timeout: float = 60.0


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    kill_group: bool = False
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    reset_after: float = 30.0
    watch: tuple[str, ...] = ()
    health: HealthCheck | None = None

    def digest(self) -> str:
        """Identifies this definition plus the current content of its watched files."""
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=list).encode())
        for path in self.watch:
            try:
                h.update(Path(path).read_bytes())
            except OSError:
                h.update(b"\0missing:" + path.encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class SupervisorConfig:
    source: str
    run_dir: str
    log_dir: str
    programs: dict[str, ProgramSpec] = field(default_factory=dict)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run_dir, "supervisor.pid")

    @property
    def state_file(self) -> str:
        return os.path.join(self.run_dir, "state.json")

    @property
    def request_dir(self) -> str:
        return os.path.join(self.run_dir, "requests")

    def program(self, name: str) -> ProgramSpec:
        try:
            return self.programs[name]
        except KeyError:
            known = ", ".join(sorted(self.programs)) or "none"
            raise InvalidInput(f"no program {name!r} in {self.source} (known: {known})", field="program") from None


def _seconds(value: Any, key: str, default: float, problems: list[tuple[str, str]]) -> float:
    from galaxy.spec import parse_duration

    if value is None:
        return default
    if isinstance(value, bool):
        problems.append((key, "expected a duration"))
        return default
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(value, field=key)
    except InvalidInput as err:
        problems.append((key, err.message))
        return default


def _signal(value: Any, key: str, problems: list[tuple[str, str]]) -> int:
    if value is None:
        return int(signal.SIGTERM)
    name = str(value).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        problems.append((key, f"unknown signal {value!r}"))
        return int(signal.SIGTERM)


def _strings(value: Any, key: str, problems: list[tuple[str, str]], *, nonempty: bool = False) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        problems.append((key, "expected a list of non-empty strings"))
        return ()
    if nonempty and not value:
        problems.append((key, "must not be empty"))
    return tuple(value)


def _health(value: Any, key: str, problems: list[tuple[str, str]]) -> HealthCheck | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not ({"command", "tcp"} & set(value)):
        problems.append((key, "expected a mapping with command or tcp"))
        return None
    for extra in set(value) - {"command", "tcp", "timeout"}:
        problems.append((f"{key}.{extra}", "unknown key"))
    tcp = value.get("tcp", "")
    if tcp and (not isinstance(tcp, str) or ":" not in tcp):
        problems.append((f"{key}.tcp", "expected HOST:PORT"))
        tcp = ""
    return HealthCheck(command=_strings(value.get("command"), f"{key}.command", problems), tcp=tcp,
                       timeout=_seconds(value.get("timeout"), f"{key}.timeout", 60.0, problems))


def parse_program(name: str, data: Any, problems: list[tuple[str, str]]) -> ProgramSpec | None:
    key = f"programs.{name}"
    if not name or not set(name) <= _NAME_CHARS:
        problems.append((key, "a program name is letters, digits, '-', '_' or '.'"))
        return None
    if not isinstance(data, dict):
        problems.append((key, "expected a mapping"))
        return None
    for extra in set(data) - _PROGRAM_KEYS:
        problems.append((f"{key}.{extra}", "unknown key"))
    env = data.get("env") or {}
    if not isinstance(env, dict):
        problems.append((f"{key}.env", "expected a mapping"))
        env = {}
    backoff = data.get("backoff") or {}
    if not isinstance(backoff, dict):
        problems.append((f"{key}.backoff", "expected a mapping with min, max, reset_after"))
        backoff = {}
    kill = data.get("kill", "process")
    if kill not in ("process", "group"):
        problems.append((f"{key}.kill", "expected process or group"))
    lo = _seconds(backoff.get("min"), f"{key}.backoff.min", 1.0, problems)
    hi = _seconds(backoff.get("max"), f"{key}.backoff.max", 60.0, problems)
    if hi < lo:
        problems.append((f"{key}.backoff.max", "must be >= backoff.min"))
    cwd = data.get("cwd", "/")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        problems.append((f"{key}.cwd", "expected an absolute path"))
        cwd = "/"
    return ProgramSpec(
        name=name,
        command=_strings(data.get("command"), f"{key}.command", problems, nonempty=True),
        env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
        cwd=cwd,
        stop_signal=_signal(data.get("stop_signal"), f"{key}.stop_signal", problems),
        stop_timeout=_seconds(data.get("stop_timeout"), f"{key}.stop_timeout", 10.0, problems),
        kill_group=kill == "group",
        backoff_min=lo, backoff_max=hi,
        reset_after=_seconds(backoff.get("reset_after"), f"{key}.backoff.reset_after", 30.0, problems),
        watch=_strings(data.get("watch"), f"{key}.watch", problems),
        health=_health(data.get("health"), f"{key}.health", problems),
    )


def _read_yaml(path: str, problems: list[tuple[str, str]], key: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as err:
        problems.append((key, f"cannot read {path}: {err.strerror}"))
    except yaml.YAMLError as err:
        problems.append((key, f"{path}: {str(err).replace(chr(10), ' ')}"))
    return None


def load_config(path: str | os.PathLike[str]) -> SupervisorConfig:
    """Read the main file and every included program file; raise ConfigError listing every problem."""
    source = os.path.abspath(os.fspath(path))
    if not os.path.exists(source):
        raise InvalidInput(f"no supervisor config file {source}", field="config")
    problems: list[tuple[str, str]] = []
    data = _read_yaml(source, problems, "<yaml>")
    if not isinstance(data, dict):
        raise ConfigError(source, problems or [("<top>", "expected a mapping")])
    for extra in set(data) - {"run_dir", "log_dir", "include", "programs"}:
        problems.append((str(extra), "unknown key"))
    dirs = {}
    for key in ("run_dir", "log_dir"):
        value = data.get(key)
        if not isinstance(value, str) or not os.path.isabs(value):
            problems.append((key, "expected an absolute path"))
            value = "/"
        dirs[key] = value
    raw: dict[str, tuple[str, Any]] = {}
    sections: list[tuple[str, Any]] = [(source, data.get("programs") or {})]
    include = data.get("include")
    if include is not None and not isinstance(include, str):
        problems.append(("include", "expected a glob pattern"))
    elif include:
        sections += [(f, _read_yaml(f, problems, "include")) for f in sorted(glob.glob(include))]
    for where, section in sections:
        if section is None:
            continue
        if not isinstance(section, dict):
            problems.append(("programs", f"{where}: expected a mapping of program name to definition"))
            continue
        for name, body in section.items():
            if str(name) in raw:
                problems.append((f"programs.{name}", f"defined twice ({raw[str(name)][0]} and {where})"))
            raw[str(name)] = (where, body)
    programs = {name: spec for name, (_, body) in raw.items()
                if (spec := parse_program(name, body, problems)) is not None}
    if problems:
        raise ConfigError(source, problems)
    return SupervisorConfig(source, dirs["run_dir"], dirs["log_dir"], programs)
