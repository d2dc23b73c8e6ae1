"""Containers forked from the zygote: the same guarantees as the exec'ing shim, and a fallback to it.

The init under test is the AppWorker's minimal init (``galaxy.appworker.main -- CMD``): it is what the
Agent's zygote pre-imports, and it runs one command, so the tests see exit codes and output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from galaxy.isolate import ContainerSpec, Zygote, adopt, destroy, launch, resolve_user
from galaxy.isolate._process import ProcessId

pytestmark = pytest.mark.root
MODULE = "galaxy.appworker.main"


def init(*command: str) -> list[str]:
    return [sys.executable, "-m", MODULE, "--", *command]


def console(spec: ContainerSpec) -> str:
    with open(os.path.join(spec.state_dir, "console.log")) as f:
        return f.read()


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def poll(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def zygote(tmp_dirs: Callable[[str], str]) -> Iterator[Zygote]:
    zyg = Zygote(os.path.join(tmp_dirs("zygote"), "z"), MODULE)
    yield zyg
    zyg.stop()
    zyg.close()


def test_pid1_runs_the_preimported_init_with_the_spec_env_only(make_spec, driver, zygote) -> None:
    spec = make_spec(init("sh", "-c", 'echo "$$ $(cat /proc/sys/kernel/hostname) $(pwd) $FOO ${GALAXY_TEST_ZYGOTE_LEAK:-clean}"; '
                                      'ls /proc/1/fd | tr "\\n" " "; exit 3'), env={"FOO": "bar"})
    os.environ["GALAXY_TEST_ZYGOTE_LEAK"] = "1"  # the zygote's env must not reach the container
    try:
        proc = launch(spec, driver, zygote)
    finally:
        del os.environ["GALAXY_TEST_ZYGOTE_LEAK"]
    zyg = zygote.process
    assert zyg is not None  # the launch went through a zygote, started on demand
    shim = ProcessId.read(os.path.join(spec.state_dir, "shim.pid"))
    assert shim is not None and shim.pid != zyg.pid
    assert proc.wait(20) == {"exit_code": 3}
    first, fds = console(spec).splitlines()
    assert first == f"2 {spec.id} /galaxy/work bar clean"  # PID 1 is the init; the command its child
    assert fds.split() == ["0", "1", "2"]  # PID 1 holds its stdio and nothing of the zygote's


def test_pid1_does_not_exec_and_drops_to_the_user(make_spec, driver, zygote) -> None:
    uid, gid = resolve_user("nobody")
    spec = make_spec(init("sh", "-c", "id -u; id -g; while [ ! -e /galaxy/work/go ]; do sleep 0.02; done"),
                     run_as=(uid, gid))
    os.chown(spec.work_dir, uid, gid)
    proc = launch(spec, driver, zygote)
    assert poll(lambda: comm(proc.pid) == "appworker.main")  # a fork of the zygote, not a fresh python
    with open(f"/proc/{proc.pid}/status") as f:
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in f.read()
    open(os.path.join(spec.work_dir, "go"), "w").close()
    assert proc.wait(20) == {"exit_code": 0}
    assert console(spec).split() == [str(uid), str(gid)]


def test_many_launches_share_one_zygote(make_spec, driver, zygote) -> None:
    procs = [launch(make_spec(init("sh", "-c", f"exit {code}")), driver, zygote) for code in (0, 1, 2)]
    assert [p.wait(20) for p in procs] == [{"exit_code": 0}, {"exit_code": 1}, {"exit_code": 2}]
    assert zygote.ping() == "fresh"


LAUNCHER = """
import json, sys
from galaxy.isolate import CgroupLimits, ContainerSpec, Zygote, detect_cgroups, launch
fields = json.loads(sys.argv[1])
fields["limits"] = CgroupLimits(1, memory_bytes=64 << 20)
proc = launch(ContainerSpec(**fields), detect_cgroups(), Zygote(sys.argv[2], sys.argv[3]))
print(proc.pid, flush=True)
sys.stdin.read()
"""


def test_container_outlives_agent_and_zygote_and_is_adopted(make_spec, driver, zygote) -> None:
    spec = make_spec(init("sh", "-c", "while [ ! -e /galaxy/work/go ]; do sleep 0.02; done; exit 7"))
    fields = {k: getattr(spec, k) for k in ("id", "cgroup", "argv", "env", "state_dir", "work_dir",
                                            "system_mounts")}
    agent = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(fields), zygote.directory, MODULE],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(agent.stdout.readline())
    finally:
        agent.kill()  # the Agent dies hard
        agent.wait()
    zyg = zygote.process
    assert zyg is not None and zygote.refind()  # the next Agent finds the zygote the dead one started
    os.kill(zyg.pid, signal.SIGKILL)  # and the zygote dies too: containers are not its children
    assert poll(lambda: not zyg.running())
    adopted = adopt(spec, driver)
    assert adopted is not None and adopted.pid == pid and adopted.alive()
    open(os.path.join(spec.work_dir, "go"), "w").close()
    assert adopted.wait(20) == {"exit_code": 7}


def test_destroy_kills_a_zygote_launched_container(make_spec, driver, zygote) -> None:
    spec = make_spec(init("sh", "-c", "sleep 300 & sleep 300; wait"))
    proc = launch(spec, driver, zygote)
    assert poll(lambda: len(driver.pids(spec.cgroup)) >= 3)
    pids = driver.pids(spec.cgroup)
    shim = ProcessId.read(os.path.join(spec.state_dir, "shim.pid"))
    destroy(spec, driver)
    assert not driver.exists(spec.cgroup) and os.listdir(spec.state_dir) == []
    assert shim is not None and not shim.running() and not proc.alive()
    assert all(not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"
               for p in pids)
    assert zygote.process is not None  # the zygote is not the container's: it stays


def test_a_dead_zygote_is_replaced_by_the_next_launch(make_spec, driver, zygote) -> None:
    assert launch(make_spec(init("true")), driver, zygote).wait(20) == {"exit_code": 0}
    first = zygote.process
    assert first is not None
    os.kill(first.pid, signal.SIGKILL)
    assert poll(lambda: not first.running())
    spec = make_spec(init("sh", "-c", "exit 4"))
    proc = launch(spec, driver, zygote)
    second = zygote.process
    assert second is not None and second.pid != first.pid
    assert proc.wait(20) == {"exit_code": 4}


def test_unreachable_zygote_falls_back_to_exec(make_spec, driver, tmp_dirs) -> None:
    blocker = os.path.join(tmp_dirs("zygote"), "file")
    open(blocker, "w").close()  # a file where the zygote's dir should be: no zygote can start
    broken = Zygote(os.path.join(blocker, "z"), MODULE)
    spec = make_spec(init("sh", "-c", "while [ ! -e /galaxy/work/go ]; do sleep 0.02; done; exit 5"))
    proc = launch(spec, driver, broken)
    assert broken.process is None
    assert comm(proc.pid) != "appworker.main"  # a python exec'd as PID 1
    open(os.path.join(spec.work_dir, "go"), "w").close()
    assert proc.wait(20) == {"exit_code": 5}


def test_other_inits_are_exec_d_without_starting_a_zygote(make_spec, driver, zygote) -> None:
    spec = make_spec(["sh", "-c", "exit 6"])
    assert launch(spec, driver, zygote).wait(20) == {"exit_code": 6}
    assert zygote.process is None


def test_zygote_running_outdated_code_is_replaced(zygote) -> None:
    assert zygote.ensure()
    old = zygote.process
    assert old is not None and zygote.refind()
    init_file = sys.modules[MODULE].__file__ if MODULE in sys.modules else None
    if init_file is None:
        import galaxy.appworker.main as module

        init_file = module.__file__
    assert init_file is not None
    before = os.stat(init_file)
    try:
        os.utime(init_file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert not zygote.refind()  # stale: ended, and the next request starts a fresh one
        assert not old.running()
    finally:
        os.utime(init_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert zygote.ensure() and zygote.process is not None and zygote.process.pid != old.pid
