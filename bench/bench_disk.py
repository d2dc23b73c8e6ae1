"""Disk quotas: ensure + release of a 64 MiB loop-mounted ext4 disk, against the same steps by hand.

The baseline is what an operator's script would do with the standard tools, run in the same loop:
``truncate``, ``mkfs.ext4`` (same options), ``losetup --find --show``, ``mount``, ``umount``,
``losetup -d``, ``rm``. Galaxy runs mkfs (same options) once per size, for a template it then copies
hole-aware (the first round pays for it), and binds the loop and mounts through the kernel's ioctls
and libc. Rounds alternate between the two so machine noise hits both alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

from bench._table import Row
from galaxy.disk import ensure_disk, release_disk
from galaxy.disk._image import MKFS_ARGS, MKFS_EXTENDED

SIZE = 64 << 20
ROUNDS = 40


def _by_hand(image: str, mount_point: str) -> tuple[float, float]:
    """The bare steps, timed: (make seconds, teardown seconds)."""
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, text=True)  # noqa: E731
    started = time.perf_counter()
    run("truncate", "-s", str(SIZE), image)
    run(*MKFS_ARGS, "-E", MKFS_EXTENDED, image)
    device = run("losetup", "--find", "--show", image).stdout.strip()
    os.makedirs(mount_point, exist_ok=True)
    run("mount", "-t", "ext4", device, mount_point)
    made = time.perf_counter()
    run("umount", mount_point)
    run("losetup", "-d", device)
    os.unlink(image)
    os.rmdir(mount_point)
    return made - started, time.perf_counter() - made


def _galaxy(image: str, mount_point: str) -> tuple[float, float]:
    started = time.perf_counter()
    ensure_disk(image, SIZE, mount_point)
    made = time.perf_counter()
    release_disk(image, mount_point)
    return made - started, time.perf_counter() - made


def _cleanup(directory: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    for point in sorted((p for p in points if p.startswith(directory + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for name in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(directory + "/"):
            subprocess.run(["losetup", "-d", f"/dev/{name}"], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def run() -> list[Row]:
    directory = os.path.realpath(tempfile.mkdtemp(prefix="galaxy-bench-disk-"))
    galaxy: list[tuple[float, float]] = []
    by_hand: list[tuple[float, float]] = []
    try:
        for i in range(ROUNDS):
            galaxy.append(_galaxy(f"{directory}/g{i}.img", f"{directory}/g{i}"))
            by_hand.append(_by_hand(f"{directory}/h{i}.img", f"{directory}/h{i}"))
    finally:
        _cleanup(directory)
    cycle_g = statistics.median(m + t for m, t in galaxy)
    cycle_h = statistics.median(m + t for m, t in by_hand)
    ms = 1000.0
    return [
        Row("disk", "ensure+release 64 MiB ext4", 1 / cycle_g, "disks/s", 1 / cycle_h,
            "bare CLI steps", target=1.0, better="higher"),
        Row("disk", "ensure_disk 64 MiB (make+mount)", statistics.median(m for m, _ in galaxy) * ms, "ms",
            statistics.median(m for m, _ in by_hand) * ms, "truncate+mkfs+losetup+mount", better="lower"),
        Row("disk", "release_disk (umount+detach+rm)", statistics.median(t for _, t in galaxy) * ms, "ms",
            statistics.median(t for _, t in by_hand) * ms, "umount+losetup -d+rm", better="lower"),
    ]
