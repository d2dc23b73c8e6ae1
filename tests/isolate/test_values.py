"""Plain-value checks that need no kernel: limits, spec validation, users, system mounts, mount plan."""

from __future__ import annotations

import os
import sys

import pytest

from galaxy.errors import InvalidInput
from galaxy.isolate import (
    BindMount,
    CgroupLimits,
    ContainerSpec,
    default_system_mounts,
    resolve_user,
)
from galaxy.isolate._plan import mount_plan
from galaxy.isolate._spec import validate_spec

MiB = 1 << 20


def test_cores_become_quota_and_shares() -> None:
    half = CgroupLimits(0.5, memory_bytes=64 * MiB)
    assert (half.cfs_quota_us, half.cpu_shares) == (50_000, 512)
    excess = CgroupLimits(4, cpu_excess=True, memory_bytes=64 * MiB)
    assert (excess.cfs_quota_us, excess.cpu_shares) == (None, 4096)
    assert CgroupLimits(0.001, memory_bytes=64 * MiB).cfs_quota_us == 1_000  # kernel minimum


@pytest.mark.parametrize("kwargs, field", [
    ({"cpu_cores": 0, "memory_bytes": 64 * MiB}, "cpu_cores"),
    ({"cpu_cores": float("nan"), "memory_bytes": 64 * MiB}, "cpu_cores"),
    ({"cpu_cores": 1, "memory_bytes": 1024}, "memory_bytes"),
    ({"cpu_cores": 1, "memory_bytes": True}, "memory_bytes"),
    ({"cpu_cores": 1, "memory_bytes": 64 * MiB, "pids_max": 0}, "pids_max"),
    ({"cpu_cores": 1, "memory_bytes": 64 * MiB, "cpu_excess": "yes"}, "cpu_excess"),
])
def test_bad_limits_name_their_field(kwargs, field) -> None:
    with pytest.raises(InvalidInput) as err:
        CgroupLimits(**kwargs)
    assert err.value.field == field


def spec(tmp_path, **overrides) -> ContainerSpec:
    fields = dict(id="c1", cgroup="galaxy-a/c1", limits=CgroupLimits(1, memory_bytes=64 * MiB),
                  argv=["/bin/true"], env={"A": "1"}, state_dir=str(tmp_path), work_dir=str(tmp_path),
                  mounts=[], system_mounts=["/usr"])
    fields.update(overrides)
    return ContainerSpec(**fields)


@pytest.mark.parametrize("overrides, field", [
    ({"id": "bad/id"}, "id"),
    ({"id": "x" * 64}, "id"),
    ({"cgroup": "../escape/c1"}, "cgroup"),
    ({"cgroup": "nocontainer"}, "cgroup"),
    ({"argv": []}, "argv"),
    ({"env": {"A=B": "1"}}, "env.A=B"),
    ({"state_dir": "relative"}, "state_dir"),
    ({"work_dir": "/nonexistent-galaxy-dir"}, "work_dir"),
    ({"system_mounts": ["/"]}, "system_mounts[0]"),
    ({"mounts": [BindMount("/nonexistent-galaxy-src", "/data")]}, "mounts[0].host_path"),
    ({"mounts": [BindMount("/usr", "/data/../etc")]}, "mounts[0].container_path"),
    ({"mounts": [BindMount("/usr", "/proc/x")]}, "mounts[0].container_path"),
    ({"mounts": [BindMount("/usr", "/")]}, "mounts[0].container_path"),
    ({"run_as": (-1, 0)}, "run_as"),
])
def test_bad_specs_name_their_field(tmp_path, overrides, field) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_spec(spec(tmp_path, **overrides))
    assert err.value.field == field


def test_a_good_spec_passes(tmp_path) -> None:
    validate_spec(spec(tmp_path, mounts=[BindMount("/usr", "/galaxy/work/usr", True)], run_as=(65534, 65534)))


def test_resolve_user() -> None:
    assert resolve_user("root") == (0, 0)
    assert resolve_user("0") == (0, 0)
    with pytest.raises(InvalidInput) as err:
        resolve_user("galaxy-no-such-user")
    assert err.value.field == "user"


def test_default_system_mounts_cover_this_python_and_galaxy() -> None:
    import galaxy

    mounts = default_system_mounts()
    assert "/usr" in mounts and "/etc" in mounts
    for needed in (sys.prefix, os.path.dirname(os.path.realpath(sys.executable)),
                   os.path.dirname(galaxy.__file__)):
        assert any(needed == m or needed.startswith(m.rstrip("/") + "/") for m in mounts), needed
    assert len(mounts) == len(set(mounts))


def test_plan_orders_and_flags_mounts(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "logs").mkdir()
    steps = mount_plan(spec(tmp_path, mounts=[BindMount(str(tmp_path / "logs"), "/data/logs"),
                                              BindMount(str(tmp_path / "data"), "/data", True)]))
    root = str(tmp_path / "rootfs")
    assert steps[0][:2] == ("tmpfs", root)
    targets = [s[2] if s[0] in ("bind", "symlink") else s[1] for s in steps]
    assert all(t == root or t.startswith(root + "/") for t in targets)
    binds = {s[2][len(root):]: s for s in steps if s[0] == "bind"}
    assert binds["/usr"][3] & 0x1  # system dirs are read-only
    assert binds["/data"][3] & 0x1 and not binds["/data/logs"][3] & 0x1
    assert targets.index(root + "/data") < targets.index(root + "/data/logs")
    assert not binds["/galaxy/work"][3] & 0x1
    assert ("proc", root + "/proc") in steps


def test_system_dirs_under_tmp_land_on_top_of_the_private_tmp(tmp_path) -> None:
    # A checkout or virtualenv under /tmp (a CI clone) must stay visible inside the container.
    venv = tmp_path / "venv"
    venv.mkdir()
    steps = mount_plan(spec(tmp_path, system_mounts=["/usr", str(venv)]))
    root = str(tmp_path / "rootfs")
    targets = [s[2] if s[0] in ("bind", "symlink") else s[1] for s in steps]
    assert targets.index(root + "/tmp") < targets.index(root + str(venv))
