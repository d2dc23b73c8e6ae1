"""The reaper: own children's statuses arrive intact, and orphans are reaped (never left as zombies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from galaxy.appworker import ExitInfo, Reaper, RunAs


def test_statuses_of_own_children_without_touching_other_children() -> None:
    reaper = Reaper(reap_orphans=False)
    try:
        mine = RunAs(os.geteuid(), os.getegid())
        other = subprocess.Popen(["sleep", "0.2"])  # not the reaper's: its status must stay ours
        quick = reaper.spawn(["sh", "-c", "exit 4"], run_as=mine, cwd="/", env={})
        killed = reaper.spawn(["sleep", "30"], run_as=mine, cwd="/", env={})
        killed.signal_group(signal.SIGKILL)
        assert quick.wait(10) == ExitInfo(4, None)
        assert killed.wait(10) == ExitInfo(None, signal.SIGKILL)
        assert other.wait(10) == 0
    finally:
        reaper.stop()


ORPHANS = textwrap.dedent("""
    import os, time
    from galaxy.appworker.reaper import Reaper, RunAs, set_child_subreaper
    assert set_child_subreaper()
    reaper = Reaper(reap_orphans=True)
    child = reaper.spawn(["sh", "-c", "sleep 0.2 & sleep 0.2 & exit 0"], run_as=None, cwd="/", env={})
    child.wait(10)
    deadline = time.monotonic() + 10
    while reaper.orphans_reaped < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    def state_and_parent(pid):
        try:  # any process of the host may end between the listing and this read
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(") ")[2].split()[:2]
        except OSError:
            return None
    zombies = [p for p in os.listdir("/proc") if p.isdigit() and state_and_parent(p) == ["Z", str(os.getpid())]]
    print(reaper.orphans_reaped, len(zombies))
""")


def test_orphans_are_reaped_as_subreaper() -> None:
    out = subprocess.run([sys.executable, "-c", ORPHANS], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "0"]
