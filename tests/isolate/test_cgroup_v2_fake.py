"""The cgroup v2 driver against a fake cgroupfs tree (this host's v2 tree holds no cpu/memory/pids)."""

from __future__ import annotations

import os

import pytest

from galaxy.isolate import CgroupLimits, CgroupV2Driver, IsolateError, detect_cgroups
from galaxy.isolate._cgroup_v2 import SELF_LEAF, settle_in_own_cgroup
from tests.isolate.fake_cgroupfs import FakeCgroupV2Fs

MiB = 1 << 20


@pytest.fixture
def fake(tmp_path) -> FakeCgroupV2Fs:
    return FakeCgroupV2Fs(str(tmp_path))


@pytest.fixture
def v2(fake: FakeCgroupV2Fs) -> CgroupV2Driver:
    driver = detect_cgroups(fake.root, base="/", fs=fake)
    assert isinstance(driver, CgroupV2Driver)
    return driver


def read(fake: FakeCgroupV2Fs, rel: str) -> str:
    return fake.read(os.path.join(fake.root, rel)).strip()


def test_ensure_delegates_controllers_down_to_the_leaf_and_sets_limits(fake, v2) -> None:
    v2.ensure("galaxy-a1/c1", CgroupLimits(0.5, memory_bytes=64 * MiB, pids_max=100))
    assert read(fake, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    assert read(fake, "galaxy-a1/cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    assert read(fake, "galaxy-a1/c1/cpu.max") == "50000 100000"
    assert read(fake, "galaxy-a1/c1/cpu.weight") == "20"  # 512 shares on the runc scale
    assert read(fake, "galaxy-a1/c1/memory.max") == str(64 * MiB)
    assert read(fake, "galaxy-a1/c1/memory.swap.max") == "0"
    assert read(fake, "galaxy-a1/c1/pids.max") == "100"
    assert v2.exists("galaxy-a1/c1") and v2.list("galaxy-a1") == ["galaxy-a1/c1"]


def test_cpu_excess_sets_weight_but_no_quota(fake, v2) -> None:
    v2.ensure("galaxy-a1/c1", CgroupLimits(2.0, cpu_excess=True, memory_bytes=64 * MiB))
    assert read(fake, "galaxy-a1/c1/cpu.max") == "max 100000"
    assert read(fake, "galaxy-a1/c1/cpu.weight") == str(1 + ((2048 - 2) * 9999) // 262142)


def test_weigh_gives_a_parent_the_weight_of_its_cores_and_no_limit(fake, v2) -> None:
    v2.weigh("galaxy-a1", 2.0)
    assert read(fake, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    assert read(fake, "galaxy-a1/cpu.weight") == str(1 + ((2048 - 2) * 9999) // 262142)
    assert not os.path.exists(os.path.join(fake.root, "galaxy-a1/cpu.max")) or \
        read(fake, "galaxy-a1/cpu.max").startswith("max"), "a weight, not a quota"
    v2.ensure("galaxy-a1/c1", CgroupLimits(0.005, cpu_excess=True, memory_bytes=64 * MiB))
    assert read(fake, "galaxy-a1/cpu.weight") == str(1 + ((2048 - 2) * 9999) // 262142), "a child keeps it"


def test_ensure_twice_changes_limits_without_redelegating(fake, v2) -> None:
    v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))
    fake.writes.clear()
    v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=32 * MiB))
    assert read(fake, "galaxy-a1/c1/memory.max") == str(32 * MiB)
    assert not [w for w in fake.writes if w[0].endswith("subtree_control")]


def test_missing_controllers_are_named(tmp_path) -> None:
    fake = FakeCgroupV2Fs(str(tmp_path), controllers="hugetlb")  # like this host's /sys/fs/cgroup/unified
    v2 = detect_cgroups(fake.root, base="/", fs=fake)
    with pytest.raises(IsolateError, match="lacks controllers cpu, memory, pids"):
        v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))


def test_a_base_with_processes_cannot_delegate(fake) -> None:
    fake.write(os.path.join(fake.root, "cgroup.subtree_control"), "+cpu +memory +pids")
    fake.mkdir(os.path.join(fake.root, "agent.service"))
    fake.write(os.path.join(fake.root, "agent.service/cgroup.procs"), "4242")
    v2 = CgroupV2Driver(fake.root, base="/agent.service", fs=fake)
    with pytest.raises(IsolateError, match="has processes of its own"):
        v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))


def test_usage_reads_cpu_memory_peak_and_oom_kills(fake, v2) -> None:
    v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))
    leaf = os.path.join(fake.root, "galaxy-a1/c1")
    fake.write(f"{leaf}/cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n")
    fake.write(f"{leaf}/memory.current", "4096\n")
    fake.write(f"{leaf}/memory.peak", "8192\n")
    fake.write(f"{leaf}/memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    usage = v2.usage("galaxy-a1/c1")
    assert (usage.cpu_seconds, usage.memory_bytes, usage.memory_peak_bytes, usage.oom_kills) \
        == (1.5, 4096, 8192, 2)
    os.unlink(f"{leaf}/memory.peak")  # kernels before 5.19 keep no peak
    assert v2.usage("galaxy-a1/c1").memory_peak_bytes is None


def test_release_kills_through_cgroup_kill_then_removes(fake, v2) -> None:
    v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))
    leaf = os.path.join(fake.root, "galaxy-a1/c1")
    fake.write(f"{leaf}/cgroup.procs", "4194305 4194306")  # above pid_max: never a real process
    assert v2.pids("galaxy-a1/c1") == [4194305, 4194306]
    v2.release("galaxy-a1/c1")
    assert ("galaxy-a1/c1/cgroup.kill", "1") in fake.writes
    assert not v2.exists("galaxy-a1/c1") and v2.list("galaxy-a1") == []
    v2.release("galaxy-a1/c1")  # idempotent
    v2.release("galaxy-a1")
    assert not os.path.exists(os.path.join(fake.root, "galaxy-a1"))


def test_join_and_oom_files_point_into_the_leaf(fake, v2) -> None:
    assert v2.join_files("galaxy-a1/c1") == [os.path.join(fake.root, "galaxy-a1/c1/cgroup.procs")]
    assert v2.oom_counter_file("galaxy-a1/c1") == os.path.join(fake.root, "galaxy-a1/c1/memory.events")


def test_a_daemon_under_its_own_cgroup_moves_into_a_leaf_and_delegates(fake) -> None:
    """As under systemd's Delegate=yes: the daemon's cgroup holds the daemon, so it moves into a leaf."""
    fake.write(os.path.join(fake.root, "cgroup.subtree_control"), "+cpu +memory +pids")
    fake.mkdir(os.path.join(fake.root, "agent.service"))
    fake.write(os.path.join(fake.root, "agent.service/cgroup.procs"), "4242")
    fake.write(os.path.join(fake.root, "agent.service/cgroup.procs"), "4250")  # its zygote, forked before
    base = settle_in_own_cgroup(fake.root, "/agent.service", fake)
    assert base == "/agent.service"
    assert read(fake, "agent.service/cgroup.procs") == ""
    assert read(fake, f"agent.service/{SELF_LEAF}/cgroup.procs").split() == ["4242", "4250"]
    v2 = CgroupV2Driver(fake.root, base=base, fs=fake)
    v2.ensure("galaxy-a1/c1", CgroupLimits(1.0, memory_bytes=64 * MiB))
    assert read(fake, "agent.service/galaxy-a1/c1/memory.max") == str(64 * MiB)
    # the daemon restarted (or a child of it) is already in the leaf: the same base, no second move
    assert settle_in_own_cgroup(fake.root, f"/agent.service/{SELF_LEAF}", fake) == "/agent.service"
    assert settle_in_own_cgroup(fake.root, "/", fake) == "/"
