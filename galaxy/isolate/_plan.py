"""The root filesystem of a container as a list of plain mount steps, computed by the launcher.

The shim (``_shim.py``) only executes the steps, in order, inside the container's new mount namespace;
all policy — which dirs, which flags, which order — lives here, where it is testable without a kernel.
Every target is an absolute host path below ``<state_dir>/rootfs``; the namespace is private, so none
of these mounts is ever visible on the host, and all of them vanish when the last process inside exits.

Steps (tuples, so ``marshal`` carries them to the shim without importing anything):

- ``("tmpfs", target, ms_flags, options)``
- ``("bind", source, target, attr_set, is_dir)`` — recursive bind, then ``mount_setattr`` the attrs
- ``("symlink", link_text, path)``
- ``("proc", target)``
- ``("devpts", target)`` — a private devpts instance (its own ptys, none of the host's)
- ``("mask", target, is_dir)`` — hide a path: an empty read-only tmpfs over a dir, or ``/dev/null`` on a
  nodev mount over a file (opening it fails with EACCES)
"""

from __future__ import annotations

import os
from typing import Any

from galaxy.isolate._spec import WORK_DIR_INSIDE, ContainerSpec

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8

ATTR_RDONLY = 0x1
ATTR_NOSUID = 0x2
ATTR_NODEV = 0x4
ATTR_NOEXEC = 0x8

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"))
PROC_READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
"""Parts of a fresh /proc that reach the host kernel: shown read-only so root inside cannot tune it
(runc's ``readonlyPaths``)."""
PROC_MASKED = ("acpi", "asound", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
               "sched_debug", "scsi")
"""Parts of /proc that leak the host's memory, keys and timers: hidden (runc's ``maskedPaths``)."""

Step = tuple[Any, ...]


def rootfs_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "rootfs")


def mount_plan(spec: ContainerSpec) -> list[Step]:
    """Every step that builds the container's root, in the order the shim must run them."""
    root = rootfs_dir(spec.state_dir)

    def inside(path: str) -> str:
        return root + path

    steps: list[Step] = [("tmpfs", root, MS_NOSUID | MS_NODEV, "mode=755,size=1m,nr_inodes=16k"),
                         # /tmp before the system dirs: a Python or checkout that lives under /tmp (a CI
                         # clone, say) must land on top of the container's private /tmp, not under it.
                         ("tmpfs", inside("/tmp"), MS_NOSUID | MS_NODEV,
                          f"mode=1777,size={spec.limits.memory_bytes}")]
    for path in sorted(spec.system_mounts, key=lambda p: (p.count("/"), p)):
        path = os.path.normpath(path)
        if os.path.islink(path):
            steps.append(("symlink", os.readlink(path), inside(path)))
        else:
            steps.append(("bind", path, inside(path), ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV,
                          os.path.isdir(path)))
    for path in spec.hidden:  # host secrets inside the system mounts (see host_secrets)
        if os.path.lexists(path) and not os.path.islink(path):
            steps.append(("mask", inside(path), os.path.isdir(path)))
    steps.append(("proc", inside("/proc")))
    for name in PROC_MASKED:
        if os.path.exists(f"/proc/{name}"):
            steps.append(("mask", inside(f"/proc/{name}"), os.path.isdir(f"/proc/{name}")))
    for name in PROC_READONLY:
        if not os.path.exists(f"/proc/{name}"):
            continue
        target = inside(f"/proc/{name}")
        steps.append(("bind", target, target, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
                      name == "sys"))
    steps.append(("tmpfs", inside("/dev"), MS_NOSUID | MS_NOEXEC, "mode=755,size=64k"))
    for name in DEV_NODES:
        if os.path.exists(f"/dev/{name}"):
            steps.append(("bind", f"/dev/{name}", inside(f"/dev/{name}"), ATTR_NOSUID | ATTR_NOEXEC, False))
    for name, target in DEV_LINKS:
        steps.append(("symlink", target, inside(f"/dev/{name}")))
    steps.append(("devpts", inside("/dev/pts")))
    steps.append(("symlink", "pts/ptmx", inside("/dev/ptmx")))
    steps.append(("tmpfs", inside("/dev/shm"), MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777"))
    steps.append(("bind", spec.work_dir, inside(WORK_DIR_INSIDE), ATTR_NOSUID | ATTR_NODEV, True))
    # Shallow targets first, so a mount at /data/logs lands on top of one at /data, not under it.
    for mount in sorted(spec.mounts, key=lambda m: m.container_path.count("/")):
        attrs = ATTR_NOSUID | ATTR_NODEV | (ATTR_RDONLY if mount.readonly else 0)
        steps.append(("bind", mount.host_path, inside(mount.container_path), attrs,
                      os.path.isdir(mount.host_path)))
    return steps


__all__ = ["mount_plan", "rootfs_dir"]
