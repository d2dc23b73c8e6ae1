"""Every ``galaxy`` verb through the real entry point against the canned cluster (real mesh + ZooKeeper):
the printed table, the JSON document, progress on stderr and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.sdk.canned import CLUSTER, USER, CannedCluster

pytestmark = pytest.mark.zk

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEB = str(EXAMPLES / "web.yaml")


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines() if line.strip()]


def version_2(tmp_path: Path) -> str:
    path = tmp_path / "web-2.yaml"
    path.write_text(Path(WEB).read_text().replace('version: "1"', 'version: "2"'))
    return str(path)


def test_submit_wait_shows_progress_then_the_result(canned: CannedCluster, run: Run) -> None:
    code, out, err = run("job", "submit", WEB, "--wait")
    assert code == 0
    assert out == "job web RUNNING: 3/3 running, 0 pending, 0 failed (version 1)\n"
    assert err.splitlines() == ["web: DEPLOYING  1/3 running, 2 pending, 0 failed",
                                "web: DEPLOYING  2/3 running, 1 pending, 0 failed",
                                "web: RUNNING  3/3 running, 0 pending, 0 failed"]


def test_submit_json_is_one_document(canned: CannedCluster, run: Run) -> None:
    code, out, _ = run("job", "submit", WEB, "--output", "json")
    assert code == 0 and json.loads(out) == {"job": "web", "version": "1", "state": "DEPLOYING"}
    code, out, err = run("job", "remove", "web")
    code, out, err = run("job", "submit", WEB, "--wait", "--output", "json")
    shown = json.loads(out)  # progress went to stderr, so stdout parses as one document
    assert (shown["state"], shown["running"], len(shown["pods"])) == ("RUNNING", 3, 3) and err


def test_list_and_show_tables(canned: CannedCluster, run: Run) -> None:
    assert run("job", "list") == (0, "no jobs\n", "")
    run("job", "submit", WEB, "--wait")
    code, out, _ = run("job", "list")
    assert code == 0
    header, row = rows(out)
    assert header == ["JOB", "POOL", "OWNER", "TYPE", "STATE", "VERSION", "PODS", "PENDING", "FAILED", "UPDATED"]
    assert row[:9] == ["web", "default", USER, "service", "RUNNING", "1", "3/3", "0", "0"]
    code, out, _ = run("job", "show", "web")
    top, pods = out.split("\n\n")
    assert "State:      RUNNING" in top and "Resources:  cpu 250m, memory 64Mi" in top
    assert rows(pods)[0][:5] == ["POD", "HOST", "ADDRESS", "STATUS", "VERSION"]
    assert rows(pods)[1][:5] == ["web-0", "host-0", "10.0.0.1", "RUNNING", "1"]
    assert rows(pods)[1][6] == "http=20000" and len(rows(pods)) == 4


def test_update_with_breakpoint_pause_and_resume(canned: CannedCluster, run: Run, tmp_path: Path) -> None:
    run("job", "submit", WEB, "--wait")
    code, out, err = run("job", "update", "web", version_2(tmp_path), "--breakpoint", "1", "--wait")
    assert code == 0 and out.startswith("job web PAUSED:") and "web: PAUSED" in err
    assert canned.calls("job.update")[0][0]["breakpoint"] == 1
    code, out, _ = run("job", "show", "web")
    assert "Rollout:    to version 2: 1 done, step 1, breakpoint 1, failures 0, PAUSED" in out
    assert run("job", "pause", "web")[1] == "job web paused: state PAUSED, version 1\n"
    code, out, _ = run("job", "resume", "web", "--output", "json")
    assert json.loads(out) == {"job": "web", "state": "UPDATING", "version": "1"}
    assert run("job", "cancel", "web")[1] == "job web rollout cancelled: state RUNNING, version 1\n"
    assert run("job", "rollback", "web")[1] == "job web rolling back: state UPDATING, version 1\n"


def test_update_refuses_a_file_of_another_job(canned: CannedCluster, run: Run) -> None:
    run("job", "submit", WEB)
    code, out, err = run("job", "update", "other", WEB)
    assert (code, out) == (1, "") and err == "error: name: the file describes job 'web', not 'other'\n"
    assert canned.calls("job.update") == []


def test_scale_stop_remove(canned: CannedCluster, run: Run) -> None:
    run("job", "submit", WEB)
    assert run("job", "scale", "web", "5") == (0, "job web scaled to 5 replicas\n", "")
    assert canned.calls("job.scale")[0][0] == {"job": "web", "replicas": 5}
    assert run("job", "stop", "web") == (0, "job web stopping: state STOPPED\n", "")
    assert run("job", "remove", "web", "--output", "json")[1] == '{\n  "job": "web",\n  "removed": true\n}\n'
    assert run("job", "show", "web")[0] == 1


def test_exec_takes_the_command_after_double_dash(canned: CannedCluster, run: Run) -> None:
    run("job", "submit", WEB)
    code, out, err = run("job", "exec", "web", "--timeout", "5", "--", "ls", "-l", "--help")
    assert code == 0 and err == ""
    assert canned.calls("job.exec")[0][0] == {"job": "web", "command": "ls -l --help", "timeout": 5.0}
    assert out.splitlines()[:2] == ["==> web-0 (exit 0) <==", "web-0 ran ls -l --help"]
    code, out, err = run("job", "exec", "web", "--", "false")
    assert code == 1 and "==> web-1 (exit 1) <==" in out and "web-1: boom\n" in err
    code, out, _ = run("job", "exec", "web", "--command", "uname -a", "--output", "json")
    assert code == 0 and json.loads(out)["web-2"]["stdout"] == "web-2 ran uname -a\n"
    assert run("job", "exec", "web")[2] == "error: command: give a command: galaxy job exec JOB -- CMD ARGS…\n"


def test_plan_changes_nothing(canned: CannedCluster, run: Run) -> None:
    code, out, _ = run("job", "plan", WEB)
    assert code == 0 and out == "job web: NOT feasible, 2 pods would be placed\n  - only 2 hosts have 0.25 cpu free\n"
    assert run("job", "list")[1] == "no jobs\n"


def test_pods_logs_and_traces(canned: CannedCluster, run: Run) -> None:
    run("job", "submit", WEB, "--wait")
    code, out, _ = run("pod", "list", "web")
    assert [r[0] for r in rows(out)] == ["POD", "web-0", "web-1", "web-2"]
    code, out, _ = run("pod", "show", "web-1")
    assert "Restarts:  1" in out and rows(out.split("\n\n")[1])[0] == ["TIME", "STATUS", "VERSION", "REASON"]
    assert run("pod", "logs", "web-0", "--tail", "2") == (0, "stdout line 1\nstdout line 2\n", "")
    assert run("pod", "logs", "web-1", "--stderr", "--tail", "1")[1] == "stderr line 2\n"
    canned.model.logs_gone_after = 3
    assert run("pod", "logs", "web-2", "--follow", "--tail", "1") == (0, "stdout line 2\nstdout line 3\nstdout line 4\n", "")
    assert run("pod", "logs", "web-0", "--follow", "--output", "json")[0] == 1
    code, out, _ = run("pod", "trace", "web-0")
    assert rows(out)[1][3:] == ["placed", "-", "host=host-0"]
    code, out, _ = run("job", "trace", "web", "--output", "json")
    assert [e["event"] for e in json.loads(out)] == ["submitted"]
    assert run("pod", "recover", "web-0") == (0, "pod web-0 recovering: status PENDING\n", "")


def test_agent_verbs(canned: CannedCluster, run: Run) -> None:
    code, out, _ = run("agent", "list")
    table = rows(out)
    assert table[0][:4] == ["HOST", "POOL", "STATUS", "ADMIN"]
    assert table[1] == ["host-0", "default", "alive", "online", "2.5/4", "6Gi/8Gi", "2", "ssd", "10.0.0.1"]
    assert [r[0] for r in rows(run("agent", "list", "--pool", "gpu")[1])] == ["HOST", "host-2"]
    assert "Disks free/all:   ssd=60Gi/100Gi" in run("agent", "show", "host-0")[1]
    assert run("agent", "offline", "host-0") == (0, "host host-0: offline\n", "")
    assert run("agent", "online", "host-0") == (0, "host host-0: online\n", "")
    code, out, err = run("agent", "drain", "host-1", "--wait")
    assert code == 0 and out == "host host-1 drained: 0 containers, admin draining\n" and "host-1: draining" in err
    assert run("agent", "label", "host-1", "gpu", "big") == (0, "host host-1 labels: big,gpu\n", "")
    assert canned.calls("host.label")[0][0] == {"host": "host-1", "labels": ["gpu", "big"]}
    assert run("agent", "unlabel", "host-1", "gpu") == (0, "host host-1 labels: big\n", "")
    assert run("agent", "label", "host-0,host-1", "rack-7") == \
        (0, "host host-0 labels: rack-7,ssd\nhost host-1 labels: big,rack-7\n", "")
    assert canned.calls("host.label")[1][0] == {"hosts": ["host-0", "host-1"], "labels": ["rack-7"]}
    assert run("agent", "move", "host-1", "gpu") == (0, "host host-1 moved to pool gpu\n", "")
    assert run("agent", "show", "host-9") == (1, "", "error: host: no host 'host-9'\n")


def test_status_table_and_json(canned: CannedCluster, run: Run) -> None:
    run("job", "submit", WEB)
    code, out, _ = run("status")
    assert code == 0
    assert f"Cluster:      {CLUSTER}\n" in out and "Hosts:        3 (2 alive, 1 lost)\n" in out
    assert "CPU used:     3/8 (38%)\n" in out and "Memory used:  4Gi/16Gi (25%)\n" in out
    pools = rows(out.split("\n\n")[1])
    assert pools[1] == ["default", "2", "0", "0", "0", "3/8", "(38%)", "4Gi/16Gi", "(25%)", "4", "DEPLOYING=1"]
    summary = json.loads(run("status", "--output", "json")[1])
    assert summary["pools"]["gpu"]["lost"] == 1 and summary["total"]["jobs"] == {"DEPLOYING": 1}


@pytest.mark.parametrize("args", [
    ("job", "list"), ("job", "show", "web"), ("job", "trace", "web"), ("job", "plan", WEB), ("pod", "list", "web"),
    ("pod", "show", "web-0"), ("pod", "trace", "web-0"), ("pod", "logs", "web-0"), ("agent", "list"),
    ("agent", "show", "host-0"), ("status",), ("config", "show"),
])
def test_every_read_prints_one_json_document(canned: CannedCluster, run: Run, args: tuple[str, ...]) -> None:
    run("job", "submit", WEB)
    code, out, err = run(*args, "--output", "json")
    assert code == 0 and err == ""
    json.loads(out)  # exactly one document: a second one would make this raise


# ---- errors: one clear line, exit status 1 ----------------------------------------------------------

def test_a_bad_job_file(canned: CannedCluster, run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: web\nreplicas: -1\nresources: {cpu: 1, memory: 1Gi}\nprogram: {version: '1', start: ./x}\n")
    assert run("job", "submit", str(bad)) == (1, "", "error: replicas (line 2): must be at least 0, got -1\n")
    assert run("job", "submit", str(tmp_path / "nope.yaml")) == (
        1, "", f"error: cannot read {tmp_path / 'nope.yaml'}: no such file\n")
    assert canned.calls("job.submit") == []  # refused before anything was sent


def test_an_unknown_job(canned: CannedCluster, run: Run) -> None:
    assert run("job", "show", "nope") == (1, "", "error: job: no job 'nope'\n")
    assert run("job", "pause", "nope") == (1, "", "error: job: no job 'nope'\n")


def test_no_cluster_reachable(clean_env: None, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from galaxy.testing import free_port

    port = free_port()
    monkeypatch.setenv("GALAXY_CLUSTER", "nowhere")
    monkeypatch.setenv("GALAXY_ZOOKEEPER", f"127.0.0.1:{port}")
    monkeypatch.setenv("GALAXY_KEY", str(tmp_path / "me.key"))
    monkeypatch.setenv("GALAXY_TIMEOUT", "0.5")
    assert run("job", "list") == (1, "", f"error: cannot connect to ZooKeeper at 127.0.0.1:{port} within 0.5 s\n")


def test_nothing_configured(clean_env: None, run: Run) -> None:
    code, out, err = run("job", "list")
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert err.startswith("error: no Galaxy cluster configured") and "GALAXY_ZOOKEEPER" in err and "make demo" in err


def test_unknown_output_format(canned: CannedCluster, run: Run) -> None:
    assert run("job", "list", "--output", "xml") == (1, "", "error: output: --output must be one of table, json, got 'xml'\n")
