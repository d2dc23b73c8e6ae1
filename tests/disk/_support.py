"""Helpers for the disk tests: polling, independent views of the kernel, a quota-filling writer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

NOBODY = 65534
# The venv interpreter lives under /root, which an unprivileged uid cannot enter; the writer needs
# only the standard library.
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def losetup_lists(image: str) -> bool:
    """Whether `losetup -j` (util-linux, not our code) still shows a loop on this image."""
    out = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


def in_proc_mounts(mount_point: str) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mount_point for line in f)


# A writer that fills a directory with 1 MiB files until ENOSPC and prints the bytes it got in.
# Run as a separate process so it can run as an unprivileged uid.
FILL_SCRIPT = r"""
import errno, os, sys
root, total, chunk, n = sys.argv[1], 0, b"\xa5" * 65536, 0
try:
    while True:
        with open(os.path.join(root, f"fill-{n}"), "wb") as f:
            n += 1
            for _ in range(16):
                total += os.write(f.fileno(), chunk)
            os.fsync(f.fileno())
except OSError as e:
    if e.errno != errno.ENOSPC:
        raise
print(total)
"""


def fill(directory: str, uid: int = 0, gid: int = 0) -> int:
    """Bytes a writer running as uid:gid could put into ``directory`` before ENOSPC."""
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-c", FILL_SCRIPT, directory], capture_output=True,
                          text=True, check=False, timeout=60, user=uid, group=gid, cwd=directory)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def host_allocated(directory: str) -> int:
    """Bytes the host filesystem spends on files under ``directory``, not crossing into mounts."""
    top = os.lstat(directory).st_dev
    total = 0
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == top]
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_dev == top:
                total += st.st_blocks * 512
    return total
