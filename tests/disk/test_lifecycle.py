"""ensure/release against the real kernel: idempotence, re-adoption after a crash, clean release."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from galaxy.disk import DiskError, LoopDisk, ensure_disk, find_loop, image_path, release_disk, scan_images
from galaxy.disk._image import MAX_TEMPLATES, is_formatted, template_path
from galaxy.disk._loop import device_node
from tests.disk._support import in_proc_mounts, losetup_lists, wait_for

pytestmark = pytest.mark.root

MiB = 1 << 20
SIZE = 4 * MiB


def _paths(disk_dir: str, name: str = "c1") -> tuple[str, str]:
    return image_path(disk_dir, "agent-t", name, 0), f"{disk_dir}/mnt/{name}"


def _mount_count(mount_point: str) -> int:
    with open("/proc/mounts") as f:
        return sum(1 for line in f if line.split()[1] == mount_point)


def _write_marker(mount_point: str) -> None:
    with open(f"{mount_point}/marker", "w") as f:
        f.write("kept")
        f.flush()
        os.fsync(f.fileno())


def _autoclear(device: str) -> bool:
    with open(f"/sys/block/{os.path.basename(device)}/loop/autoclear") as f:
        return f.read().strip() == "1"


def _assert_gone(image: str, mount_point: str) -> None:
    assert not in_proc_mounts(mount_point)
    assert not losetup_lists(image)
    assert not os.path.exists(image) and not os.path.exists(image + ".part")
    assert not os.path.exists(mount_point)


def test_ensure_twice_changes_nothing(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    first = ensure_disk(image, SIZE, mount_point, uid=1000, gid=1000)
    _write_marker(mount_point)
    again = ensure_disk(image, SIZE, mount_point, uid=1000, gid=1000)
    assert again == first
    assert _mount_count(mount_point) == 1
    assert find_loop(image) == first.loop_device and first.loop_device is not None
    assert _autoclear(first.loop_device)
    with open(f"{mount_point}/marker") as f:
        assert f.read() == "kept"


def _crash_mounted(image: str, mount_point: str) -> str | None:
    return find_loop(image)


def _crash_attached_unmounted(image: str, mount_point: str) -> str | None:
    subprocess.run(["umount", mount_point], check=True)
    wait_for(lambda: find_loop(image) is None, "autoclear to detach the loop")
    out = subprocess.run(["losetup", "--find", "--show", image], check=True, capture_output=True, text=True)
    return out.stdout.strip()  # bound by hand, without autoclear, as an older Agent might have left it


def _crash_detached(image: str, mount_point: str) -> str | None:
    subprocess.run(["umount", mount_point], check=True)
    wait_for(lambda: find_loop(image) is None, "autoclear to detach the loop")
    return None


@pytest.mark.parametrize("crash", [_crash_mounted, _crash_attached_unmounted, _crash_detached],
                         ids=["attached+mounted", "attached-unmounted", "formatted-detached"])
def test_ensure_after_a_crash_readopts_the_disk_with_its_data(
        disk_dir: str, crash: Callable[[str, str], str | None]) -> None:
    image, mount_point = _paths(disk_dir)
    ensure_disk(image, SIZE, mount_point)
    _write_marker(mount_point)
    left_device = crash(image, mount_point)

    disk = ensure_disk(image, SIZE, mount_point)

    if left_device is not None:
        assert disk.loop_device == left_device
    assert disk.loop_device is not None and _autoclear(disk.loop_device)
    assert _mount_count(mount_point) == 1
    with open(f"{mount_point}/marker") as f:
        assert f.read() == "kept"
    release_disk(image, mount_point)
    _assert_gone(image, mount_point)


def test_ensure_after_a_crash_during_mkfs_starts_over(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    os.makedirs(os.path.dirname(image))
    with open(image + ".part", "wb") as f:
        f.truncate(SIZE)
    disk = ensure_disk(image, SIZE, mount_point)
    assert os.path.ismount(mount_point) and disk.loop_device is not None
    assert not os.path.exists(image + ".part")


def test_a_crash_between_attach_and_mount_leaks_no_loop(disk_dir: str) -> None:
    image, _ = _paths(disk_dir)
    os.makedirs(os.path.dirname(image))
    with open(image, "wb") as f:
        f.truncate(SIZE)
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, os\nfrom galaxy.disk._loop import attach\n"
                              "print(attach(sys.argv[1])[0], flush=True)\nos.kill(os.getpid(), 9)\n",
                              image], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    device = child.stdout.readline().strip()
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert device.startswith("/dev/loop")
    wait_for(lambda: not losetup_lists(image), "the killed attacher's loop to clear itself")


def test_release_leaves_nothing_and_can_repeat(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    ensure_disk(image, SIZE, mount_point)
    _write_marker(mount_point)
    release_disk(image, mount_point)
    _assert_gone(image, mount_point)
    release_disk(image, mount_point)  # again: nothing to do, no error
    release_disk(*_paths(disk_dir, "never-made"))


def test_release_of_a_half_made_disk(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    ensure_disk(image, SIZE, mount_point)
    subprocess.run(["umount", mount_point], check=True)
    wait_for(lambda: find_loop(image) is None, "autoclear to detach the loop")
    subprocess.run(["losetup", "--find", image], check=True)  # attached, not mounted, no autoclear
    with open(image + ".part", "wb") as f:
        f.truncate(SIZE)
    release_disk(image, mount_point)
    _assert_gone(image, mount_point)


def test_release_while_in_use_unmounts_now_and_frees_the_loop_when_the_user_exits(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    ensure_disk(image, SIZE, mount_point)
    user = subprocess.Popen(["sleep", "60"], cwd=mount_point)
    try:
        release_disk(image, mount_point)
        assert not in_proc_mounts(mount_point)
        assert not os.path.exists(image)
    finally:
        user.kill()
        user.wait()
    wait_for(lambda: not any(f"{image} (deleted)" in line for line in subprocess.run(
        ["losetup", "-a"], capture_output=True, text=True, check=False).stdout.splitlines()),
        "the lazily unmounted disk's loop to detach")


def test_more_disks_than_the_preexisting_loop_devices(disk_dir: str) -> None:
    disks = []
    for i in range(12):
        image, mount_point = _paths(disk_dir, f"c{i}")
        disks.append(ensure_disk(image, 2 * MiB, mount_point))
    devices = {d.loop_device for d in disks}
    assert len(devices) == 12
    for d in disks:
        _write_marker(d.mount_point)
    for i in range(12):
        release_disk(*_paths(disk_dir, f"c{i}"))
    for i in range(12):
        _assert_gone(*_paths(disk_dir, f"c{i}"))


def test_a_mount_point_holding_something_else_is_refused(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    os.makedirs(mount_point)
    subprocess.run(["mount", "-t", "tmpfs", "galaxy-test-other", mount_point], check=True)
    with pytest.raises(DiskError, match="already has tmpfs"):
        ensure_disk(image, SIZE, mount_point)
    assert not os.path.exists(image)
    release_disk(image, mount_point)  # not ours: left mounted
    assert in_proc_mounts(mount_point)


def test_an_image_of_another_size_is_refused(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    ensure_disk(image, SIZE, mount_point)
    with pytest.raises(DiskError, match="release it first"):
        ensure_disk(image, 2 * SIZE, mount_point)
    assert os.path.getsize(image) == SIZE


def test_scan_finds_leftovers_with_their_owner_and_state(disk_dir: str) -> None:
    mounted_image, mount_point = _paths(disk_dir, "c1")
    ensure_disk(mounted_image, SIZE, mount_point)
    detached_image, other_mount = _paths(disk_dir, "c2")
    ensure_disk(detached_image, SIZE, other_mount)
    subprocess.run(["umount", other_mount], check=True)
    with open(os.path.join(os.path.dirname(detached_image), "1.img.part"), "wb") as f:
        f.truncate(SIZE)

    records = scan_images(os.path.dirname(os.path.dirname(mounted_image)))

    assert [(r.owner, r.index, r.complete) for r in records] == [
        ("c1", 0, True), ("c2", 0, True), ("c2", 1, False)]
    by_owner = {(r.owner, r.index): r for r in records}
    assert by_owner["c1", 0].mount_points == (mount_point,)
    assert by_owner["c1", 0].loop_devices == (find_loop(mounted_image),)
    assert by_owner["c2", 0].loop_devices == () and by_owner["c2", 0].mount_points == ()
    assert all(r.size == SIZE and r.allocated <= r.size for r in records)


def test_a_missing_loop_node_is_made_with_the_kernels_numbers(disk_dir: str) -> None:
    dev_dir = f"{disk_dir}/dev"
    os.makedirs(dev_dir)
    path = device_node(0, dev_dir)  # loop0 exists in the kernel; this /dev has no node for it
    st = os.stat(path)
    assert stat.S_ISBLK(st.st_mode)
    assert st.st_rdev == os.stat("/dev/loop0").st_rdev
    assert device_node(0, dev_dir) == path  # already there: left as is


def test_disks_made_from_many_threads_at_once_each_get_their_own_loop(disk_dir: str) -> None:
    def make(name: str) -> LoopDisk:
        image, mount_point = _paths(disk_dir, name)
        return ensure_disk(image, SIZE, mount_point)

    names = [f"t{i}" for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        disks = list(pool.map(make, names))
    assert len({d.loop_device for d in disks}) == len(names)
    assert all(os.path.ismount(d.mount_point) for d in disks)
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda n: release_disk(*_paths(disk_dir, n)), names))
    for n in names:
        _assert_gone(*_paths(disk_dir, n))


def test_disks_of_one_size_come_from_one_template_and_share_nothing(disk_dir: str) -> None:
    size = 64 * MiB
    (first, first_mnt), (second, second_mnt) = _paths(disk_dir, "c1"), _paths(disk_dir, "c2")
    ensure_disk(first, size, first_mnt, uid=65534, gid=65534)
    ensure_disk(second, size, second_mnt, uid=1, gid=1)
    template = template_path(first, size)
    assert template == template_path(second, size) and is_formatted(template)
    assert os.stat(template).st_blocks * 512 < 4 * MiB  # sparse: metadata only
    for image in (first, second):
        assert os.stat(image).st_size == size and os.stat(image).st_blocks * 512 < 4 * MiB
    _write_marker(first_mnt)
    assert not os.path.exists(f"{second_mnt}/marker")
    assert (os.stat(first_mnt).st_uid, os.stat(second_mnt).st_uid) == (65534, 1)
    for image, mount_point in ((first, first_mnt), (second, second_mnt)):
        release_disk(image, mount_point)
        _assert_gone(image, mount_point)


def test_a_damaged_template_is_made_again(disk_dir: str) -> None:
    image, mount_point = _paths(disk_dir)
    template = template_path(image, SIZE)
    os.makedirs(os.path.dirname(template), exist_ok=True)
    with open(template, "wb") as f:  # not a filesystem: e.g. a crash of the host mid-write
        f.truncate(SIZE)
    ensure_disk(image, SIZE, mount_point)
    assert is_formatted(template)
    _write_marker(mount_point)
    release_disk(image, mount_point)


def test_templates_are_kept_for_the_most_recent_sizes_only(disk_dir: str) -> None:
    for n in range(MAX_TEMPLATES + 3):
        image, mount_point = _paths(disk_dir, f"c{n}")
        ensure_disk(image, SIZE + n * MiB, mount_point)
        release_disk(image, mount_point)
    templates = [n for n in os.listdir(os.path.dirname(template_path(image, SIZE))) if n.endswith(".template")]
    assert len(templates) == MAX_TEMPLATES
    assert os.path.basename(template_path(image, SIZE + (MAX_TEMPLATES + 2) * MiB)) in templates
