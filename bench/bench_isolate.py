"""Containers created + destroyed per second, beside the bare cost of the same kernel steps.

Galaxy: ``launch`` of a ``/bin/true`` init (cgroups, shim, pid/mnt/uts/ipc namespaces, a rootfs of
read-only binds, pivot_root, exec), ``wait``, ``destroy``. Bare, measured in the same run: mkdir the same
cgroups and write the same limits, spawn ``unshare --fork --pid --mount --uts --ipc /bin/true`` placed in
them by a shell before exec, wait, rmdir. The bare loop builds no root filesystem and keeps no shim, so
the ratio is the price of a real container over the minimum the kernel needs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid

from bench._table import Row
from galaxy.isolate import (
    CgroupLimits,
    CgroupV1Driver,
    ContainerSpec,
    default_system_mounts,
    destroy,
    detect_cgroups,
    launch,
)

WINDOW_S = 8.0
LIMITS = CgroupLimits(0.5, memory_bytes=64 << 20, pids_max=64)


def _galaxy(driver, parent: str) -> tuple[float, list[float], list[float]]:
    state, work = tempfile.mkdtemp(prefix="galaxy-bench-state-"), tempfile.mkdtemp(prefix="galaxy-bench-work-")
    mounts = default_system_mounts()
    launches: list[float] = []
    destroys: list[float] = []
    n = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < WINDOW_S:
            cid = f"b{n}"
            spec = ContainerSpec(id=cid, cgroup=f"{parent}/{cid}", limits=LIMITS, argv=["/bin/true"],
                                 env={}, state_dir=state, work_dir=work, system_mounts=mounts)
            t0 = time.perf_counter()
            proc = launch(spec, driver)
            t1 = time.perf_counter()
            if proc.wait(10) != {"exit_code": 0}:
                raise RuntimeError(f"/bin/true in a container ended with {proc.exit_status()}")
            t2 = time.perf_counter()
            destroy(spec, driver)
            destroys.append(time.perf_counter() - t2)
            launches.append(t1 - t0)
            n += 1
        return n / (time.perf_counter() - started), launches, destroys
    finally:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _bare_dirs(driver, name: str) -> list[tuple[str, dict[str, str]]]:
    """The same cgroup directories and limit writes the driver makes, as raw paths."""
    if isinstance(driver, CgroupV1Driver):
        knobs = {"cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000", "cpu.shares": "512"},
                 "memory": {"memory.limit_in_bytes": str(LIMITS.memory_bytes)},
                 "pids": {"pids.max": str(LIMITS.pids_max)}, "cpuacct": {}, "freezer": {}}
        return [(driver.path(c, name), k) for c, k in knobs.items()]
    return [(driver.path(name), {"cpu.max": "50000 100000", "memory.max": str(LIMITS.memory_bytes),
                                 "pids.max": str(LIMITS.pids_max)})]


def _bare(driver, parent: str) -> tuple[float, list[float]]:
    n = 0
    spawns: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < WINDOW_S:
        dirs = _bare_dirs(driver, f"{parent}/r{n}")
        for path, knobs in dirs:
            os.makedirs(path)
            for knob, value in knobs.items():
                with open(f"{path}/{knob}", "w") as f:
                    f.write(value)
        t0 = time.perf_counter()
        script = 'for f; do echo $$ > "$f"; done; exec unshare --fork --pid --mount --uts --ipc /bin/true'
        subprocess.run(["sh", "-c", script, "sh", *[f"{p}/cgroup.procs" for p, _ in dirs]], check=True)
        spawns.append(time.perf_counter() - t0)
        for path, _ in dirs:
            os.rmdir(path)
        n += 1
    return n / (time.perf_counter() - started), spawns


def run() -> list[Row]:
    if os.geteuid() != 0:
        return []
    driver = detect_cgroups()
    parent = f"galaxy-bench-{uuid.uuid4().hex[:8]}"
    try:
        bare_rate, bare_spawns = _bare(driver, parent)
        rate, launches, destroys = _galaxy(driver, parent)
    finally:
        driver.release(parent)
    bare_ms = statistics.median(bare_spawns) * 1000
    return [
        Row("isolate", "containers created+destroyed", rate, "1/s", bare_rate,
            "bare cgroup+unshare+exec", better="higher"),
        Row("isolate", "launch latency p50 (init running)", statistics.median(launches) * 1000, "ms",
            bare_ms, "bare unshare+exec", better="lower"),
        Row("isolate", "destroy latency p50", statistics.median(destroys) * 1000, "ms", None, "",
            better="lower"),
    ]


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
