"""The quota holds: real loop devices, ext4 and tmpfs, filled until the kernel says ENOSPC."""

from __future__ import annotations

import hashlib
import os

import pytest

from galaxy.disk import ensure_disk, release_disk
from tests.disk._support import NOBODY, fill, host_allocated

pytestmark = pytest.mark.root

MiB = 1 << 20


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_writer_gets_enospc_at_its_size_and_nothing_outside_grows(disk_dir: str) -> None:
    size = 16 * MiB
    image_a, mount_a = f"{disk_dir}/imgs/a.img", f"{disk_dir}/mnt/a"
    image_b, mount_b = f"{disk_dir}/imgs/b.img", f"{disk_dir}/mnt/b"
    ensure_disk(image_a, size, mount_a)
    ensure_disk(image_b, size, mount_b)
    with open(f"{mount_b}/marker", "wb") as f:
        f.write(os.urandom(MiB))
    os.sync()
    marker = _digest(f"{mount_b}/marker")
    b_free = os.statvfs(mount_b).f_bfree
    host_before = host_allocated(disk_dir)

    written = fill(mount_a)
    os.sync()

    assert size // 2 < written <= size  # the quota, not some other limit, stopped the writer
    st = os.stat(image_a)
    assert st.st_size == size
    assert st.st_blocks * 512 <= st.st_size
    assert host_allocated(disk_dir) - host_before <= size
    assert _digest(f"{mount_b}/marker") == marker
    assert os.statvfs(mount_b).f_bfree == b_free
    # the full disk still reads back what was written
    with open(f"{mount_a}/fill-0", "rb") as f:
        assert f.read(65536) == b"\xa5" * 65536


def test_an_unprivileged_owner_can_fill_its_disk(disk_dir: str) -> None:
    size = 8 * MiB
    disk = ensure_disk(f"{disk_dir}/imgs/u.img", size, f"{disk_dir}/mnt/u", uid=NOBODY, gid=NOBODY)
    st = os.stat(disk.mount_point)
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    written = fill(disk.mount_point, uid=NOBODY, gid=NOBODY)
    assert size // 2 < written <= size  # no blocks are reserved for root
    assert os.stat(f"{disk.mount_point}/fill-0").st_uid == NOBODY


def test_disks_are_mounted_without_setuid_or_devices(disk_dir: str) -> None:
    disk = ensure_disk(f"{disk_dir}/imgs/s.img", 2 * MiB, f"{disk_dir}/mnt/s")
    flags = os.statvfs(disk.mount_point).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV


def test_tmpfs_disk_has_the_asked_size_and_owner(disk_dir: str) -> None:
    size, mount_point = 4 * MiB, f"{disk_dir}/mnt/t"
    disk = ensure_disk(None, size, mount_point, medium="tmpfs", uid=NOBODY, gid=NOBODY)
    assert (disk.image_path, disk.loop_device, disk.medium) == (None, None, "tmpfs")
    written = fill(mount_point, uid=NOBODY, gid=NOBODY)
    assert size - MiB <= written <= size
    assert ensure_disk(None, size, mount_point, medium="tmpfs", uid=NOBODY, gid=NOBODY) == disk
    resized = ensure_disk(None, 2 * size, mount_point, medium="tmpfs", uid=NOBODY, gid=NOBODY)
    vfs = os.statvfs(mount_point)
    assert resized.size == vfs.f_blocks * vfs.f_frsize == 2 * size
    release_disk(None, mount_point)
    assert not os.path.exists(mount_point)
