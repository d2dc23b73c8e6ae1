"""Containers created + destroyed per second, beside the bare cost of the same kernel steps.

Galaxy: ``launch`` of a ``/bin/true`` init (cgroups, shim, pid/mnt/uts/ipc namespaces, a rootfs of
read-only binds, pivot_root, exec), ``wait``, ``destroy``. Bare, measured in the same run: mkdir the same
cgroups and write the same limits, spawn ``unshare --fork --pid --mount --uts --ipc /bin/true`` placed in
them by a shell before exec, wait, rmdir. The bare loop builds no root filesystem and keeps no shim, so
the ratio is the price of a real container over the minimum the kernel needs.

Zygote rows: containers whose init is the AppWorker's (``python -m galaxy.appworker.main -- /bin/true``),
launched through the zygote (forked, pre-imported, no exec) against the exec path, same run: latency
until PID 1 runs, and the CPU the container's cgroup spent until it ended (the interpreter start and
imports on the exec path; neither on the zygote's).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from bench._table import Row
from galaxy.isolate import (
    CgroupLimits,
    CgroupV1Driver,
    ContainerSpec,
    Zygote,
    default_system_mounts,
    destroy,
    detect_cgroups,
    launch,
)

WINDOW_S = 8.0
APPWORKER_WINDOW_S = 4.0
APPWORKER_INIT = [sys.executable, "-m", "galaxy.appworker.main", "--", "/bin/true"]
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


def _appworker(driver, parent: str, zygote: Zygote | None) -> tuple[list[float], list[float]]:
    """(launch latencies, cgroup CPU seconds per container) of AppWorker-init containers."""
    state, work = tempfile.mkdtemp(prefix="galaxy-bench-state-"), tempfile.mkdtemp(prefix="galaxy-bench-work-")
    mounts = default_system_mounts()
    launches: list[float] = []
    cpu: list[float] = []
    n = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < APPWORKER_WINDOW_S:
            cid = f"w{'z' if zygote else 'x'}{n}"
            spec = ContainerSpec(id=cid, cgroup=f"{parent}/{cid}", limits=LIMITS, argv=APPWORKER_INIT,
                                 env={}, state_dir=state, work_dir=work, system_mounts=mounts)
            t0 = time.perf_counter()
            proc = launch(spec, driver, zygote)
            launches.append(time.perf_counter() - t0)
            if proc.wait(20) != {"exit_code": 0}:
                raise RuntimeError(f"the AppWorker init ended with {proc.exit_status()}")
            cpu.append(driver.usage(spec.cgroup).cpu_seconds)
            destroy(spec, driver)
            n += 1
        return launches, cpu
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
        exec_launches, exec_cpu = _appworker(driver, parent, None)
        zygote_dir = tempfile.mkdtemp(prefix="galaxy-bench-zygote-")
        zygote = Zygote(zygote_dir, "galaxy.appworker.main")
        try:
            if not zygote.ensure():
                raise RuntimeError(f"the zygote did not start; see {zygote_dir}/zygote.log")
            zygote_launches, zygote_cpu = _appworker(driver, parent, zygote)
        finally:
            zygote.stop()
            zygote.close()
            shutil.rmtree(zygote_dir, ignore_errors=True)
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
        Row("isolate", "AppWorker init: launch latency p50, zygote", statistics.median(zygote_launches) * 1000,
            "ms", statistics.median(exec_launches) * 1000, "exec path", better="lower"),
        Row("isolate", "AppWorker init: container CPU p50, zygote", statistics.median(zygote_cpu) * 1000,
            "cpu-ms", statistics.median(exec_cpu) * 1000, "exec path", better="lower"),
    ]


if __name__ == "__main__":
    from bench._table import render

    print(render(run()))
