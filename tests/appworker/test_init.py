"""The minimal PID 1: exit status, signal forwarding, orphan reaping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

INIT = [sys.executable, "-m", "galaxy.appworker.main", "--"]


def test_passes_on_the_exit_code() -> None:
    assert subprocess.run([*INIT, "sh", "-c", "exit 7"], timeout=30).returncode == 7


def test_unknown_command_is_127_with_a_clear_message() -> None:
    out = subprocess.run([*INIT, "/nonexistent/cmd"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 127
    assert "cannot start /nonexistent/cmd" in out.stderr


def test_no_command_is_a_usage_error() -> None:
    out = subprocess.run(INIT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "no command" in out.stderr


def test_forwards_term_to_the_service() -> None:
    proc = subprocess.Popen([*INIT, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"])
    try:
        time.sleep(0.5)  # let sh install its trap; the assertion below does not depend on timing
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a pid namespace")
def test_reaps_orphans_as_pid_1() -> None:
    # In a new pid namespace the init is PID 1: an orphaned grandchild must not stay a zombie.
    service = "sh -c 'sleep 0.3 &'; sleep 1.5; ps -eo stat=,comm="
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *INIT, "sh", "-c", service],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    states = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert states and not any(s.startswith("Z") for s in states), out.stdout
