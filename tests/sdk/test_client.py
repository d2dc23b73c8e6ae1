"""The SDK against a canned AppMaster and ResMan on the real mesh, found through real ZooKeeper."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from galaxy.coord import Naming, Paths, connect
from galaxy.errors import Conflict, InvalidInput, NotFound, Unreachable
from galaxy.sdk import Client, ClientConfig, JobFailed, WatchEvent, load_config
from galaxy.sdk._summary import summarize
from galaxy.spec import SpecError, load_job_file
from galaxy.testing import free_port
from tests.sdk.canned import CLUSTER, USER, CannedCluster

pytestmark = pytest.mark.zk

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEB = EXAMPLES / "web.yaml"


def test_submit_sends_the_normalised_spec_under_the_users_key(client: Client, canned: CannedCluster) -> None:
    assert client.submit(WEB) == {"job": "web", "version": "1", "state": "DEPLOYING"}
    [(body, key)] = canned.calls("job.submit")
    assert body == {"spec": load_job_file(WEB).to_dict()}
    assert key == USER
    assert client.jobs()[0]["owner"] == USER


def test_a_bad_job_file_fails_before_any_call(client: Client, canned: CannedCluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: web\nresources: {cpu: 1}\n")
    with pytest.raises(SpecError):
        client.submit(bad)
    assert canned.calls("job.submit") == []


def test_server_errors_arrive_typed(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.job("nope")
    assert caught.value.field == "job"
    client.submit(WEB)
    with pytest.raises(Conflict):
        client.submit(WEB)
    with pytest.raises(InvalidInput, match="replicas"):
        client.scale("web", -1)


def test_wait_job_reports_progress_until_running(client: Client) -> None:
    client.submit(WEB)
    seen: list[tuple[str, int]] = []
    row = client.wait_job("web", poll=0.01, on_progress=lambda r: seen.append((r["state"], r["running"])))
    assert row["state"] == "RUNNING" and row["running"] == 3
    assert seen[0] == ("DEPLOYING", 1) and seen[-1] == ("RUNNING", 3)


def test_wait_job_raises_job_failed(client: Client, canned: CannedCluster) -> None:
    client.submit(WEB)
    with canned.model.lock:
        canned.model.jobs["web"]["state"] = "FAILED"
        canned.model.jobs["web"]["pods"][0].update(status="FAILED", reason="exit 3")
    with pytest.raises(JobFailed, match="web-0: exit 3") as caught:
        client.wait_job("web", poll=0.01)
    assert caught.value.job["state"] == "FAILED"


def test_update_with_breakpoint_pauses_then_resumes(client: Client, canned: CannedCluster, tmp_path: Path) -> None:
    client.submit(WEB)
    client.wait_job("web", poll=0.01)
    v2 = tmp_path / "web2.yaml"
    v2.write_text(WEB.read_text().replace('version: "1"', 'version: "2"'))
    assert client.update("web", v2, breakpoint=1)["state"] == "UPDATING"
    assert canned.calls("job.update")[0][0]["breakpoint"] == 1
    assert client.wait_job("web", poll=0.01)["state"] == "PAUSED"
    assert client.resume("web")["state"] == "UPDATING"
    with canned.model.lock:
        canned.model.jobs["web"]["update"]["breakpoint"] = None
    final = client.wait_job("web", poll=0.01)
    assert (final["state"], final["version"]) == ("RUNNING", "2")


def test_exec_logs_and_follow(client: Client, canned: CannedCluster) -> None:
    client.submit(WEB)
    results = client.exec("web", ["echo", "hi there"])
    assert canned.calls("job.exec")[0][0]["command"] == "echo 'hi there'"
    assert results["web-0"] == {"exit_code": 0, "stdout": "web-0 ran echo 'hi there'\n", "stderr": ""}
    assert client.logs("web-1", tail=2, stream="stderr") == {
        "data": "stderr line 1\nstderr line 2\n", "offset": len("stderr line 0\nstderr line 1\nstderr line 2\n")}
    canned.model.logs_gone_after = 4
    chunks = list(client.follow_logs("web-2", tail=1, poll=0.01))  # ends when the container is destroyed
    assert "".join(chunks) == "".join(f"stdout line {i}\n" for i in range(2, 6))


def test_resolve_and_watch_read_naming_from_zookeeper(client: Client, zk_hosts: str) -> None:
    zk = connect(zk_hosts)
    try:
        naming = Naming(zk, Paths(CLUSTER))
        record = {"pod": "web-0", "job": "web", "host": "h", "address": "10.0.0.1", "ports": {"http": 20001},
                  "status": "STARTING", "version": "1", "updated_at": 1.0}
        naming.publish("web", "web-0", record)
        assert client.resolve("web") == {"web-0": record}
        stop = threading.Event()
        events = client.watch("web", timeout=20, stop=stop)
        assert next(events) == WatchEvent("web", "web-0", "STARTING", None, "1", record)
        naming.publish("web", "web-0", {**record, "status": "RUNNING"})
        assert next(events).status == "RUNNING"
        naming.publish("web", "web-0", {**record, "status": "RUNNING", "updated_at": 2.0})  # no status change
        naming.publish("web", "web-1", {**record, "pod": "web-1"})
        new = next(events)
        assert (new.pod, new.status, new.previous) == ("web-1", "STARTING", None)
        naming.remove("web", "web-0")
        gone = next(events)
        assert (gone.pod, gone.status, gone.previous) == ("web-0", None, "RUNNING")
        stop.set()
        assert list(events) == []
    finally:
        zk.stop()
        zk.close()


def test_admin_calls_reach_resman(client: Client, canned: CannedCluster) -> None:
    assert [h["id"] for h in client.hosts("default")] == ["host-0", "host-1"]
    assert client.drain("host-0") == {"host": "host-0", "admin": "draining"}
    assert client.wait_drained("host-0", poll=0.01)["containers"] == 0
    assert client.label("host-1", ["gpu", "big"])["labels"] == ["big", "gpu"]
    assert client.move("host-1", "gpu") == {"host": "host-1", "pool": "gpu"}
    with pytest.raises(NotFound):
        client.host("host-9")
    assert [key for _, key in canned.calls("host.drain")] == [USER]
    assert client.ping("resman")["id"] == "resman-1"
    assert client.leader("appmaster").identity == "appmaster-1"  # type: ignore[union-attr]


def test_status_summarises_hosts_and_jobs(client: Client) -> None:
    client.submit(WEB)
    summary = client.status()
    assert summary["cluster"] == CLUSTER
    assert summary["leaders"]["appmaster"]["id"] == "appmaster-1"
    total = summary["total"]
    assert (total["hosts"], total["alive"], total["lost"], total["containers"]) == (3, 2, 1, 4)
    assert total["capacity"] == {"cpu": 8.0, "memory": 16 << 30}
    assert total["used"] == {"cpu": 3.0, "memory": 4 << 30}
    assert total["jobs"] == {"DEPLOYING": 1}
    assert summary["pools"]["gpu"]["hosts"] == 1 and summary["pools"]["gpu"]["jobs"] == {}


def test_summarize_counts_admin_states() -> None:
    hosts = [{"id": "a", "pool": "p", "status": "alive", "admin": "draining", "capacity": {"cpu": 2, "memory": 10},
              "free": {"cpu": 0.5, "memory": 4}, "containers": 3},
             {"id": "b", "pool": "p", "status": "alive", "admin": "offline", "capacity": {}, "free": {}}]
    summary = summarize("c", hosts, [{"pool": "q", "state": "RUNNING"}], {"resman": None})
    pool = summary["pools"]["p"]
    assert (pool["draining"], pool["offline"], pool["containers"]) == (1, 1, 3)
    assert pool["used"] == {"cpu": 1.5, "memory": 6}
    assert summary["pools"]["q"]["jobs"] == {"RUNNING": 1} and summary["leaders"] == {"resman": None}


def test_no_leader_is_unreachable_naming_the_path(zk_hosts: str, tmp_path: Path) -> None:
    canned = CannedCluster(zk_hosts, tmp_path)
    canned.close()  # the replicas' sessions are gone, and their leader records with them
    with Client(load_config(canned.config_path, env={}), deadline=1.0) as sdk:
        with pytest.raises(Unreachable, match=f"no appmaster leader in cluster '{CLUSTER}'.*appmaster/leader"):
            sdk.jobs()


def test_zookeeper_down_is_unreachable(tmp_path: Path) -> None:
    config = ClientConfig(cluster="c", zookeeper=f"127.0.0.1:{free_port()}", key=str(tmp_path / "k"), timeout=0.5)
    with Client(config) as sdk, pytest.raises(Unreachable, match="cannot connect to ZooKeeper"):
        sdk.jobs()
