"""Fixtures for the disk tests: a scratch directory whose kernel leftovers are always torn down.

The teardown does not use galaxy.disk (a bug there must not leak loops or mounts): it lazily
unmounts every mount under the directory, detaches every loop whose backing file is under it, then
removes the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest


def _loops_under(directory: str) -> list[str]:
    found = []
    for name in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(directory + "/"):
            found.append(f"/dev/{name}")
    return found


def _teardown(directory: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    mounts = sorted((p for p in points if p.startswith(directory + "/")), key=len, reverse=True)
    for mount_point in mounts:
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
    for device in _loops_under(directory):
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def disk_dir() -> Iterator[str]:
    """A fresh directory named galaxy-disk-<id> on the host filesystem, cleaned whatever happens."""
    if os.geteuid() != 0 or not os.path.exists("/dev/loop-control"):
        pytest.skip("needs root and /dev/loop-control")
    directory = os.path.realpath(tempfile.mkdtemp(prefix=f"galaxy-disk-{uuid.uuid4().hex[:8]}-"))
    os.chmod(directory, 0o755)  # let the unprivileged writer reach its mount point
    try:
        yield directory
    finally:
        _teardown(directory)
