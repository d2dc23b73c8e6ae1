"""``~/.galaxy/config`` loading: file, environment overrides, and the message when nothing is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy.errors import InvalidInput
from galaxy.sdk import ClientConfig, NotConfigured, load_config, write_config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_file_values_and_relative_key(tmp_path: Path) -> None:
    file = write(tmp_path / "config", "cluster: prod\nzookeeper: zk1:2181,zk2:2181/g\nkey: keys/me.key\ntimeout: 3s\n")
    config = load_config(file, env={})
    assert (config.cluster, config.zookeeper, config.timeout) == ("prod", "zk1:2181,zk2:2181/g", 3.0)
    assert config.key == str(tmp_path / "keys" / "me.key")
    assert config.sources["cluster"] == str(file)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "config", "cluster: prod\nzookeeper: zk1:2181\nkey: me.key\n")
    env = {"GALAXY_CONFIG": str(file), "GALAXY_CLUSTER": "staging", "GALAXY_KEY": str(tmp_path / "other.key"),
           "GALAXY_TIMEOUT": "2.5"}
    config = load_config(env=env)
    assert (config.cluster, config.zookeeper) == ("staging", "zk1:2181")
    assert config.key == str(tmp_path / "other.key") and config.timeout == 2.5
    assert config.sources == {"cluster": "$GALAXY_CLUSTER", "zookeeper": str(file), "key": "$GALAXY_KEY",
                              "timeout": "$GALAXY_TIMEOUT"}


def test_environment_alone_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.galaxy/config there
    monkeypatch.chdir(tmp_path)
    env = {"GALAXY_CLUSTER": "c", "GALAXY_ZOOKEEPER": "127.0.0.1:1", "GALAXY_KEY": "k.key"}
    config = load_config(env=env)
    assert (config.cluster, config.key) == ("c", str(tmp_path / "k.key"))


def test_nothing_configured_names_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(NotConfigured) as caught:
        load_config(env={})
    message = str(caught.value)
    assert message.startswith("no Galaxy cluster configured")
    for needed in ("GALAXY_CLUSTER", "GALAXY_ZOOKEEPER", "GALAXY_KEY", str(tmp_path / ".galaxy" / "config"),
                   "make demo"):
        assert needed in message


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="does not exist"):
        load_config(env={"GALAXY_CONFIG": str(tmp_path / "nope")})


@pytest.mark.parametrize(("text", "field"), [
    ("cluster: c\nzookeeper: z\nkey: k\nzoo: 1\n", "zoo"),
    ("cluster: c\nzookeeper: z\nkey: k\ntimeout: soon\n", "timeout"),
    ("cluster: [c]\nzookeeper: z\nkey: k\n", "cluster"),
    ("- not a mapping\n", "config"),
])
def test_bad_files_name_the_key(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_config(write(tmp_path / "config", text), env={})
    assert caught.value.field == field


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    config = ClientConfig(cluster="c", zookeeper="127.0.0.1:2181", key=str(tmp_path / "me.key"), timeout=4.0)
    path = write_config(tmp_path / "sub" / "config", config)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_config(path, env={}) == config
    with pytest.raises(InvalidInput, match="--force"):
        write_config(path, config)
    write_config(path, config, force=True)
