"""Galaxy's own supervisor, driven through its command line as Ansible drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy.daemon.config import ConfigError
from galaxy.supervisor import Control, load_config, read_pidfile
from galaxy.testing.netns import wait_until


class Host:
    """A supervisor config in a temp dir, with a `sleep` program whose config file is watched."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.config = base / "supervisor.yaml"
        (base / "conf.d").mkdir()
        self.config.write_text(textwrap.dedent(f"""\
            run_dir: {base}/run
            log_dir: {base}/log
            include: {base}/conf.d/*.yaml
            """))
        self.app_cfg = base / "app.cfg"
        self.app_cfg.write_text("v1\n")
        self.define("app", ["sleep", "300"], watch=[str(self.app_cfg)])

    def define(self, name: str, command: list[str], **extra: Any) -> None:
        body = {"command": command, "backoff": {"min": 0.1, "max": 0.4, "reset_after": 30}, "stop_timeout": 5,
                **extra}
        (self.base / "conf.d" / f"{name}.yaml").write_text(json.dumps({name: body}))

    def cli(self, *args: str, check: bool = True) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "galaxy.supervisor", *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.returncode == 0 else {"rc": done.returncode, "err": done.stderr}

    def status(self, name: str = "app") -> dict[str, Any]:
        return dict(self.cli("status").get("programs", {}).get(name, {}))


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    made = Host(tmp_path)
    try:
        yield made
    finally:
        control = Control(str(made.config))
        control.shutdown(timeout=30)
        for pidfile in (tmp_path / "run").glob("*.pid") if (tmp_path / "run").exists() else []:
            pid = read_pidfile(str(pidfile))
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_ensure_starts_once_and_restarts_only_when_a_watched_file_changes(host: Host) -> None:
    first = host.cli("ensure", "app")
    assert first["changed"] is True and _alive(first["pid"])
    again = host.cli("ensure", "app")
    assert again["changed"] is False and again["pid"] == first["pid"]
    host.app_cfg.write_text("v2\n")
    third = host.cli("ensure", "app")
    assert third["changed"] is True and third["pid"] != first["pid"]
    wait_until(lambda: not _alive(first["pid"]), 5, what="the old process to end")
    # The pidfile names the running child by PID and start time.
    assert read_pidfile(str(host.base / "run" / "app.pid")) == third["pid"]


def test_a_program_that_exits_is_restarted_with_backoff(host: Host) -> None:
    pid = host.cli("ensure", "app")["pid"]
    os.kill(pid, signal.SIGKILL)
    restarted = wait_until(lambda: (s := host.status()).get("pid") not in (None, pid) and s, 10,
                           what="a restart")
    assert restarted["restarts"] == 1 and restarted["last_exit"] == -signal.SIGKILL


def test_stop_ends_programs_by_pid_and_removes_pidfiles(host: Host) -> None:
    host.define("other", ["sleep", "300"])
    pids = [host.cli("ensure", "app")["pid"], host.cli("ensure", "other")["pid"]]
    assert host.cli("stop", "other")["changed"] is True
    assert not _alive(pids[1]) and _alive(pids[0])
    supervisor = Control(str(host.config)).supervisor_pid()
    assert host.cli("stop")["changed"] is True
    assert supervisor is not None and not _alive(supervisor) and not _alive(pids[0])
    assert not list((host.base / "run").glob("*.pid"))


def test_a_health_check_must_pass_before_ensure_returns(host: Host) -> None:
    ready = host.base / "ready"
    host.define("slow", ["sh", "-c", f"sleep 0.5; touch {ready}; exec sleep 300"],
                health={"command": ["test", "-e", str(ready)], "timeout": 20})
    result = host.cli("ensure", "slow")
    assert result["changed"] is True and ready.exists()


def test_ensure_fails_when_the_program_dies_at_once(host: Host) -> None:
    host.define("broken", ["sh", "-c", "echo boom >&2; exit 3"])
    result = host.cli("ensure", "broken", check=False)
    assert result["rc"] == 1 and "broken is not running" in result["err"]
    assert "boom" in (host.base / "log" / "broken.log").read_text()


def test_signal_reaches_the_program_and_not_running_is_no_error(host: Host) -> None:
    marker = host.base / "hup"
    host.define("hup", ["python3", "-c", textwrap.dedent(f"""\
        import signal, time, pathlib
        signal.signal(signal.SIGHUP, lambda *_: pathlib.Path({str(marker)!r}).touch())
        time.sleep(300)""")])
    host.cli("ensure", "hup")
    time.sleep(0.3)  # let the child install its handler before it is signalled
    assert host.cli("signal", "hup", "--signal", "HUP")["changed"] is False
    wait_until(marker.exists, 5, what="the program to see SIGHUP")
    assert host.cli("signal", "app")["changed"] is False      # defined but never started: nothing to do


def test_config_problems_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({"run_dir": "relative", "log_dir": "/l", "colour": 1,
                                "programs": {"a": {"command": [], "stop_signal": "NOPE", "kill": "all",
                                                   "backoff": {"min": "2s", "max": "1s"}, "health": {"x": 1}}}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    keys = {k for k, _ in err.value.problems}
    assert {"run_dir", "colour", "programs.a.command", "programs.a.stop_signal", "programs.a.kill",
            "programs.a.backoff.max", "programs.a.health"} <= keys
