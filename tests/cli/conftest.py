"""Fixtures of the CLI tests: the canned cluster of tests/sdk, configured through $GALAXY_CONFIG."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galaxy.cli.main import main
from galaxy.sdk.config import ENV, ENV_CONFIG
from tests.sdk.canned import CannedCluster

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GALAXY_* variable and no ~/.galaxy/config leak in from the machine running the tests."""
    for variable in [*ENV.values(), ENV_CONFIG]:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def canned(zk_hosts: str, tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[CannedCluster]:
    cluster = CannedCluster(zk_hosts, tmp_path)
    monkeypatch.setenv(ENV_CONFIG, str(cluster.config_path))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("job", "list")`` → (exit status, stdout, stderr) of the real entry point."""
    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return invoke
