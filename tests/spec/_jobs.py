"""A valid job as plain data, and a way to change one field of it by path, for the spec tests."""

from __future__ import annotations

import copy
import re
from typing import Any

DELETE = object()

VALID: dict[str, Any] = {
    "name": "web",
    "type": "service",
    "pool": "default",
    "replicas": 2,
    "max_per_host": 1,
    "user": "nobody",
    "env": {"LOG_LEVEL": "info"},
    "resources": {
        "cpu": 0.5,
        "cpu_excess": False,
        "memory": "256Mi",
        "disks": [{"medium": "ssd", "size": "1Gi", "path": "/data"}],
        "ports": [{"name": "http"}, {"name": "admin", "port": 9100}],
        "labels": ["ssd"],
        "mounts": [{"host": "/etc/ssl", "path": "/etc/ssl", "readonly": True}],
    },
    "program": {
        "version": "1",
        "package": "file:///srv/pkg/web-1.tar.gz",
        "deploy": "tar xzf web-1.tar.gz",
        "start": "./web --port $GALAXY_PORT_HTTP",
        "stop": "kill -TERM $GALAXY_SERVICE_PID",
        "health": {"tcp": "http"},
        "data": {"package": "https://pkg.example/dict-7.tar.gz", "reload": "./web --reload"},
    },
    "update": {"step": 1, "pause_between": "5s", "max_failures": 1},
    "restart": {"max_retries": 10, "backoff": "1s..60s"},
}

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    return [int(i) if i else key for key, i in _TOKEN.findall(path)]


def with_field(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of ``base`` (default `VALID`) with the field at ``path`` set (or removed: `DELETE`)."""
    data = copy.deepcopy(VALID if base is None else base)
    *parents, last = split_path(path)
    node: Any = data
    for step in parents:
        node = node[step]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    """Every path of a plain document, containers included (not the root)."""
    paths: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths.extend(leaf_paths(item, path))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            path = f"{prefix}[{i}]"
            paths.append(path)
            paths.extend(leaf_paths(item, path))
    return paths
