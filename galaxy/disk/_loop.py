"""Loop devices through the kernel's ioctls, without the `losetup` binary.

Why ioctls: one `losetup` costs a process spawn (~1 ms) and cannot hold the device open across the
mount, which autoclear needs. The rules this module keeps:

* A device is found again by its backing file (``/sys/block/loopN/loop/backing_file``, then
  confirmed by device and inode), so re-adoption after an Agent crash needs no record of the device.
* New devices are made on demand with ``LOOP_CTL_GET_FREE`` (which creates one when none is free);
  a missing ``/dev/loopN`` node (a container with a static /dev) is made with mknod.
* Attaching sets ``LO_FLAGS_AUTOCLEAR`` and hands the caller an open descriptor: the device stays
  bound while that descriptor or a mount holds it, and detaches itself at the last close. A crash
  between attach and mount therefore leaks nothing, and a lazy unmount frees the device once its
  last user goes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass

from galaxy.disk._errors import DiskError

LOOP_MAJOR = 7
_LOOP_CONTROL = "/dev/loop-control"
_LOOP_CONTROL_DEV = (10, 237)  # misc major, LOOP_CTRL_MINOR

_LOOP_SET_FD = 0x4C00
_LOOP_CLR_FD = 0x4C01
_LOOP_SET_STATUS64 = 0x4C04
_LOOP_GET_STATUS64 = 0x4C05
_LOOP_CONFIGURE = 0x4C0A
_LOOP_CTL_GET_FREE = 0x4C82

LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_DIRECT_IO = 16

# struct loop_info64: lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit (u64), lo_number,
# lo_encrypt_type, lo_encrypt_key_size, lo_flags (u32), lo_file_name[64], lo_crypt_name[64],
# lo_encrypt_key[32], lo_init[2] (u64).
_INFO64 = struct.Struct("=5Q4I64s64s32s2Q")
# struct loop_config: fd, block_size (u32), info (loop_info64), __reserved[8] (u64).
_CONFIG = struct.Struct(f"=2I{_INFO64.size}s8Q")

_ATTACH_ATTEMPTS = 64  # another process may take the free index between GET_FREE and CONFIGURE


@dataclass(frozen=True)
class LoopStatus:
    """What the kernel says a bound loop device is backed by."""

    device: str
    backing_dev: int
    backing_inode: int
    flags: int

    @property
    def autoclear(self) -> bool:
        return bool(self.flags & LO_FLAGS_AUTOCLEAR)


def _decode_huge_dev(dev: int) -> int:
    """The kernel's ``huge_encode_dev`` back into the st_dev form Python's os.stat reports."""
    major = (dev & 0xFFF00) >> 8
    minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    return os.makedev(major, minor)


def _ensure_node(path: str, kind: int, major: int, minor: int) -> None:
    """Make a device node the container's /dev lacks; a racing maker is not an error."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            os.mknod(path, kind | 0o660, os.makedev(major, minor))
        except FileExistsError:
            return
        except OSError as e:
            raise DiskError(f"cannot make device node {path}: {e.strerror}") from e
        return
    if stat.S_IFMT(st.st_mode) != kind:
        raise DiskError(f"{path} exists but is not the expected device node")


def device_node(index: int, dev_dir: str = "/dev") -> str:
    """``/dev/loopN``, made if the kernel has the device but /dev has no node for it."""
    path = f"{dev_dir}/loop{index}"
    if os.path.exists(path):
        return path
    try:
        number = device_number(path)
        major, minor = os.major(number), os.minor(number)
    except DiskError:
        major, minor = LOOP_MAJOR, index
    _ensure_node(path, stat.S_IFBLK, major, minor)
    return path


def _index(device: str) -> int:
    try:
        return int(os.path.basename(device).removeprefix("loop"))
    except ValueError as e:
        raise DiskError(f"{device} is not a loop device") from e


def device_number(device: str) -> int:
    """The st_rdev of ``/dev/loopN`` as the kernel numbers it (from sysfs: the node may be missing)."""
    name = os.path.basename(device)
    try:
        with open(f"/sys/block/{name}/dev") as f:
            major_s, minor_s = f.read().strip().split(":")
        return os.makedev(int(major_s), int(minor_s))
    except (OSError, ValueError) as e:
        raise DiskError(f"no such loop device {device}") from e


def _free_index() -> int:
    _ensure_node(_LOOP_CONTROL, stat.S_IFCHR, *_LOOP_CONTROL_DEV)
    try:
        fd = os.open(_LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise DiskError(f"cannot open {_LOOP_CONTROL}: {e.strerror}") from e
    try:
        return fcntl.ioctl(fd, _LOOP_CTL_GET_FREE)
    except OSError as e:
        raise DiskError(f"no free loop device: {e.strerror}") from e
    finally:
        os.close(fd)


def _status(fd: int) -> tuple[int, int, int]:
    """(backing st_dev, backing inode, flags) of the device open at ``fd``; raises ENXIO if unbound."""
    raw = fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(_INFO64.size))
    fields = _INFO64.unpack(raw)
    return _decode_huge_dev(fields[0]), fields[1], fields[8]


def loop_status(device: str) -> LoopStatus | None:
    """The backing file identity of a bound device; None when it is unbound or gone."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ENXIO:
            return None
        raise DiskError(f"cannot open {device}: {e.strerror}") from e
    try:
        dev, ino, flags = _status(fd)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return None
        raise DiskError(f"cannot read status of {device}: {e.strerror}") from e
    finally:
        os.close(fd)
    return LoopStatus(device, dev, ino, flags)


def bound_loops() -> dict[str, str]:
    """Every bound loop device and the backing path the kernel reports for it (``/dev/loopN`` → path).

    A backing file deleted while attached is reported as ``"<path> (deleted)"``, so it never matches
    a live image of the same name.
    """
    found: dict[str, str] = {}
    try:
        names = os.listdir("/sys/block")
    except OSError as e:
        raise DiskError(f"cannot list /sys/block: {e.strerror}") from e
    for name in names:
        if not name.startswith("loop"):
            continue
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                backing = f.read().rstrip("\n")
        except OSError:  # unbound devices have no loop/ directory
            continue
        found[f"/dev/{name}"] = backing
    return found


def find_loops(image_path: str, bound: dict[str, str] | None = None) -> list[str]:
    """All loop devices bound to this image file (normally at most one), in device order."""
    try:
        st = os.stat(image_path)
    except (FileNotFoundError, NotADirectoryError):  # no image (or its host disk path is not a dir)
        return []
    real = os.path.realpath(image_path)
    devices = []
    for device, backing in (bound_loops() if bound is None else bound).items():
        if backing != real:
            continue
        status = loop_status(device_node(_index(device)))
        if status is not None and (status.backing_dev, status.backing_inode) == (st.st_dev, st.st_ino):
            devices.append(device)
    return sorted(devices, key=_index)


def find_loop(image_path: str) -> str | None:
    """The loop device this image is attached to, or None (what ``losetup -j IMAGE`` answers)."""
    devices = find_loops(image_path)
    return devices[0] if devices else None


def _configure(fd: int, backing_fd: int, flags: int) -> None:
    info = _INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, flags, b"", b"", b"", 0, 0)
    config = _CONFIG.pack(backing_fd, 0, info, *([0] * 8))
    try:
        fcntl.ioctl(fd, _LOOP_CONFIGURE, config)
    except OSError as e:
        if e.errno not in (errno.ENOTTY, errno.EINVAL):
            raise
        if flags & LO_FLAGS_DIRECT_IO:  # the backing filesystem refuses direct I/O: go buffered
            _configure(fd, backing_fd, flags & ~LO_FLAGS_DIRECT_IO)
            return
        if e.errno == errno.EINVAL:
            raise
        # Kernels before 5.8 have no LOOP_CONFIGURE: bind, then set the flags.
        fcntl.ioctl(fd, _LOOP_SET_FD, backing_fd)
        fcntl.ioctl(fd, _LOOP_SET_STATUS64, info)


def attach(image_path: str) -> tuple[str, int]:
    """Bind the image to a free loop device with autoclear and direct I/O.

    Returns the device and an open descriptor on it: the caller mounts while holding the descriptor,
    then closes it. Closing without mounting detaches the device again (autoclear).
    """
    try:
        backing_fd = os.open(image_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise DiskError(f"cannot open image {image_path}: {e.strerror}") from e
    try:
        last: OSError | None = None
        for _ in range(_ATTACH_ATTEMPTS):
            device = device_node(_free_index())
            try:
                fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            except OSError as e:
                if e.errno in (errno.ENXIO, errno.ENOENT):  # removed between GET_FREE and open
                    last = e
                    continue
                raise DiskError(f"cannot open {device}: {e.strerror}") from e
            try:
                _configure(fd, backing_fd, LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO)
            except OSError as e:
                os.close(fd)
                if e.errno == errno.EBUSY:  # another process bound it first; ask for another
                    last = e
                    continue
                raise DiskError(f"cannot attach {image_path} to {device}: {e.strerror}") from e
            return device, fd
        raise DiskError(f"no loop device could be bound to {image_path} after {_ATTACH_ATTEMPTS} "
                        f"attempts: {last.strerror if last else 'busy'}")
    finally:
        os.close(backing_fd)


def open_bound(device: str) -> int:
    """An open descriptor on an already bound device, for the same hold-then-mount dance as attach."""
    try:
        return os.open(device_node(_index(device)), os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise DiskError(f"cannot open {device}: {e.strerror}") from e


def set_autoclear(fd: int) -> None:
    """Turn autoclear on for a device bound without it (one attached by hand, or by `losetup`).

    Call it only while the device is mounted or otherwise held: autoclear acts at the last close.
    """
    try:
        raw = bytearray(fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(_INFO64.size)))
        fields = list(_INFO64.unpack(raw))
        if fields[8] & LO_FLAGS_AUTOCLEAR:
            return
        fields[8] |= LO_FLAGS_AUTOCLEAR
        fcntl.ioctl(fd, _LOOP_SET_STATUS64, _INFO64.pack(*fields))
    except OSError as e:
        raise DiskError(f"cannot set autoclear on loop device: {e.strerror}") from e


def detach(device: str) -> None:
    """Unbind the device; a device still held (mounted elsewhere, open) detaches at its last close.

    Already unbound or gone is success, so release can run any number of times.
    """
    if not os.path.exists(device) and os.path.exists(f"/sys/block/{os.path.basename(device)}"):
        device_node(_index(device))
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENXIO):
            return
        raise DiskError(f"cannot open {device}: {e.strerror}") from e
    try:
        fcntl.ioctl(fd, _LOOP_CLR_FD)
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise DiskError(f"cannot detach {device}: {e.strerror}") from e
    finally:
        os.close(fd)


__all__ = [
    "LoopStatus", "attach", "bound_loops", "detach", "device_node", "device_number", "find_loop", "find_loops",
    "loop_status", "open_bound", "set_autoclear",
]
