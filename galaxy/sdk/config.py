"""Where a user's cluster is: ``~/.galaxy/config`` (YAML) with environment overrides.

The file names three things and optionally a fourth::

    cluster: local                  # the /galaxy/<cluster> namespace in ZooKeeper
    zookeeper: 127.0.0.1:2181       # connect string (may carry a chroot: host:port/prefix)
    key: ~/.galaxy/alice.key        # the user's CURVE keypair; a relative path is relative to this file
    timeout: 10s                    # how long to wait for ZooKeeper and for a leader (default 10 s)
    zookeeper_ca: ~/.galaxy/zookeeper-ca.pem   # the cluster's ZooKeeper CA certificate: TLS to
                                    # ZooKeeper's secure port (a relative path is relative to this file)
    netns: galaxy-demo-1            # only for a local cluster on test hosts (`make demo`): the network
                                    # namespace its control plane lives in; the client enters it (root)

Each value can be overridden by ``GALAXY_CLUSTER``, ``GALAXY_ZOOKEEPER``, ``GALAXY_KEY``,
``GALAXY_TIMEOUT`` and ``GALAXY_ZOOKEEPER_CA``; ``GALAXY_CONFIG`` names another file. The environment wins so a script can aim
one command at another cluster without touching the file. When nothing names a cluster the error
says exactly what to set, because that is the first thing every new user meets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from galaxy.coord import check_ca_file
from galaxy.errors import InvalidInput
from galaxy.sdk.errors import NotConfigured
from galaxy.spec import SpecError, parse_duration

DEFAULT_PATH = "~/.galaxy/config"
DEFAULT_TIMEOUT = 10.0
KEYS = ("cluster", "zookeeper", "key", "timeout", "netns", "zookeeper_ca")
ENV = {"cluster": "GALAXY_CLUSTER", "zookeeper": "GALAXY_ZOOKEEPER", "key": "GALAXY_KEY",
       "timeout": "GALAXY_TIMEOUT", "zookeeper_ca": "GALAXY_ZOOKEEPER_CA"}
PATH_KEYS = ("key", "zookeeper_ca")   # relative to the config file
ENV_CONFIG = "GALAXY_CONFIG"


@dataclass(frozen=True)
class ClientConfig:
    """A resolved configuration; ``sources`` tells where each value came from (file path or env name)."""

    cluster: str
    zookeeper: str
    key: str
    timeout: float = DEFAULT_TIMEOUT
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    netns: str | None = None
    zookeeper_ca: str | None = None   # a PEM file: TLS to ZooKeeper, servers checked against it

    def __post_init__(self) -> None:
        for name in ("cluster", "zookeeper", "key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("must be a non-empty string", field=name)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise InvalidInput(f"must be a positive number of seconds, got {self.timeout!r}", field="timeout")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cluster": self.cluster, "zookeeper": self.zookeeper, "key": self.key,
                                "timeout": self.timeout}
        if self.netns:
            data["netns"] = self.netns
        if self.zookeeper_ca:
            data["zookeeper_ca"] = self.zookeeper_ca
        return data


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file in effect: ``$GALAXY_CONFIG`` or ``~/.galaxy/config``."""
    env = os.environ if env is None else env
    return Path(os.path.expanduser(env.get(ENV_CONFIG) or DEFAULT_PATH))


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> ClientConfig:
    """Read the config file (if any) and apply the environment on top.

    ``path`` overrides ``$GALAXY_CONFIG``; a path given explicitly must exist. Raises NotConfigured
    naming every missing value and how to provide it.
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_CONFIG))
    file = Path(os.path.expanduser(os.fspath(path))) if path is not None else config_path(env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if file.is_file():
        for name, value in _read_file(file).items():
            values[name] = value
            sources[name] = str(file)
        for name in PATH_KEYS:
            if isinstance(values.get(name), str):
                values[name] = str((file.parent / os.path.expanduser(values[name])).resolve())
    elif explicit:
        named_by = "the path argument" if path is not None else f"${ENV_CONFIG}"
        raise NotConfigured(f"config file {file} does not exist (named by {named_by})")
    for name, variable in ENV.items():
        if env.get(variable):
            values[name] = env[variable]
            sources[name] = f"${variable}"
    for name in PATH_KEYS:
        if isinstance(values.get(name), str):
            values[name] = os.path.abspath(os.path.expanduser(values[name]))
    missing = [name for name in ("cluster", "zookeeper", "key") if not values.get(name)]
    if missing:
        raise NotConfigured(_not_configured_message(file, missing))
    timeout = _timeout(values.get("timeout", DEFAULT_TIMEOUT), sources.get("timeout", "timeout"))
    netns = values.get("netns")
    if netns is not None and (not isinstance(netns, str) or not netns):
        raise InvalidInput("must be a network namespace name", field="netns")
    ca = values.get("zookeeper_ca")
    if ca is not None:
        ca = check_ca_file(ca, "zookeeper_ca")
    return ClientConfig(cluster=str(values["cluster"]), zookeeper=str(values["zookeeper"]), key=str(values["key"]),
                        timeout=timeout, sources=sources, netns=netns, zookeeper_ca=ca)


def write_config(path: str | os.PathLike[str], config: ClientConfig, *, force: bool = False) -> Path:
    """Write ``config`` as a config file (mode 0600: it points at a secret). Refuses to overwrite unless forced."""
    target = Path(os.path.expanduser(os.fspath(path)))
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists; pass --force to replace it", field="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Galaxy client configuration (see docs/sdk.md). Environment variables GALAXY_CLUSTER,\n"
            "# GALAXY_ZOOKEEPER, GALAXY_KEY, GALAXY_TIMEOUT and GALAXY_ZOOKEEPER_CA override these values.\n"
            + yaml.safe_dump(config.to_dict(), sort_keys=False))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return target


def _read_file(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInput(f"cannot read {file}: {err.strerror}", field="config") from None
    except yaml.YAMLError as err:
        raise InvalidInput(f"{file} is not valid YAML: {str(err).splitlines()[0]}", field="config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{file} must be a mapping of {', '.join(KEYS)}", field="config")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise InvalidInput(f"{file}: unknown key {unknown[0]!r}; known keys are {', '.join(KEYS)}",
                           field=unknown[0])
    for name in ("cluster", "zookeeper", "key", "zookeeper_ca"):
        if name in data and not isinstance(data[name], str):
            raise InvalidInput(f"{file}: expected a string", field=name)
    return data


def _timeout(value: Any, source: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)  # GALAXY_TIMEOUT=5 means seconds
        except ValueError:
            pass
    try:
        seconds = parse_duration(value, field="timeout")
    except SpecError as err:
        raise InvalidInput(f"{source}: {err.errors[0].message}", field="timeout") from None
    if seconds <= 0:
        raise InvalidInput(f"{source}: must be above 0", field="timeout")
    return seconds


def _not_configured_message(file: Path, missing: list[str]) -> str:
    names = ", ".join(missing)
    variables = ", ".join(ENV[m] for m in missing)
    return (f"no Galaxy cluster configured ({names} not set): write {file} with cluster, zookeeper and key "
            f"(`galaxy config init`), or set {variables}; `make demo` starts a local cluster and writes it")
