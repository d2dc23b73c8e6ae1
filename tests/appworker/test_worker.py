"""The worker's state machine driven in-process through an injected master transport."""

from __future__ import annotations

import os
import signal
import tarfile
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest

from galaxy.appworker import Worker
from tests.appworker._helpers import (
    HTTP_HEALTH,
    HTTP_START,
    FakeMaster,
    http_get,
    make_package,
    pid_alive,
    program,
    wait_until,
)

MakeWorker = Callable[..., tuple[Worker, FakeMaster]]


def web_program(work_root: Path, version: str, **fields: object) -> dict[str, object]:
    url = make_package(work_root, f"web-{version}.tar.gz", {"index.html": f"hello from v{version}\n"})
    return program(version, HTTP_START, package=url, deploy="echo deployed > deployed.txt",
                   health=HTTP_HEALTH, **fields)


def test_deploy_start_update_in_place_and_stop(make_worker: MakeWorker, work_root: Path) -> None:
    worker, master = make_worker()
    port = worker.settings.ports["http"]
    master.wait_for(lambda r: r.status == "PENDING", what="a first report")
    v1, v2 = web_program(work_root, "1"), web_program(work_root, "2")

    master.send("deploy", version="1", program=v1)
    report = master.wait_for(lambda r: r.status == "STOPPED", what="deploy of v1")
    assert report.version == "1"
    vdir = worker.settings.work_dir / "versions" / "1"
    assert (vdir / "deployed.txt").read_text() == "deployed\n"
    assert (vdir / "deployed.txt").stat().st_uid == worker.settings.uid  # ran as the service user

    master.send("start", version="1", program=v1)
    report = master.wait_for(lambda r: r.status == "RUNNING", what="v1 running")
    assert report.healthy is True and report.version == "1"
    assert http_get(port) == "hello from v1\n"
    assert os.stat(f"/proc/{report.pid}").st_uid == worker.settings.uid
    assert report.endpoint == {"address": "127.0.0.1", "ports": {"http": port}}
    old_pid = report.pid

    master.send("update", version="2", program=v2)
    report = master.wait_for(lambda r: r.status == "RUNNING" and r.version == "2", what="v2 running")
    assert report.pid != old_pid and not pid_alive(old_pid)
    assert http_get(port) == "hello from v2\n"
    statuses = [r.status for r in master.reports]
    assert "DEPLOYING" in statuses and "STOPPING" in statuses

    master.send("stop")
    report = master.wait_for(lambda r: r.status == "STOPPED", what="stopped")
    assert report.pid is None
    wait_until(lambda: not pid_alive(old_pid) and not any(pid_alive(p) for p in master.service_pids),
               what="no service process left")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        http_get(port)


def test_sigkill_is_reported_then_restart_counts(make_worker: MakeWorker, work_root: Path) -> None:
    worker, master = make_worker()
    master.send("start", version="1", program=web_program(work_root, "1"))
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    os.kill(report.pid or 0, signal.SIGKILL)
    report = master.wait_for(lambda r: r.status == "KILLED", what="the kill reported")
    assert report.signal == signal.SIGKILL and report.exit_code is None and report.pid is None
    assert report.oom is False and report.restarts == 0

    master.send("restart")
    report = master.wait_for(lambda r: r.status == "RUNNING" and r.restarts == 1, what="restarted")
    assert http_get(worker.settings.ports["http"]) == "hello from v1\n"


def test_exit_code_and_core_dump_are_reported(make_worker: MakeWorker) -> None:
    _worker, master = make_worker()
    master.send("start", version="1", program=program("1", "sleep 0.6; exit 5"))
    report = master.wait_for(lambda r: r.status == "EXITED", what="exit")
    assert report.exit_code == 5 and report.signal is None
    master.send("start", version="2", program=program("2", "ulimit -c unlimited; sleep 0.6; kill -SEGV $$"))
    report = master.wait_for(lambda r: r.status == "KILLED" and r.version == "2", what="segfault")
    assert report.signal == signal.SIGSEGV and report.restarts == 1


def test_start_that_always_fails_is_start_failed_with_the_reason(make_worker: MakeWorker) -> None:
    _worker, master = make_worker()
    master.send("start", version="1", program=program("1", "echo cannot bind the port >&2; exit 3"))
    report = master.wait_for(lambda r: r.status == "START_FAILED", what="start failure")
    assert "exited with code 3" in report.message and "cannot bind the port" in report.message
    assert report.exit_code == 3


def test_never_healthy_is_start_failed_after_the_deadline(make_worker: MakeWorker) -> None:
    _worker, master = make_worker(start_timeout=1.0)
    prog = program("1", "exec sleep 60", health={"tcp": None, "command": "exit 1", "interval": 0.2,
                                                  "timeout": 1.0})
    master.send("start", version="1", program=prog)
    report = master.wait_for(lambda r: r.status == "START_FAILED", what="health deadline")
    assert "not healthy" in report.message and "within 1 s" in report.message
    wait_until(lambda: not any(pid_alive(p) for p in master.service_pids), what="the unhealthy service killed")


@pytest.mark.parametrize("case", ["escaping member", "deploy command fails"])
def test_deploy_failed_names_the_reason(make_worker: MakeWorker, work_root: Path, case: str) -> None:
    _worker, master = make_worker()
    if case == "escaping member":
        evil = tarfile.TarInfo("../../escaped.txt")
        evil.size = 1
        url = make_package(work_root, "evil.tar.gz", {"ok.txt": "ok"}, extra=[evil])
        prog = program("1", "sleep 1", package=url)
        expected = "escapes the version directory"
    else:
        prog = program("1", "sleep 1", deploy="echo no such dependency >&2; exit 9")
        expected = "deploy command exited with code 9: no such dependency"
    master.send("deploy", version="1", program=prog)
    report = master.wait_for(lambda r: r.status == "DEPLOY_FAILED", what="deploy failure")
    assert expected in report.message
    assert not (work_root / "escaped.txt").exists()


def test_failed_update_keeps_the_old_version_running(make_worker: MakeWorker, work_root: Path) -> None:
    _worker, master = make_worker()
    master.send("start", version="1", program=web_program(work_root, "1"))
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    pid = report.pid
    bad = program("2", HTTP_START, deploy="exit 1", health=HTTP_HEALTH)
    master.send("update", version="2", program=bad)
    report = master.wait_for(lambda r: r.status == "UPDATE_FAILED", what="update failure")
    assert report.pid == pid and report.version == "1" and pid_alive(pid)
    assert "deploy command exited with code 1" in report.message


def test_logs_rotate_at_the_size_bound(make_worker: MakeWorker) -> None:
    worker, master = make_worker(log_max_bytes=4096, log_keep=2)
    chatty = ('i=0; while [ $i -lt 500 ]; do echo "line $i ........................................"; '
              'i=$((i+1)); done; echo the end; exec sleep 60')
    master.send("start", version="1", program=program("1", chatty))
    master.wait_for(lambda r: r.status == "RUNNING", what="running")
    log_dir = worker.settings.work_dir / "log"
    wait_until(lambda: "the end" in (log_dir / "stdout.log").read_text(errors="replace"), what="all output")
    files = sorted(p.name for p in log_dir.glob("stdout.log*"))
    assert files == ["stdout.log", "stdout.log.1", "stdout.log.2"]
    assert all((log_dir / name).stat().st_size <= 4096 for name in files)


def test_reload_runs_without_restarting_the_service(make_worker: MakeWorker, work_root: Path) -> None:
    worker, master = make_worker()
    master.send("start", version="1", program=web_program(work_root, "1"))
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    pid = report.pid
    data = make_package(work_root, "dict-7.tar.gz", {"dict.txt": "words v7\n"})
    master.send("reload", until=lambda r: r.data_version == "d7",
                data={"package": data, "reload": "cp $GALAXY_DATA_DIR/dict.txt index.html", "version": "d7"})
    report = master.wait_for(lambda r: r.data_version == "d7", what="reloaded")
    assert report.pid == pid and report.status == "RUNNING" and report.restarts == 0
    assert (worker.settings.work_dir / "data" / "d7" / "dict.txt").read_text() == "words v7\n"
    assert http_get(worker.settings.ports["http"]) == "words v7\n"


def test_exec_returns_bounded_output_and_times_out(make_worker: MakeWorker) -> None:
    _worker, master = make_worker()
    master.send("start", version="1", program=program("1", "exec sleep 60", env={"COLOUR": "blue"}))
    master.wait_for(lambda r: r.status == "RUNNING", what="running")
    master.send("exec", until=lambda r: False,
                exec={"exec_id": "e1", "command": "echo $COLOUR $GALAXY_VERSION; env", "timeout": 5})
    result = master.wait_exec("e1")
    assert result["exit_code"] == 0 and result["stdout"].startswith("blue 1\n")
    assert "GALAXY_WORKER_KEY" not in result["stdout"]
    master.send("exec", until=lambda r: False,
                exec={"exec_id": "e2", "command": "head -c 300000 /dev/zero | tr '\\0' a; sleep 30",
                      "timeout": 0.5})
    result = master.wait_exec("e2")
    assert result["exit_code"] == 124 and "timed out" in result["stderr"]
    assert len(result["stdout"]) < 70_000 and "[output cut]" in result["stdout"]
    assert [r["exec_id"] for r in master.exec_results].count("e1") == 1  # repeated asks ran once


def test_keeps_the_service_up_without_a_master_and_restarts_it_locally(make_worker: MakeWorker,
                                                                        work_root: Path) -> None:
    worker, master = make_worker()
    master.send("start", version="1", program=web_program(work_root, "1"))
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    pid = report.pid
    master.down = True
    wait_until(lambda: worker.reporter.master_lost, what="the master noticed as lost")
    assert pid_alive(pid) and worker.snapshot().status == "RUNNING"  # nothing stopped for lack of a master

    os.kill(pid or 0, signal.SIGKILL)
    state = wait_until(lambda: (s := worker.snapshot()).status == "RUNNING" and s.pid != pid and s,
                       what="a local restart")
    assert state.restarts == 1
    assert http_get(worker.settings.ports["http"]) == "hello from v1\n"

    master.down = False  # a (new) master answers: it hears the truth
    report = master.wait_for(lambda r: r.seq >= state.seq, what="the truth reported")
    assert report.status == "RUNNING" and report.restarts == 1 and report.pid == state.pid


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


SHELL_STARTED = "echo starting; python3 -m http.server $GALAXY_PORT_HTTP --bind 127.0.0.1"


@pytest.mark.parametrize("level", ["shell", "server"])
def test_a_run_killed_at_any_level_leaves_nothing_and_comes_back_on_its_port(
        make_worker: MakeWorker, work_root: Path, level: str) -> None:
    """The Redis case of issue 15: `start` is a shell script, so the server is the shell's child.
    Killing the shell must not leave the server holding the port; killing the server alone ends the
    run as well. Either way the restart serves on the same port."""
    worker, master = make_worker()
    page = make_package(work_root, "web-1.tar.gz", {"index.html": "hello from v1\n"})
    v1 = program("1", SHELL_STARTED, package=page, health=HTTP_HEALTH)
    master.send("start", version="1", program=v1)
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    shell = report.pid or 0
    server = wait_until(lambda: _children(shell), what="the server under the shell")[0]
    assert b"http.server" in Path(f"/proc/{server}/cmdline").read_bytes()

    os.kill(shell if level == "shell" else server, signal.SIGKILL)
    ended = master.wait_for(lambda r: r.status in ("KILLED", "EXITED"), what="the end of the run reported")
    assert not pid_alive(server), "the run's server outlived the report of its end"
    assert (ended.signal == signal.SIGKILL) if level == "shell" else (ended.exit_code == 128 + signal.SIGKILL)

    master.send("restart")
    master.wait_for(lambda r: r.status == "RUNNING" and r.restarts == 1, what="restarted")
    assert http_get(worker.settings.ports["http"]) == "hello from v1\n"


def test_a_simple_start_command_is_the_service_itself(make_worker: MakeWorker) -> None:
    """Debian's sh forks for `sh -c cmd`: the worker execs a lone command, so the pid it reports,
    signals and watches is the server's, and a SIGKILL of it is reported as such."""
    _worker, master = make_worker()
    master.send("start", version="1", program=program("1", "python3 -m http.server $GALAXY_PORT_HTTP "
                                                             "--bind 127.0.0.1", health=HTTP_HEALTH))
    report = master.wait_for(lambda r: r.status == "RUNNING", what="running")
    assert b"http.server" in Path(f"/proc/{report.pid}/cmdline").read_bytes()
    os.kill(report.pid or 0, signal.SIGKILL)
    report = master.wait_for(lambda r: r.status == "KILLED", what="the kill reported")
    assert report.signal == signal.SIGKILL
