"""Pick the cgroup driver a host needs, once, at Agent start.

A pure v2 host has ``cgroup.controllers`` at the mount root. Anything else with per-controller
directories (``cpu``, ``memory``, ``pids``…, possibly co-mounted as ``cpu,cpuacct``) is v1 — including
hybrid hosts whose ``unified`` v2 tree holds none of the controllers we need.

Where names live (``base``): by default under the calling process's own cgroup in each hierarchy, so an
Agent that itself runs inside a limited cgroup (a sandbox, a container) keeps its containers inside
those limits too; on cgroup v2 it first moves itself into a leaf of that cgroup, which then holds no
process and may delegate. A production Agent should pass an explicit base (e.g. ``/galaxy.slice``), so
that an Agent restarted into another cgroup still finds — and re-adopts — the containers it made.
"""

from __future__ import annotations

import os

from galaxy.isolate._cgroup import CgroupDriver, CgroupFs
from galaxy.isolate._cgroup_v1 import OPTIONAL, REQUIRED, CgroupV1Driver
from galaxy.isolate._cgroup_v2 import CgroupV2Driver, settle_in_own_cgroup
from galaxy.isolate._errors import IsolateError


def own_cgroups(proc_file: str = "/proc/self/cgroup") -> tuple[dict[str, str], str]:
    """The calling process's cgroup path per v1 controller, and its v2 path."""
    v1: dict[str, str] = {}
    v2 = "/"
    with open(proc_file) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                v2 = path
            for controller in controllers.split(","):
                if controller:
                    v1[controller] = path
    return v1, v2


def v1_hierarchies(root: str) -> dict[str, str]:
    """Controller → mount directory, from the directory names under ``root``."""
    found: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError as err:
        raise IsolateError(f"cannot list cgroup root {root}: {err.strerror}", field="cgroup") from err
    for entry in entries:
        path = os.path.join(root, entry)
        if not os.path.isdir(path):
            continue
        if entry == "unified" and not os.path.exists(os.path.join(path, "cgroup.controllers")):
            continue  # only a real cgroup2 mount
        for controller in entry.split(","):
            if controller in (*REQUIRED, *OPTIONAL) and (controller == entry or controller not in found):
                found[controller] = path
    return found


def detect_cgroups(root: str = "/sys/fs/cgroup", *, base: str | dict[str, str] | None = None,
                   fs: CgroupFs | None = None) -> CgroupDriver:
    """Return the v1 or v2 driver for the cgroup tree at ``root``.

    ``base`` is where names live inside each hierarchy: a path (same for every hierarchy), a mapping
    controller → path (v1), or None for the caller's own cgroups (read from /proc/self/cgroup). On v2,
    None moves the calling process into a leaf of its own cgroup (see ``settle_in_own_cgroup``).
    """
    fs = fs or CgroupFs()
    if fs.exists(os.path.join(root, "cgroup.controllers")):
        if isinstance(base, dict):
            raise IsolateError("cgroup v2 takes a single base path, not a mapping", field="cgroup")
        if base is None:  # under our own cgroup: it may delegate only once we have left it for a leaf
            base = settle_in_own_cgroup(root, own_cgroups()[1], fs)
        return CgroupV2Driver(root, base, fs=fs)
    hierarchies = v1_hierarchies(root)
    if not any(c in hierarchies for c in REQUIRED):
        raise IsolateError(f"no cgroup hierarchy found under {root}", field="cgroup")
    if base is None:
        v1, v2 = own_cgroups()
        bases = {**v1, "unified": v2}
    elif isinstance(base, str):
        bases = dict.fromkeys(hierarchies, base)
    else:
        bases = dict(base)
    return CgroupV1Driver(hierarchies, bases, fs=fs)


__all__ = ["detect_cgroups", "own_cgroups"]
