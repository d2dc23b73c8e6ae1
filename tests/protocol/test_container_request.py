"""container.create bodies: a good one round-trips, each bad one names its field."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.errors import InvalidInput
from galaxy.protocol import ContainerRequest

GOOD: dict[str, Any] = {
    "id": "web-0.abc", "group": "web", "cpu": 0.5, "memory": 64 << 20, "argv": ["/bin/sleep", "60"],
    "disks": [{"medium": "ssd", "size": 16 << 20, "path": "/data"}],
    "ports": [{"name": "http"}, {"name": "admin", "port": 9100}],
    "mounts": [{"host": "/etc/ssl", "path": "/etc/ssl", "readonly": True}],
    "env": {"MODE": "prod"}, "user": "nobody",
}


def test_round_trip() -> None:
    req = ContainerRequest.from_wire(GOOD)
    assert ContainerRequest.from_wire(req.to_wire()) == req
    assert req.ports[1].port == 9100 and req.ports[0].port is None
    assert req.mounts[0].readonly is True


@pytest.mark.parametrize(("patch", "field"), [
    ({"id": "Web!"}, "id"),
    ({"cpu": 0}, "cpu"),
    ({"cpu": True}, "cpu"),
    ({"memory": 1024}, "memory"),
    ({"argv": []}, "argv"),
    ({"argv": ["ok", 3]}, "argv"),
    ({"pids": 2}, "pids"),
    ({"user": "Root User"}, "user"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"disks": [{"medium": "ssd", "size": 16 << 20, "path": "relative"}]}, "disks[0].path"),
    ({"disks": [{"medium": "ssd", "size": 16 << 20, "path": "/proc/x"}]}, "disks[0].path"),
    ({"disks": [{"medium": "ssd", "size": 1, "path": "/d"}]}, "disks[0].size"),
    ({"disks": [{"size": 16 << 20, "path": "/d"}]}, "disks[0].medium"),
    ({"ports": [{"name": "a"}, {"name": "a"}]}, "ports[1].name"),
    ({"ports": [{"name": "a", "port": 70000}]}, "ports[0].port"),
    ({"mounts": [{"host": "etc", "path": "/etc"}]}, "mounts[0].host"),
    ({"mounts": [{"host": "/etc", "path": "/"}]}, "mounts[0].path"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_field_is_named(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        ContainerRequest.from_wire({**GOOD, **patch})
    assert err.value.field == field


def test_missing_required_field_is_named() -> None:
    body = dict(GOOD)
    del body["group"]
    with pytest.raises(InvalidInput) as err:
        ContainerRequest.from_wire(body)
    assert err.value.field == "group"
