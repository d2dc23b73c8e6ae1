"""One disk quota: ``ensure_disk`` makes what is missing, ``release_disk`` removes what is there.

Both read the kernel's state (image file, loop bound to it, mount at the mount point) instead of a
record of their own, so the same call creates a disk, re-adopts it after an Agent crash at any
step, and tears down a half-made one:

    image        .part only → remade      missing → made        wrong size → DiskError
    loop         bound to the image → reused (autoclear turned on)      none → attached
    mount point  this image's loop on top → kept    something else → DiskError    empty → mounted

An ext4 disk is a sparse image of exactly the asked size on a loop device, so a writer inside gets
ENOSPC at the quota and the host file never holds more blocks than its size. A tmpfs disk is a
tmpfs mounted with ``size=``. Both are mounted nosuid,nodev and owned by the given uid/gid.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from galaxy.disk._errors import DiskError
from galaxy.disk._image import MIN_SIZE, is_formatted, make_image, part_path, remove_quietly
from galaxy.disk._loop import (
    attach,
    bound_loops,
    detach,
    device_number,
    find_loops,
    open_bound,
    set_autoclear,
)
from galaxy.disk._mounts import MS_NODEV, MS_NOSUID, MS_REMOUNT, mount, mounts_at, unmount
from galaxy.errors import InvalidInput

MEDIUMS = ("ext4", "tmpfs")
TMPFS_SOURCE = "galaxy-disk"  # the source column of our tmpfs mounts, so leaks are recognisable
_MOUNT_FLAGS = MS_NOSUID | MS_NODEV
# The image was a fresh sparse file, so its inode tables already read as zeros: the kernel's
# background zeroing would only turn holes into allocated blocks.
_EXT4_OPTIONS = "noinit_itable"
_MAX_STACK = 16  # bound on mounts stacked at one mount point that release will peel off


@dataclass(frozen=True)
class LoopDisk:
    """A disk as it stands after ``ensure_disk``: where it is mounted and what backs it."""

    image_path: str | None
    loop_device: str | None
    mount_point: str
    size: int
    medium: str = "ext4"


def _check(image_path: str | None, size: int, mount_point: str, medium: str, uid: int, gid: int) -> None:
    if medium not in MEDIUMS:
        raise InvalidInput(f"must be one of {', '.join(MEDIUMS)}, got {medium!r}", field="medium")
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidInput(f"must be an integer number of bytes, got {size!r}", field="size")
    floor = MIN_SIZE if medium == "ext4" else 1
    if size < floor:
        raise InvalidInput(f"must be at least {floor} bytes for {medium}, got {size}", field="size")
    if not isinstance(mount_point, str) or not os.path.isabs(mount_point):
        raise InvalidInput(f"must be an absolute path, got {mount_point!r}", field="mount_point")
    if medium == "ext4" and (not isinstance(image_path, str) or not os.path.isabs(image_path)):
        raise InvalidInput(f"must be an absolute path for ext4, got {image_path!r}", field="image_path")
    if medium == "tmpfs" and image_path is not None:
        raise InvalidInput("must be None for tmpfs (a tmpfs has no image)", field="image_path")
    for name, value in (("uid", uid), ("gid", gid)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"must be an integer >= 0, got {value!r}", field=name)


def _own(mount_point: str, uid: int, gid: int) -> None:
    try:
        st = os.stat(mount_point)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(mount_point, uid, gid)
    except OSError as e:
        raise DiskError(f"cannot give {mount_point} to {uid}:{gid}: {e.strerror}") from e


def _make_mount_point(mount_point: str) -> bool:
    """Make the directory; True when this call made it (so nothing can be mounted on it yet)."""
    try:
        os.makedirs(os.path.dirname(mount_point), exist_ok=True)
        os.mkdir(mount_point)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise DiskError(f"cannot create mount point {mount_point}: {e.strerror}") from e


def _ensure_image(image_path: str, size: int, attached: bool) -> None:
    remove_quietly(part_path(image_path))  # a .part is a crash during mkfs: never attached, never used
    try:
        st = os.stat(image_path)
    except FileNotFoundError:
        make_image(image_path, size)
        return
    except OSError as e:
        raise DiskError(f"cannot stat image {image_path}: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        raise DiskError(f"{image_path} exists and is not a regular file")
    if st.st_size != size:
        raise DiskError(f"{image_path} exists with {st.st_size} bytes but {size} were asked; "
                        "release it first to change the size")
    if not attached and not is_formatted(image_path):
        make_image(image_path, size)


def _ensure_ext4(image_path: str, size: int, mount_point: str, uid: int, gid: int) -> LoopDisk:
    # A new mount point and no image: a first create, nothing to find. The scans of every loop
    # device and of the mount table grow with the containers on the host (~2 ms at 150).
    fresh = _make_mount_point(mount_point) and not os.path.lexists(image_path)
    loops = [] if fresh else find_loops(image_path)
    numbers = {device_number(d): d for d in loops}
    stacked = [] if fresh else mounts_at(mount_point)
    if stacked and stacked[-1].device not in numbers:  # refuse before making anything
        top = stacked[-1]
        raise DiskError(f"{mount_point} already has {top.fstype} {top.source} mounted, "
                        f"not the image {image_path}")
    _ensure_image(image_path, size, bool(loops))
    if stacked:
        device = numbers[stacked[-1].device]
        fd = open_bound(device)
        try:
            set_autoclear(fd)
        finally:
            os.close(fd)
    else:
        if loops:
            device, fd = loops[0], open_bound(loops[0])
        else:
            device, fd = attach(image_path)
        try:  # hold the device open across mount: with autoclear, the last close would detach it
            mount(device, mount_point, "ext4", _MOUNT_FLAGS, _EXT4_OPTIONS)
            set_autoclear(fd)
        finally:
            os.close(fd)
    _own(mount_point, uid, gid)
    return LoopDisk(image_path, device, mount_point, size, "ext4")


def _ensure_tmpfs(size: int, mount_point: str, uid: int, gid: int) -> LoopDisk:
    _make_mount_point(mount_point)
    data = f"size={size},mode=0755,uid={uid},gid={gid}"
    stacked = mounts_at(mount_point)
    if stacked:
        top = stacked[-1]
        if top.fstype != "tmpfs" or top.source != TMPFS_SOURCE:
            raise DiskError(f"{mount_point} already has {top.fstype} {top.source} mounted, not a "
                            "Galaxy tmpfs")
        vfs = os.statvfs(mount_point)
        page = os.sysconf("SC_PAGE_SIZE")
        if vfs.f_blocks * vfs.f_frsize != -(-size // page) * page:
            mount(TMPFS_SOURCE, mount_point, "tmpfs", _MOUNT_FLAGS | MS_REMOUNT, data)
    else:
        mount(TMPFS_SOURCE, mount_point, "tmpfs", _MOUNT_FLAGS, data)
    _own(mount_point, uid, gid)
    return LoopDisk(None, None, mount_point, size, "tmpfs")


def ensure_disk(image_path: str | None, size: int, mount_point: str, *, medium: str = "ext4",
                uid: int = 0, gid: int = 0) -> LoopDisk:
    """Make the disk exist, formatted, attached, mounted at ``mount_point`` and owned by uid:gid.

    Idempotent: a second call (or a call after a crash at any step) does only what is missing and
    returns the same disk. ``medium`` is the filesystem kind: ``"ext4"`` (image + loop) or
    ``"tmpfs"`` (``image_path`` must be None).
    """
    _check(image_path, size, mount_point, medium, uid, gid)
    if medium == "tmpfs":
        return _ensure_tmpfs(size, mount_point, uid, gid)
    assert image_path is not None  # _check enforces it; narrows the type
    return _ensure_ext4(image_path, size, mount_point, uid, gid)


def _image_loops(image_path: str) -> list[str]:
    """Loops bound to the image, including ones whose image file was deleted under them."""
    bound = bound_loops()
    deleted = f"{os.path.realpath(image_path)} (deleted)"
    return find_loops(image_path, bound) + sorted(d for d, b in bound.items() if b == deleted)


def release_disk(image_path: str | None, mount_point: str) -> None:
    """Unmount, detach and delete the disk; whatever of it is already gone is skipped.

    Works on a half-made disk (image without loop, loop without mount, a ``.part``). A mount that is
    still in use is detached lazily: it disappears from the mount point now and its loop device goes
    when the last process using it exits. The mount point directory is removed if empty; its parents
    are left to the caller. Something else mounted at the mount point is left alone.
    """
    if not isinstance(mount_point, str) or not os.path.isabs(mount_point):
        raise InvalidInput(f"must be an absolute path, got {mount_point!r}", field="mount_point")
    if image_path is not None and (not isinstance(image_path, str) or not os.path.isabs(image_path)):
        raise InvalidInput(f"must be an absolute path or None, got {image_path!r}", field="image_path")
    loops = _image_loops(image_path) if image_path is not None else []
    numbers = {device_number(d) for d in loops}
    for _ in range(_MAX_STACK):
        stacked = mounts_at(mount_point)
        if not stacked:
            break
        top = stacked[-1]
        ours = top.device in numbers if image_path is not None else (
            top.fstype == "tmpfs" and top.source == TMPFS_SOURCE)
        if not ours:
            break
        unmount(mount_point)
    for device in loops:
        detach(device)
    if image_path is not None:
        remove_quietly(image_path)
        remove_quietly(part_path(image_path))
    try:
        if not mounts_at(mount_point):
            os.rmdir(mount_point)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
            raise DiskError(f"cannot remove mount point {mount_point}: {e.strerror}") from e


__all__ = ["MEDIUMS", "TMPFS_SOURCE", "LoopDisk", "ensure_disk", "release_disk"]
