"""Disk quotas for containers: sparse ext4 images on loop devices, or sized tmpfs mounts.

Used only by the Agent, with plain values (bytes, paths, medium names); it knows nothing of jobs or
the mesh. The Agent keeps a :class:`DiskPool` of its host disks to decide where each requested disk
goes, then makes each one with :func:`ensure_disk` and removes it with :func:`release_disk`. Both
are idempotent and read the kernel's state, so re-adopting disks after an Agent restart is the same
call as making them; :func:`scan_images` finds leftovers to release. See docs/disk.md.
"""

from __future__ import annotations

from galaxy.disk._disk import LoopDisk, ensure_disk, release_disk
from galaxy.disk._errors import DiskError
from galaxy.disk._image import MIN_SIZE, ImageRecord, agent_dir, image_path, scan_images
from galaxy.disk._loop import find_loop
from galaxy.disk._pool import DiskPool, DiskRequest, HostDisk, Placement

__all__ = [
    "MIN_SIZE", "DiskError", "DiskPool", "DiskRequest", "HostDisk", "ImageRecord", "LoopDisk",
    "Placement", "agent_dir", "ensure_disk", "find_loop", "image_path", "release_disk", "scan_images",
]
