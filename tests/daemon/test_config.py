"""Daemon config files: defaults, and every problem named by its key, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from galaxy.daemon.config import ConfigError, load_config, parse_config
from galaxy.errors import InvalidInput

BASE: dict[str, Any] = {"cluster": "c1", "zookeeper": "127.0.0.1:2181", "key": "/k/agent.key",
                        "trusted_keys": "/k/trusted", "id": "h1"}


def test_defaults_and_agent_section() -> None:
    cfg = parse_config({**BASE, "agent": {"pool": "batch", "labels": ["ssd"], "port_range": "21000-21999",
                                          "disks": [{"path": "/srv/d1", "medium": "ssd", "capacity": "10Gi"}],
                                          "reserved_memory": "1Gi"}}, "agent")
    assert cfg.agent.pool == "batch" and cfg.agent.labels == ("ssd",)
    assert cfg.agent.port_range == (21000, 21999)
    assert cfg.agent.disks[0].capacity == 10 << 30
    assert cfg.agent.reserved_memory == 1 << 30
    assert cfg.session_timeout == 10.0 and cfg.state_dir == "/var/lib/galaxy/agent-h1"


@pytest.mark.parametrize(("patch", "key"), [
    ({"cluster": None}, "cluster"),
    ({"zookeeper": 5}, "zookeeper"),
    ({"session_timeout": "soon"}, "session_timeout"),
    ({"log_level": "loud"}, "log_level"),
    ({"colour": "blue"}, "colour"),
    ({"agent": {"port_range": "80-90"}}, "agent.port_range"),
    ({"agent": {"disks": [{"path": "rel", "medium": "ssd", "capacity": "1Gi"}]}}, "agent.disks[0].path"),
    ({"agent": {"disks": [{"path": "/d", "medium": "ssd"}]}}, "agent.disks[0].capacity"),
    ({"agent": {"reserved_cpu": -1}}, "agent.reserved_cpu"),
    ({"agent": {"labels": [""]}}, "agent.labels[0]"),
])
def test_each_problem_names_its_key(patch: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **patch}, "agent")
    assert key in [k for k, _ in err.value.problems]


def test_all_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"log_level": "loud", "typo": 1}, "resman")
    keys = {k for k, _ in err.value.problems}
    assert {"cluster", "zookeeper", "key", "trusted_keys", "log_level", "typo"} <= keys


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", "resman")


def test_daemon_exits_2_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from galaxy.resman.main import main

    bad = tmp_path / "resman.yaml"
    bad.write_text("cluster: c1\nzookeeper: [1, 2]\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "zookeeper: expected str" in err and "key: is required" in err
