"""Rotating logs, the worker's environment, and the program it is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy.appworker import ProgramPlan, RotatingLog, WorkerSettings
from galaxy.appworker.settings import service_base_env, take_secrets
from galaxy.errors import InvalidInput


def test_rotation_bounds_every_file_and_keeps_n_old_ones(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "log" / "stdout.log", max_bytes=100, keep=2)
    for index in range(30):
        log.write(f"{index:02d}-{'x' * 17}\n".encode())  # 21 bytes: writes straddle the bound
    log.write(b"y" * 250)  # one write larger than a whole file is split, not allowed past the bound
    log.close()
    files = log.files()
    assert [p.name for p in files] == ["stdout.log", "stdout.log.1", "stdout.log.2"]
    assert all(p.stat().st_size <= 100 for p in files)
    assert log.tail(10) == "y" * 10
    assert not (tmp_path / "log" / "stdout.log.3").exists()


def test_rotation_with_keep_zero_only_keeps_the_current_file(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "out.log", max_bytes=10, keep=0)
    log.write(b"a" * 25)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["out.log"] and (tmp_path / "out.log").read_bytes() == b"aaaaa"


BASE = {"GALAXY_CONTAINER_ID": "pod-1", "GALAXY_GROUP": "web", "GALAXY_ZOOKEEPER": "127.0.0.1:2181",
        "GALAXY_CLUSTER": "c1", "GALAXY_WORKER_KEY": "s" * 40, "GALAXY_WORKER_PUB": "p" * 40,
        "GALAXY_UID": "1000", "GALAXY_GID": "1000", "GALAXY_PORT_HTTP": "8080", "GALAXY_PORT_HTTP_ALT": "8081",
        "GALAXY_HOST_ADDRESS": "10.0.0.5", "HOME": "/root"}


def test_settings_from_the_environment() -> None:
    settings = WorkerSettings.from_environ(BASE)
    assert settings.pod == "pod-1" and settings.job == "web" and settings.uid == 1000
    assert settings.endpoint == {"address": "10.0.0.5", "ports": {"http": 8080, "http_alt": 8081}}
    assert settings.port("http-alt") == 8081 and settings.report_interval == 1.0
    assert "GALAXY_WORKER_KEY" not in settings.container_env and "HOME" not in settings.container_env
    assert "s" * 40 not in repr(settings)


def test_the_reported_host_is_the_agent_id_like_resman_says() -> None:
    # `pod list` HOST must not flip between ResMan's agent id and the worker's address.
    assert WorkerSettings.from_environ({**BASE, "GALAXY_AGENT": "agent-7"}).host == "agent-7"
    assert WorkerSettings.from_environ(BASE).host == "10.0.0.5"   # an old Agent that names no id


@pytest.mark.parametrize("missing", ["GALAXY_CONTAINER_ID", "GALAXY_ZOOKEEPER", "GALAXY_WORKER_KEY", "GALAXY_UID"])
def test_a_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(InvalidInput) as err:
        WorkerSettings.from_environ(env)
    assert err.value.field == missing


def test_a_malformed_variable_is_named() -> None:
    with pytest.raises(InvalidInput) as err:
        WorkerSettings.from_environ({**BASE, "GALAXY_PORT_HTTP": "eighty"})
    assert err.value.field == "GALAXY_PORT_HTTP"


def test_secrets_leave_the_environment_and_children_never_see_them() -> None:
    environ = dict(BASE)
    assert take_secrets(environ) == {"GALAXY_WORKER_KEY": "s" * 40, "GALAXY_WORKER_PUB": "p" * 40}
    assert "GALAXY_WORKER_KEY" not in environ
    env = service_base_env(WorkerSettings.from_environ(BASE), {"GALAXY_WORKER_KEY": "sneaky", "MODE": "prod"})
    assert "GALAXY_WORKER_KEY" not in env and env["MODE"] == "prod" and env["GALAXY_PORT_HTTP"] == "8080"


def test_program_is_checked_field_by_field() -> None:
    plan = ProgramPlan.parse("3", {"version": "3", "start": "./web", "health": {"tcp": "http"},
                                   "restart": {"max_retries": 4, "backoff": {"min": 2, "max": 8}}})
    assert plan.health is not None and plan.health.tcp == "http" and plan.restart.delay(5) == 8
    for body, field in [({"start": ""}, "program.start"), ({"start": "x", "health": {"tcp": "a", "command": "b"}},
                         "program.health"), ({"start": "x", "env": {"A": 1}}, "program.env")]:
        with pytest.raises(InvalidInput) as err:
            ProgramPlan.parse("1", body)
        assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        ProgramPlan.parse("../up", {"start": "x"})
    assert err.value.field == "version"
