"""Fixtures of the SDK tests: a canned cluster (real mesh + real ZooKeeper) and a client configured for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from galaxy.sdk import Client, load_config
from tests.sdk.canned import CannedCluster


@pytest.fixture
def canned(zk_hosts: str, tmp_path: Path) -> Iterator[CannedCluster]:
    cluster = CannedCluster(zk_hosts, tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def client(canned: CannedCluster) -> Iterator[Client]:
    sdk = Client(load_config(canned.config_path, env={}), deadline=10.0, call_timeout=2.0)
    try:
        yield sdk
    finally:
        sdk.close()
