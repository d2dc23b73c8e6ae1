"""ResMan's tunables from its config file's `resman:` section and GALAXY_RESMAN_* variables: every
mistake names the setting as the operator wrote it, and stops the daemon before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from galaxy.daemon.config import parse_config
from galaxy.errors import InvalidInput
from galaxy.resman.settings import ResManSettings

BASE: dict[str, Any] = {"cluster": "c1", "zookeeper": "127.0.0.1:2181", "key": "/k/resman.key",
                        "trusted_keys": "/k/trusted", "id": "r1"}


def test_the_config_section_sets_tunables_with_durations_and_the_environment_overrides_it() -> None:
    config = parse_config({**BASE, "resman": {"poll_interval": "500ms", "lost_after": 8, "avoid_for": 30,
                                              "strategy": "spread", "trace_containers": False}}, "resman")
    settings = ResManSettings.load(config.resman, env={})
    assert (settings.poll_interval, settings.lost_after, settings.avoid_for) == (0.5, 8, 30.0)
    assert settings.strategy == "spread" and settings.trace_containers is False
    assert settings.lost_seconds == 4.0 and settings.create_timeout == 60.0       # the rest: defaults
    env = ResManSettings.load(config.resman, env={"GALAXY_RESMAN_POLL_INTERVAL": "2"})
    assert env.poll_interval == 2.0 and env.lost_after == 8


@pytest.mark.parametrize(("section", "env", "field"), [
    ({"poll_intervall": 1}, {}, "resman.poll_intervall"),
    ({"lost_after": "many"}, {}, "resman.lost_after"),
    ({"lost_after": 2.5}, {}, "resman.lost_after"),
    ({"poll_interval": "soon"}, {}, "resman.poll_interval"),
    ({"poll_interval": True}, {}, "resman.poll_interval"),
    ({"poll_interval": 0}, {}, "resman.poll_interval"),
    ({"strategy": "random"}, {}, "resman.strategy"),
    ({}, {"GALAXY_RESMAN_LOST_AFTER": "x"}, "GALAXY_RESMAN_LOST_AFTER"),
    ({}, {"GALAXY_RESMAN_SAFE_MODE_RATIO": "1.5"}, "GALAXY_RESMAN_SAFE_MODE_RATIO"),
    ([1, 2], {}, "resman"),
])
def test_each_mistake_names_the_setting(section: Any, env: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        ResManSettings.load(section, env=env)
    assert err.value.field == field


def test_the_daemon_exits_2_on_a_bad_resman_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from galaxy.resman.main import main

    bad = tmp_path / "resman.yaml"
    bad.write_text("cluster: c1\nzookeeper: 127.0.0.1:1\nkey: /k/r.key\ntrusted_keys: /k/t\n"
                   "resman: {poll_interval: -1s}\n")
    assert main(["--config", str(bad)]) == 2
    assert "resman.poll_interval" in capsys.readouterr().err
