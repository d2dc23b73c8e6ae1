"""What is left of a service run is stopped before the next one (issue 15: service faults heal)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from galaxy.appworker.process import exec_form


@pytest.mark.parametrize(("start", "wanted"), [
    ("redis-server --port $GALAXY_PORT_REDIS", "exec redis-server --port $GALAXY_PORT_REDIS"),
    ('python3 -c "import a; a.b()"', 'exec python3 -c "import a; a.b()"'),
    ("exec python3 -m http.server", "exec python3 -m http.server"),
    ("echo start; redis-server", None),
    ("redis-server | tee log", None),
    ("redis-server > log 2>&1", None),
    ("redis-server &", None),
    ("PORT=1 redis-server", None),
    ("cd /srv && ./run", None),
    ("run $(cat args)", None),
    ("run `cat args`", None),
    ("first\nsecond", None),
    ("trap '' TERM", None),
    ("if true; then run; fi", None),
    ('run "unbalanced', None),
])
def test_one_simple_command_is_execd_anything_else_is_left_to_the_shell(start: str, wanted: str | None) -> None:
    assert exec_form(start) == (wanted if wanted is not None else start)


PID1 = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time
    from galaxy.appworker.process import end_incarnation
    from galaxy.appworker.reaper import Reaper
    assert os.getpid() == 1
    reaper = Reaper(reap_orphans=True)
    # the ended run: a shell whose server left the group (setsid), as a daemon's double fork does
    run = reaper.spawn(["/bin/sh", "-c", "setsid sleep 300 & sleep 300"], run_as=None, cwd="/", env={})
    other = reaper.spawn(["sleep", "300"], run_as=None, cwd="/", env={})  # a live child: a health check
    time.sleep(0.5)
    escaped = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
               if p not in (1, run.pid, other.pid) and os.getpgid(p) != run.pid]
    os.kill(run.pid, signal.SIGKILL)
    run.wait(5)
    left = end_incarnation(reaper, run.pid, 2.0, whole_namespace=True)
    time.sleep(1.2)  # the reaper's sweep collects the zombies
    alive = sorted(p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if p != 1)
    print(json.dumps({"escaped": escaped, "left": left, "alive": alive, "other": other.pid}), flush=True)
""")


def test_pid_1_stops_what_escaped_the_group_and_spares_its_live_children() -> None:
    """Run as PID 1 of a new pid namespace, as in a container: the run's leader is killed, its shell
    child stays in the group and a `setsid` server escapes it. Both are stopped; the worker's other
    live child (its own group) is not."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", PID1],
                          capture_output=True, text=True, timeout=30, cwd=os.getcwd(),
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen["escaped"]) == 1, seen        # the setsid'd sleep, in a session of its own
    assert seen["left"] >= 2                      # the run's sleep and the escaped one
    assert seen["alive"] == [seen["other"]]
