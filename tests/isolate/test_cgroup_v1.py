"""The v1 driver on this host's real cgroup v1 hierarchies."""

from __future__ import annotations

import pytest

from galaxy.isolate import CgroupLimits, CgroupV1Driver

pytestmark = pytest.mark.root
MiB = 1 << 20


def knob(driver: CgroupV1Driver, controller: str, name: str, file: str) -> str:
    with open(f"{driver.path(controller, name)}/{file}") as f:
        return f.read().strip()


def test_ensure_applies_limits_in_every_hierarchy(driver, cgroup_parent) -> None:
    if not isinstance(driver, CgroupV1Driver):
        pytest.skip("host runs cgroup v2")
    name = f"{cgroup_parent}/c1"
    driver.ensure(name, CgroupLimits(0.5, memory_bytes=64 * MiB, pids_max=77))
    assert knob(driver, "cpu", name, "cpu.cfs_quota_us") == "50000"
    assert knob(driver, "cpu", name, "cpu.cfs_period_us") == "100000"
    assert knob(driver, "cpu", name, "cpu.shares") == "512"
    assert knob(driver, "memory", name, "memory.limit_in_bytes") == str(64 * MiB)
    assert knob(driver, "memory", name, "memory.memsw.limit_in_bytes") == str(64 * MiB)
    assert knob(driver, "pids", name, "pids.max") == "77"
    # grow and shrink: memsw must stay >= limit at every step
    driver.ensure(name, CgroupLimits(2, cpu_excess=True, memory_bytes=256 * MiB))
    assert knob(driver, "memory", name, "memory.memsw.limit_in_bytes") == str(256 * MiB)
    driver.ensure(name, CgroupLimits(2, cpu_excess=True, memory_bytes=32 * MiB))
    assert knob(driver, "memory", name, "memory.limit_in_bytes") == str(32 * MiB)
    assert knob(driver, "cpu", name, "cpu.cfs_quota_us") == "-1"
    assert knob(driver, "cpu", name, "cpu.shares") == "2048"
    assert driver.exists(name) and driver.list(cgroup_parent) == [name]
    usage = driver.usage(name)
    assert usage.cpu_seconds == 0 and usage.oom_kills == 0 and usage.memory_peak_bytes is not None


def test_weigh_sets_shares_of_a_parent_which_its_children_keep(driver, cgroup_parent) -> None:
    if not isinstance(driver, CgroupV1Driver):
        pytest.skip("host runs cgroup v2")
    name = f"{cgroup_parent}/agent"
    driver.weigh(name, 1.5)
    assert knob(driver, "cpu", name, "cpu.shares") == "1536"
    assert knob(driver, "cpu", name, "cpu.cfs_quota_us") == "-1"
    driver.ensure(f"{name}/c1", CgroupLimits(0.005, cpu_excess=True, memory_bytes=64 * MiB))
    assert knob(driver, "cpu", name, "cpu.shares") == "1536"
    assert knob(driver, "cpu", f"{name}/c1", "cpu.shares") == "5"
    driver.release(name)
    assert not driver.exists(name)


def test_release_is_idempotent_and_leaves_no_directory(driver, cgroup_parent) -> None:
    name = f"{cgroup_parent}/c1"
    driver.release(name)  # never existed
    driver.ensure(name, CgroupLimits(1, memory_bytes=64 * MiB))
    driver.release(name)
    driver.release(name)
    assert not driver.exists(name) and driver.list(cgroup_parent) == []
    assert all(not __import__("os").path.exists(f) for f in driver.join_files(name))
