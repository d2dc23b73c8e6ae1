"""Mount, unmount and read the mount table, through libc rather than the mount(8) binary.

Why libc: mount(8) forks a process and, for ext4, probes the device with libblkid; we already know
the filesystem type. The mount table is read from ``/proc/self/mountinfo`` because it carries the
device number of each mount (``7:N`` for a loop), which identifies a loop disk without trusting
the source string.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from dataclasses import dataclass

from galaxy.disk._errors import DiskError

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo, the fields this package needs."""

    mount_id: int
    device: int  # st_dev form (os.makedev) of the mounted filesystem
    mount_point: str
    fstype: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text (see proc(5)); malformed lines are skipped, never fatal."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            entries.append(MountEntry(
                mount_id=int(fields[0]),
                device=os.makedev(int(major), int(minor)),
                mount_point=_unescape(fields[4]),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
                super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
            ))
        except (ValueError, IndexError):
            continue
    return entries


def read_mounts() -> list[MountEntry]:
    try:
        with open("/proc/self/mountinfo") as f:
            return parse_mountinfo(f.read())
    except OSError as e:
        raise DiskError(f"cannot read /proc/self/mountinfo: {e.strerror}") from e


def mounts_at(mount_point: str, entries: list[MountEntry] | None = None) -> list[MountEntry]:
    """Mounts stacked on this path, bottom first (the last one is what a process sees there)."""
    real = os.path.realpath(mount_point)
    return [e for e in (read_mounts() if entries is None else entries) if e.mount_point == real]


def mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise DiskError(f"cannot mount {fstype} {source} at {target}: {os.strerror(err)}")


def unmount(target: str) -> None:
    """Unmount the top mount at ``target``; if it is busy, detach it lazily instead.

    A lazy unmount hides the disk at once; the filesystem (and, by autoclear, its loop device) goes
    when the last process using it closes its files. Not mounted is success.
    """
    path = target.encode()
    if _libc.umount2(path, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and _libc.umount2(path, MNT_DETACH) == 0:
        return
    if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more), or no such path
        return
    raise DiskError(f"cannot unmount {target}: {os.strerror(ctypes.get_errno() or err)}")


__all__ = [
    "MNT_DETACH", "MS_NODEV", "MS_NOSUID", "MS_REMOUNT", "MountEntry", "mount", "mounts_at",
    "parse_mountinfo", "read_mounts", "unmount",
]
