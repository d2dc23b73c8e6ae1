"""The Agent's host tuning: cgroup2 remounted with favordynmods (see galaxy/isolate/_tuning.py)."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
from pathlib import Path

import pytest

from galaxy.isolate import favor_dynamic_moves
from galaxy.isolate._tuning import OPTION, cgroup2_mounts

libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT = 32
VFS_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "relatime": 1 << 21}

HYBRID = """\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
"""


def test_cgroup2_mounts_are_read_with_their_superblock_options(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(HYBRID)
    assert cgroup2_mounts(str(info)) == [("/sys/fs/cgroup/unified", frozenset({"rw", "nsdelegate"}))]
    info.write_text(HYBRID.replace(" - cgroup2 cgroup2 rw,nsdelegate", " - cgroup2 cgroup2 rw,favordynmods"))
    assert favor_dynamic_moves(str(info)) is True  # already on: nothing to do, nothing run


def test_a_host_without_cgroup2_or_where_the_remount_fails_keeps_working(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(HYBRID.splitlines()[0] + "\n")
    with caplog.at_level(logging.WARNING):
        assert favor_dynamic_moves(str(info)) is False
    assert "no cgroup2 mount" in caplog.text
    if os.geteuid() != 0:
        return
    not_a_mount = tmp_path / "cg"
    not_a_mount.mkdir()
    info.write_text(f"31 30 0:27 / {not_a_mount} rw,relatime shared:10 - cgroup2 cgroup2 rw\n")
    with caplog.at_level(logging.WARNING):
        assert favor_dynamic_moves(str(info)) is False
    assert f"cannot remount {not_a_mount}" in caplog.text


def _remount_without_option(point: str, options: frozenset[str], mount_flags: set[str]) -> None:
    """Turn favordynmods off (mount(2) with the mount's own flags and the other superblock options):
    util-linux's remount keeps it, so the test needs the syscall to start from a host without it."""
    flags = MS_REMOUNT | sum(bit for name, bit in VFS_FLAGS.items() if name in mount_flags)
    data = ",".join(sorted(options - {OPTION, "rw", "ro"})).encode()
    if libc.mount(b"none", point.encode(), b"cgroup2", ctypes.c_ulong(flags), data or None) != 0:
        raise OSError(ctypes.get_errno(), f"remount {point}")


def _mount_flags(point: str) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == point:
                return set(fields[5].split(","))
    raise AssertionError(f"{point} is not mounted")


@pytest.mark.root
def test_the_hosts_cgroup2_mount_gets_favordynmods_and_keeps_its_other_options() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    mounts = cgroup2_mounts()
    assert mounts, "this host has no cgroup2 mount"
    point, options = mounts[0]
    try:
        if OPTION in options:
            _remount_without_option(point, options, _mount_flags(point))
        assert OPTION not in cgroup2_mounts()[0][1]
        flags_before = _mount_flags(point)
        assert favor_dynamic_moves() is True
        after_point, after = cgroup2_mounts()[0]
        assert after_point == point and OPTION in after
        assert options - {OPTION} <= after  # nsdelegate and the like survive the remount
        assert _mount_flags(point) == flags_before  # so do nosuid, nodev, noexec
        assert favor_dynamic_moves() is True  # idempotent
    finally:
        subprocess.run(["mount", "-o", f"remount,{OPTION}", point], check=False)
