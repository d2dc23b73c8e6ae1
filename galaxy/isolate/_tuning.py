"""Host tuning the Agent applies at start: cgroup moves that do not wait for an RCU grace period.

Every container's PID 1 writes itself into its cgroups (``cgroup.procs``). The kernel guards such a
move with one global lock, ``cgroup_threadgroup_rwsem``, a per-cpu rwsem whose writer must wait for an
RCU grace period when the lock has been idle: measured here, the first ``cgroup.procs`` write of
nine creates in ten took 10–20 ms, most of a create's 40–60 ms. The cgroup2 mount option
``favordynmods`` (Linux 6.0, cgroup-v2.rst: "reduce the latencies of dynamic cgroup modifications such
as task migrations … at the cost of making hot path operations such as forks and exits more
expensive") keeps the lock in its slow-reader mode, so a move costs ~0.3 ms. It is one flag for the
whole kernel, set on whichever cgroup2 mount there is (the ``unified`` tree of a hybrid host too), and
it is what a host that starts containers all day wants; the Agent's ``favor_dynmods`` setting turns
this off for hosts that would rather keep forks cheapest.
"""

from __future__ import annotations

import logging
import subprocess

log = logging.getLogger(__name__)

OPTION = "favordynmods"
MOUNTINFO = "/proc/self/mountinfo"


def cgroup2_mounts(mountinfo: str = MOUNTINFO) -> list[tuple[str, frozenset[str]]]:
    """(mount point, superblock options) of every cgroup2 mount this process sees."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                point = fields[4].replace("\\040", " ")
                found.append((point, frozenset(fields[sep + 3].split(","))))
    return found


def favor_dynamic_moves(mountinfo: str = MOUNTINFO) -> bool:
    """Turn ``favordynmods`` on (see the module docstring); True when it is on afterwards.

    A kernel without the option, or no cgroup2 mount at all, leaves it off with a warning: containers
    still start, each paying the wait.
    """
    mounts = cgroup2_mounts(mountinfo)
    if not mounts:
        log.warning("no cgroup2 mount: cgroup moves wait for an RCU grace period (no %s)", OPTION)
        return False
    if any(OPTION in options for _, options in mounts):
        return True
    point = mounts[0][0]
    # util-linux's mount keeps the mount's other options (nsdelegate, nosuid…) across the remount.
    done = subprocess.run(["mount", "-o", f"remount,{OPTION}", point], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        log.warning("cannot remount %s with %s (kernel before 6.0?): %s", point, OPTION,
                    (done.stderr or done.stdout).strip())
        return False
    on = any(OPTION in options for _, options in cgroup2_mounts(mountinfo))
    if on:
        log.info("cgroup2 at %s remounted with %s: container starts no longer wait for RCU", point, OPTION)
    return on


__all__ = ["OPTION", "cgroup2_mounts", "favor_dynamic_moves"]
