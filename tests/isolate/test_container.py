"""Containers on the real kernel: limits, OOM, namespaces, mounts, users, adoption, clean destroy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from galaxy.errors import Conflict, InvalidInput
from galaxy.isolate import (
    BindMount,
    CgroupLimits,
    ContainerSpec,
    IsolateError,
    adopt,
    destroy,
    launch,
    resolve_user,
)
from galaxy.isolate._launch import mounts_below
from galaxy.isolate._process import ProcessId

pytestmark = pytest.mark.root
MiB = 1 << 20


def console(spec: ContainerSpec) -> str:
    with open(os.path.join(spec.state_dir, "console.log")) as f:
        return f.read()


def poll(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def assert_nothing_left(spec: ContainerSpec, driver, pids: list[int]) -> None:
    assert not driver.exists(spec.cgroup)
    assert all(not os.path.exists(f) for f in driver.join_files(spec.cgroup))
    assert mounts_below(spec.state_dir) == []
    assert os.listdir(spec.state_dir) == []
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_pid1_is_the_command_and_hostname_is_the_id(make_spec, driver) -> None:
    spec = make_spec(["sh", "-c", 'echo "$$ $(cat /proc/sys/kernel/hostname) $(id -u) $(pwd)"; '
                                  'tr "\\0" " " < /proc/1/cmdline'])
    proc = launch(spec, driver)
    assert proc.wait(20) == {"exit_code": 0}
    first, cmdline = console(spec).splitlines()
    assert first == f"1 {spec.id} 0 /galaxy/work"
    assert cmdline.startswith("sh -c")
    assert not proc.alive()


def test_half_a_core_gets_about_half_a_core(make_spec, driver) -> None:
    spec = make_spec(["sh", "-c", "while :; do :; done"],
                     limits=CgroupLimits(0.5, memory_bytes=64 * MiB))
    # A loop beside it with the same weight but no quota says how much cpu a loop could get on this
    # (shared) machine right now.
    reference = make_spec(["sh", "-c", "while :; do :; done"],
                          limits=CgroupLimits(0.5, cpu_excess=True, memory_bytes=64 * MiB))
    launch(spec, driver)
    launch(reference, driver)
    before, ref_before, t0 = (driver.usage(spec.cgroup).cpu_seconds, driver.usage(reference.cgroup).cpu_seconds,
                              time.monotonic())
    time.sleep(2.0)  # the measurement window itself, not a wait for a condition
    wall = time.monotonic() - t0
    share = (driver.usage(spec.cgroup).cpu_seconds - before) / wall
    available = (driver.usage(reference.cgroup).cpu_seconds - ref_before) / wall
    assert share <= 0.65, share                                # the quota holds
    assert share >= 0.7 * min(0.5, available), (share, available)  # and gives what the machine has


def test_memory_hog_is_oom_killed_and_it_shows(make_spec, driver) -> None:
    hog = "b = []\nwhile True:\n    b.append(b'x' * (1 << 20))\n"
    spec = make_spec(["python3", "-c", hog], limits=CgroupLimits(1, memory_bytes=48 * MiB))
    proc = launch(spec, driver)
    assert proc.wait(30) == {"signal": 9, "oom": True}
    assert driver.usage(spec.cgroup).oom_kills >= 1


def test_readonly_mount_refuses_writes_and_readwrite_accepts(make_spec, driver, tmp_dirs) -> None:
    ro, rw = tmp_dirs("ro"), tmp_dirs("rw")
    with open(os.path.join(ro, "given"), "w") as f:
        f.write("host data")
    spec = make_spec(["sh", "-c", "cat /ro/given; echo; (echo x > /ro/new) 2>/dev/null && echo ro-WRITABLE; "
                                  "echo y > /data/rw/new && echo rw-ok"],
                     mounts=[BindMount(ro, "/ro", readonly=True), BindMount(rw, "/data/rw")])
    assert launch(spec, driver).wait(20) == {"exit_code": 0}
    assert console(spec).split() == ["host", "data", "rw-ok"]
    assert not os.path.exists(os.path.join(ro, "new"))
    with open(os.path.join(rw, "new")) as f:
        assert f.read() == "y\n"


def test_runs_as_the_asked_user(make_spec, driver) -> None:
    uid, gid = resolve_user("nobody")
    spec = make_spec(["sh", "-c", "id -u; id -g; id -G; touch /etc/galaxy-test 2>/dev/null || echo denied"],
                     run_as=(uid, gid))
    assert launch(spec, driver).wait(20) == {"exit_code": 0}
    assert console(spec).split() == [str(uid), str(gid), str(gid), "denied"]


LAUNCHER = """
import json, sys, time
from galaxy.isolate import BindMount, CgroupLimits, ContainerSpec, detect_cgroups, launch
fields = json.loads(sys.argv[1])
fields["limits"] = CgroupLimits(1, memory_bytes=64 << 20)
proc = launch(ContainerSpec(**fields), detect_cgroups())
print(proc.pid, flush=True)
time.sleep(600)
"""


def test_container_outlives_its_launcher_and_is_adopted(make_spec, driver) -> None:
    spec = make_spec(["sh", "-c", "while [ ! -e /galaxy/work/go ]; do sleep 0.02; done; exit 7"])
    fields = {k: getattr(spec, k) for k in ("id", "cgroup", "argv", "env", "state_dir", "work_dir",
                                            "system_mounts")}
    agent = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(fields)], stdout=subprocess.PIPE,
                             text=True)
    try:
        pid = int(agent.stdout.readline())
    finally:
        agent.kill()  # the Agent dies hard
        agent.wait()
    adopted = adopt(spec, driver)
    assert adopted is not None and adopted.pid == pid and adopted.alive()
    assert pid in driver.pids(spec.cgroup)
    assert adopted.wait(0.2) is None
    open(os.path.join(spec.work_dir, "go"), "w").close()
    assert adopted.wait(20) == {"exit_code": 7}
    assert adopt(spec, driver).exit_status() == {"exit_code": 7}  # again, after it ended


def test_destroy_leaves_nothing_even_with_a_process_tree(make_spec, driver) -> None:
    spec = make_spec(["sh", "-c", "sleep 300 & sleep 300 & (sleep 300 &) ; wait"])
    proc = launch(spec, driver)
    assert poll(lambda: len(driver.pids(spec.cgroup)) >= 4)
    pids = driver.pids(spec.cgroup)
    shim = ProcessId.read(os.path.join(spec.state_dir, "shim.pid"))
    assert shim is not None and shim.running()
    destroy(spec, driver)
    assert_nothing_left(spec, driver, pids)
    assert not shim.running() and not proc.alive()
    destroy(spec, driver)  # idempotent


def test_second_launch_of_a_running_container_is_a_conflict(make_spec, driver) -> None:
    spec = make_spec(["sleep", "300"])
    proc = launch(spec, driver)
    with pytest.raises(Conflict):
        launch(spec, driver)
    assert proc.alive()


def test_unknown_binary_fails_clearly_and_cleans_up(make_spec, driver) -> None:
    spec = make_spec(["/galaxy-no-such-binary", "x"])
    with pytest.raises(IsolateError) as err:
        launch(spec, driver)
    assert err.value.field == "argv" and "/galaxy-no-such-binary" in str(err.value)
    assert_nothing_left(spec, driver, [])


def test_mount_that_fails_in_the_kernel_cleans_up(make_spec, driver, tmp_dirs) -> None:
    spec = make_spec(["true"], mounts=[BindMount(tmp_dirs("src"), "/usr/galaxy-under-readonly")])
    with pytest.raises(IsolateError) as err:
        launch(spec, driver)
    assert err.value.field == "mounts"
    assert_nothing_left(spec, driver, [])


def test_bad_mount_source_is_invalid_input_and_makes_nothing(make_spec, driver) -> None:
    spec = make_spec(["true"], mounts=[BindMount("/galaxy-no-such-dir", "/data")])
    with pytest.raises(InvalidInput) as err:
        launch(spec, driver)
    assert err.value.field == "mounts[0].host_path"
    assert not driver.exists(spec.cgroup)


def test_symlink_planted_in_work_dir_cannot_redirect_a_mount(make_spec, driver, tmp_dirs) -> None:
    victim = tmp_dirs("victim")
    spec = make_spec(["true"])
    os.symlink(victim, os.path.join(spec.work_dir, "data"))
    spec = make_spec(["true"], work_dir=spec.work_dir,
                     mounts=[BindMount(tmp_dirs("src"), "/galaxy/work/data/x")])
    with pytest.raises(IsolateError, match="symlink"):
        launch(spec, driver)
    assert os.listdir(victim) == []
