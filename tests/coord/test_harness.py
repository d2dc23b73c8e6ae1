"""The ZooKeeper harness itself and `galaxy dev zk`: real servers that leave nothing behind."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from galaxy.coord import connect
from galaxy.testing import ZooKeeperServer, four_letter_word

pytestmark = pytest.mark.zk

REPO = Path(__file__).resolve().parents[2]


def test_server_serves_on_loopback_and_stop_leaves_no_process_or_files() -> None:
    server = ZooKeeperServer(tick_ms=500)
    try:
        server.start()
        assert server.hosts.startswith("127.0.0.1:")
        assert server.four_letter_word("ruok") == "imok"
        assert "Mode: standalone" in server.four_letter_word("srvr")
        client = connect(server.hosts, timeout=5)
        try:
            client.create("/galaxy-harness", b"x")
            assert client.get("/galaxy-harness")[0] == b"x"
        finally:
            client.stop()
            client.close()
        pid = server.pid
        assert pid is not None and psutil.pid_exists(pid)
        base = server._base
        assert base is not None and "zookeeper" in server.log_text().lower()
    finally:
        server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not base.exists()


def test_galaxy_dev_zk_prints_hosts_answers_ruok_and_stops_on_sigterm() -> None:
    if all(importlib.util.find_spec(f"galaxy.cli.{noun}") for noun in ("job", "keys")):
        command = [sys.executable, "-m", "galaxy.cli.main", "dev", "zk"]
    else:  # the other nouns are still being written: drive the same fire component directly
        command = [sys.executable, "-c", "import fire; from galaxy.cli.dev import DevCommands; "
                   "fire.Fire(DevCommands, command=['zk'], name='galaxy dev')"]
    proc = subprocess.Popen(command, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    java_pids: list[int] = []
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        assert ready, "no connect string printed"
        hosts = proc.stdout.readline().decode().strip()
        host, port = hosts.split(":")
        assert host == "127.0.0.1"
        assert four_letter_word(host, int(port), "ruok") == "imok"
        java_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert java_pids, "no ZooKeeper child process"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in java_pids:  # only if the test failed before the CLI could stop them
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
    assert not any(psutil.pid_exists(pid) for pid in java_pids)
