"""Fixtures for galaxy.isolate: a real cgroup driver and containers that are destroyed whatever happens.

Every kernel object a test makes is named ``galaxy-test-<pid>-<hex>`` (cgroup parent) / ``g<hex>``
(container id), so a leak is visible and attributable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from galaxy.isolate import (
    CgroupDriver,
    CgroupLimits,
    ContainerSpec,
    default_system_mounts,
    destroy,
    detect_cgroups,
)
from galaxy.isolate._launch import mounts_below


@pytest.fixture(scope="session")
def driver() -> CgroupDriver:
    if os.geteuid() != 0:
        pytest.skip("needs root for real cgroups and namespaces")
    return detect_cgroups()


@pytest.fixture
def cgroup_parent(driver: CgroupDriver) -> Iterator[str]:
    parent = f"galaxy-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield parent
    driver.release(parent)


@pytest.fixture
def tmp_dirs() -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(kind: str) -> str:
        path = tempfile.mkdtemp(prefix=f"galaxy-test-{kind}-")
        made.append(path)
        return path

    yield make
    for path in made:
        if not mounts_below(path):  # never rmtree through a mount: it would delete host files
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_spec(driver: CgroupDriver, cgroup_parent: str,
              tmp_dirs: Callable[[str], str]) -> Iterator[Callable[..., ContainerSpec]]:
    """Build container specs; every one is destroyed at teardown, even if the test failed."""
    specs: list[ContainerSpec] = []

    def make(argv: list[str], **overrides: Any) -> ContainerSpec:
        cid = f"g{uuid.uuid4().hex[:10]}"
        fields: dict[str, Any] = dict(
            id=cid, cgroup=f"{cgroup_parent}/{cid}",
            limits=CgroupLimits(1.0, memory_bytes=128 << 20, pids_max=256),
            argv=argv, env={}, state_dir=tmp_dirs("state"), work_dir=tmp_dirs("work"),
            mounts=[], system_mounts=default_system_mounts())
        fields.update(overrides)
        spec = ContainerSpec(**fields)
        specs.append(spec)
        return spec

    yield make
    for spec in specs:
        destroy(spec, driver)
