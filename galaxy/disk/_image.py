"""Image files: where they live, how they are made, how leftovers are found.

An image is made as ``<name>.part`` (a sparse copy of a formatted template of the same size) and
renamed to its final name only when whole, so "the image exists" means "the image is a whole
filesystem" and a crash mid-copy leaves only a ``.part`` that the next ensure or release throws away.

Why a template: ``mkfs.ext4`` is a process spawn and ~6 ms of a container's create, on every create;
a fresh filesystem of a given size is the same bytes every time, ~600 KiB of metadata in a sparse
1 GiB file, which a hole-aware ``copy_file_range`` copies in ~0.3 ms. The template is made once per
size with mkfs (``<dir of the owner dirs>/.ext4-<size>-<mkfs digest>.template``, built as ``.part``
and renamed) and reused by every image of that size beside it. The copies share the filesystem
UUID, which nothing here reads (disks are mounted by loop device, never by UUID). Their root
directory belongs to root until ``ensure_disk`` gives it to the owner.

Layout (``image_path``): ``<host disk path>/galaxy-<agent id>/<owner>/<index>.img``. The Agent id in
the path keeps several Agents on one machine apart; the owner (container id) and index in it let a
restarted Agent tell from the file name alone which container a leftover belonged to.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import threading
from dataclasses import dataclass

from galaxy.disk._errors import DiskError
from galaxy.disk._loop import bound_loops, device_number, find_loops
from galaxy.disk._mounts import read_mounts
from galaxy.errors import InvalidInput

IMAGE_SUFFIX = ".img"
PART_SUFFIX = ".img.part"
MIN_SIZE = 1 << 20  # mkfs.ext4 fails below 128 KiB; a 1 MiB floor leaves room for files after metadata
_EXT4_MAGIC_OFFSET = 1024 + 56
_EXT4_MAGIC = b"\x53\xef"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")

# -m 0: no blocks reserved for root, so the service gets every byte it asked for.
# nodiscard: mke2fs would otherwise punch holes through the whole (already sparse) file.
# lazy_*_init: a fresh sparse file reads as zeros, so zeroing inode tables and journal is wasted I/O.
MKFS_ARGS = ("mkfs.ext4", "-q", "-F", "-m", "0", "-L", "galaxy")
MKFS_EXTENDED = "nodiscard,lazy_itable_init=1,lazy_journal_init=1"


def _component(value: str, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise InvalidInput(f"must be a plain file name (letters, digits, _.@:+-), got {value!r}",
                           field=field)
    return value


def image_path(root: str, agent_id: str, owner: str, index: int) -> str:
    """Where the image of an owner's ``index``-th disk lives on the host disk mounted at ``root``."""
    if not os.path.isabs(root):
        raise InvalidInput(f"must be an absolute path, got {root!r}", field="root")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InvalidInput(f"must be an integer >= 0, got {index!r}", field="index")
    return os.path.join(root, f"galaxy-{_component(agent_id, 'agent_id')}",
                        _component(owner, "owner"), f"{index}{IMAGE_SUFFIX}")


def agent_dir(root: str, agent_id: str) -> str:
    """The directory of one Agent's images on a host disk (what ``scan_images`` walks)."""
    return os.path.dirname(os.path.dirname(image_path(root, agent_id, "x", 0)))


def is_formatted(path: str) -> bool:
    """Whether the file starts like an ext2/3/4 filesystem (superblock magic)."""
    try:
        with open(path, "rb") as f:
            f.seek(_EXT4_MAGIC_OFFSET)
            return f.read(2) == _EXT4_MAGIC
    except OSError:
        return False


TEMPLATE_SUFFIX = ".template"
MAX_TEMPLATES = 8
_TEMPLATES_LOCK = threading.Lock()  # one maker per template; the Agent creates on several threads
_MKFS_DIGEST = hashlib.blake2b(repr((MKFS_ARGS, MKFS_EXTENDED)).encode(), digest_size=4).hexdigest()
_COPY_CHUNK = 1 << 30


def template_path(path: str, size: int) -> str:
    """The template an image at ``path`` of ``size`` bytes is copied from (beside its owner's dir)."""
    return os.path.join(os.path.dirname(os.path.dirname(path)), f".ext4-{size}-{_MKFS_DIGEST}{TEMPLATE_SUFFIX}")


def make_image(path: str, size: int) -> None:
    """Create ``path`` as a formatted sparse image of exactly ``size`` bytes, atomically."""
    template = template_path(path, size)
    with _TEMPLATES_LOCK:
        if not is_formatted(template):
            _format(template, size)
            _prune_templates(os.path.dirname(template), keep=template)
        else:
            os.utime(template)  # recently used: the last to be pruned
    part = part_path(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _sparse_copy(template, part)
        os.rename(part, path)
    except OSError as e:
        remove_quietly(part)
        raise DiskError(f"cannot make image {path} from {template}: {e.strerror}") from e


def _prune_templates(directory: str, keep: str) -> None:
    """Keep the MAX_TEMPLATES most recently used templates of ``directory``: one per disk size asked,
    so a cluster with many sizes does not grow the Agent's directories without end."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".ext4-") and n.endswith(TEMPLATE_SUFFIX)]
        paths = sorted((os.path.join(directory, n) for n in names), key=os.path.getmtime, reverse=True)
    except OSError:
        return
    for path in paths[MAX_TEMPLATES:]:
        if path != keep:
            remove_quietly(path)


def _format(path: str, size: int) -> None:
    """mkfs.ext4 a fresh sparse file of ``size`` bytes as ``path`` (made as .part, then renamed)."""
    part = path + ".part"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(part, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
    except OSError as e:
        raise DiskError(f"cannot create image {part}: {e.strerror}") from e
    args = [*MKFS_ARGS, "-E", MKFS_EXTENDED, part]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as e:
        remove_quietly(part)
        raise DiskError(f"cannot run mkfs.ext4: {e.strerror}") from e
    if done.returncode != 0:
        remove_quietly(part)
        raise DiskError(f"mkfs.ext4 failed on {part} (exit {done.returncode}): "
                        f"{(done.stderr or done.stdout).strip()[:500]}")
    try:
        os.rename(part, path)
    except OSError as e:
        remove_quietly(part)
        raise DiskError(f"cannot rename {part} to {path}: {e.strerror}") from e


def _sparse_copy(source: str, target: str) -> None:
    """Copy ``source`` to a new ``target`` (mode 0600) of the same size, writing only its data
    extents (SEEK_DATA/SEEK_HOLE), so the copy is as sparse as the source."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    data = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as e:
                    if e.errno == errno.ENXIO:  # only a hole is left
                        break
                    raise
                hole = os.lseek(src, data, os.SEEK_HOLE)
                _copy_range(src, dst, data, hole - data)
                offset = hole
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_range(src: int, dst: int, offset: int, length: int) -> None:
    while length > 0:
        try:
            done = os.copy_file_range(src, dst, min(length, _COPY_CHUNK), offset, offset)
        except OSError as e:  # another filesystem or an old kernel: plain reads and writes
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            done = os.pwrite(dst, os.pread(src, min(length, 1 << 20), offset), offset)
        if done <= 0:
            raise OSError(errno.EIO, f"short copy at offset {offset}")
        offset += done
        length -= done


def part_path(path: str) -> str:
    """Where the image is built before the rename that makes it whole."""
    return path[: -len(IMAGE_SUFFIX)] + PART_SUFFIX if path.endswith(IMAGE_SUFFIX) else path + ".part"


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise DiskError(f"cannot remove {path}: {e.strerror}") from e


@dataclass(frozen=True)
class ImageRecord:
    """An image file found on disk, and what the kernel still holds of it."""

    path: str
    owner: str | None  # from the layout <owner>/<index>.img; None if the name does not fit it
    index: int | None
    size: int  # apparent size: the disk's quota
    allocated: int  # bytes the host disk really spends on it (st_blocks * 512)
    complete: bool  # False for a .part left by a crash during mkfs
    loop_devices: tuple[str, ...]
    mount_points: tuple[str, ...]


def scan_images(directory: str) -> list[ImageRecord]:
    """Every image (and half-made ``.part``) under ``directory``, for finding leftovers after a crash.

    The Agent compares these with the containers it knows and releases the rest. Mount points of
    the images' loop devices are reported from this process's mount namespace.
    """
    bound = bound_loops()
    mounts = read_mounts()
    records = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            if not (name.endswith(IMAGE_SUFFIX) or name.endswith(PART_SUFFIX)):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            complete = name.endswith(IMAGE_SUFFIX)
            stem = name[: -len(IMAGE_SUFFIX if complete else PART_SUFFIX)]
            owner = os.path.basename(dirpath) if stem.isdigit() and dirpath != directory else None
            devices = tuple(find_loops(path, bound))
            numbers = {device_number(d) for d in devices}
            records.append(ImageRecord(
                path=path, owner=owner, index=int(stem) if owner is not None else None,
                size=st.st_size, allocated=st.st_blocks * 512, complete=complete,
                loop_devices=devices,
                mount_points=tuple(m.mount_point for m in mounts if m.device in numbers),
            ))
    return records


__all__ = [
    "IMAGE_SUFFIX", "MIN_SIZE", "ImageRecord", "agent_dir", "image_path", "is_formatted", "make_image",
    "part_path", "remove_quietly", "scan_images", "template_path",
]
