"""``galaxy user …`` and ``galaxy pool …`` through the real entry point against the canned cluster (real
mesh + ZooKeeper): key files, what is sent, tables, JSON, and errors that name the flag or the quota."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from galaxy.mesh import Keypair
from galaxy.sdk.config import ENV
from tests.cli.conftest import Run
from tests.sdk.canned import CLUSTER, USER, CannedCluster

pytestmark = pytest.mark.zk

WEB = str(Path(__file__).resolve().parents[2] / "examples" / "web.yaml")
GI = 1 << 30


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines() if line.strip()]


def test_create_writes_a_private_key_sends_only_its_public_half_and_never_overwrites(
        canned: CannedCluster, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("user", "create", "bob")
    key = tmp_path / "bob.key"
    assert (code, err) == (0, "")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pair = Keypair.load(key)
    [(body, sender)] = canned.calls("user.create")
    assert body == {"user": "bob", "key": pair.public, "admin": False} and sender == USER
    assert pair.secret not in repr(canned.model.calls)
    assert out.splitlines()[0] == "user bob created"
    assert f"  galaxy config init --cluster {CLUSTER} --zookeeper {canned.zk_hosts} --key {key}" in out
    assert f"export GALAXY_KEY={key}" in out

    before = key.read_bytes()
    code, out, err = run("user", "create", "dave", "--key-out", str(key))
    assert (code, out) == (1, "") and err == (f"error: key-out: {key} already exists; a key file is never "
                                              f"overwritten: choose another --key-out\n")
    assert key.read_bytes() == before and len(canned.calls("user.create")) == 1

    # the written key is the new user's login: bob is who the cluster says, with no authority yet
    monkeypatch.setenv(ENV["key"], str(key))
    code, out, _ = run("user", "whoami")
    assert code == 0 and rows(out)[:3] == [["User:", "bob"], ["Kind:", "user"], ["Admin:", "no"]]
    assert "no grants" in out
    assert run("user", "list") == (1, "", "error: user 'bob' is not an administrator\n")


def test_a_refused_create_leaves_no_key_file(canned: CannedCluster, run: Run, tmp_path: Path) -> None:
    run("user", "create", "bob", "--key-out", str(tmp_path / "first.key"))
    code, _, err = run("user", "create", "bob", "--admin", "--key-out", str(tmp_path / "second.key"))
    assert (code, err) == (1, "error: user 'bob' exists\n")
    assert canned.calls("user.create")[1][0]["admin"] is True
    assert not (tmp_path / "second.key").exists() and not (tmp_path / "second.key.pub").exists()
    assert run("user", "create", "admin") == (1, "", "error: name: 'admin' is reserved for the cluster's own "
                                                     "components\n")


def test_grants_quota_and_the_tables_that_show_them(canned: CannedCluster, run: Run, tmp_path: Path) -> None:
    run("user", "create", "bob", "--key-out", str(tmp_path / "bob.key"))
    assert run("user", "grant", "bob", "default", "all") == \
        (0, "user bob: grants default:job.create+job.delete+job.read+job.update\n", "")
    assert run("user", "grant", "bob", "gpu", "job.read", "host.admin")[0] == 0
    assert canned.calls("user.grant")[1][0] == {"user": "bob", "pool": "gpu", "permissions": ["job.read", "host.admin"]}
    assert run("user", "revoke", "bob", "default", "job.delete,job.update")[1] == \
        "user bob: grants default:job.create+job.read;gpu:host.admin+job.read\n"
    assert run("user", "revoke", "bob", "gpu")[1] == "user bob: grants default:job.create+job.read\n"
    assert run("user", "grant", "bob", "default", "job.craete")[2] == \
        "error: permissions: expected one of job.create, job.update, job.delete, job.read, host.admin, got 'job.craete'\n"

    code, out, _ = run("user", "quota", "set", "bob", "--cpu", "8", "--memory", "16Gi", "--disk", "ssd=100Gi,hdd=1Ti",
                       "--jobs", "10", "--replicas", "100")
    assert code == 0
    assert canned.calls("quota.set")[0][0]["quota"] == {"cpu": 8.0, "memory": 16 * GI,
                                                         "disk": {"ssd": 100 * GI, "hdd": 1 << 40},
                                                         "jobs": 10, "replicas": 100}
    assert rows(out) == [["quota", "of", "bob"], ["QUOTA", "LIMIT", "USED"], ["cpu", "8", "0"], ["memory", "16Gi", "0B"],
                         ["disk.hdd", "1Ti", "0B"], ["disk.ssd", "100Gi", "0B"], ["jobs", "10", "0"],
                         ["replicas", "100", "0"]]
    code, out, _ = run("user", "quota", "set", "bob", "--clear", "cpu,disk.ssd", "--output", "json")
    assert canned.calls("quota.set")[1][0] == {"user": "bob", "quota": {}, "clear": ["cpu", "disk.ssd"]}
    assert json.loads(out)["limit"] == {"cpu": None, "memory": 16 * GI, "disk": {"hdd": 1 << 40}, "jobs": 10,
                                        "replicas": 100}

    run("job", "submit", WEB)
    code, out, _ = run("user", "quota", "show")   # alice's own: no limits, her job's figures used
    assert rows(out)[2:5] == [["cpu", "unlimited", "750m"], ["memory", "unlimited", "192Mi"], ["jobs", "unlimited", "1"]]
    code, out, _ = run("user", "list")
    assert rows(out)[0] == ["USER", "ADMIN", "GRANTS", "QUOTA", "CREATED"]
    assert rows(out)[2][:4] == ["bob", "no", "default:job.create+job.read",
                                "memory=16Gi,disk.hdd=1Ti,jobs=10,replicas=100"]
    code, out, _ = run("user", "show", "bob")
    assert "User:     bob\n" in out and rows(out.split("\n\n")[1]) == [["POOL", "PERMISSIONS"],
                                                                       ["default", "job.create,job.read"]]


@pytest.mark.parametrize(("flags", "error"), [
    (("--memory", "lots"), "error: memory: expected bytes: an integer, or a number with a unit"),
    (("--disk", "ssd"), "error: disk: expected MEDIUM=SIZE[,MEDIUM=SIZE…] such as ssd=100Gi,hdd=1Ti, got 'ssd'"),
    (("--disk", "ssd=big"), "error: disk.ssd: expected bytes"),
    (("--cpu", "eight"), "error: cpu: expected cores such as 8, 2.5 or 500m, got 'eight'"),
    (("--jobs", "ten"), "error: jobs: expected a whole number >= 0, got 'ten'"),
    (("--clear", "gpu"), "error: clear: cannot clear 'gpu'"),
    ((), "error: quota: give a limit to set"),
])
def test_a_bad_quota_flag_is_named_and_nothing_is_sent(canned: CannedCluster, run: Run, flags: tuple[str, ...],
                                                       error: str) -> None:
    code, out, err = run("user", "quota", "set", USER, *flags)
    assert (code, out) == (1, "") and err.startswith(error) and len(err.splitlines()) == 1
    assert canned.calls("quota.set") == []


def test_a_refused_submit_prints_the_quota_figures(canned: CannedCluster, run: Run) -> None:
    run("user", "quota", "set", USER, "--replicas", "2")
    assert run("job", "submit", WEB) == (1, "", f"error: quota.replicas: user '{USER}' would pass the replicas "
                                                f"quota: asked 3, used 0, limit 2\n")


def test_usage_table_and_since(canned: CannedCluster, run: Run) -> None:
    assert run("user", "usage")[1].endswith("no usage recorded\n")
    assert canned.model.tenancy is not None
    figures = {"cpu_used": 5400.0, "cpu_reserved": 7200.0, "memory_used": 1800.0, "memory_reserved": 3600.0,
               "disk_reserved": {"ssd": 36000.0}}
    canned.model.tenancy.usage = {"pools": {"default": figures, "gpu": {**figures, "disk_reserved": {"hdd": 360.0}}},
                                  "total": {"cpu_used": 10800.0, "cpu_reserved": 14400.0, "memory_used": 3600.0,
                                            "memory_reserved": 7200.0, "disk_reserved": {"ssd": 36000.0, "hdd": 360.0}}}
    code, out, _ = run("user", "usage", USER, "--since", "2026-11-01")
    assert code == 0 and canned.calls("user.usage")[1][0] == {"user": USER, "since": 1793491200.0}
    table = rows(out)
    assert table[0][:3] == ["usage", "of", USER]
    assert table[1] == ["POOL", "CPU-USED(core-h)", "CPU-RESERVED(core-h)", "MEMORY-USED(GiB-h)",
                        "MEMORY-RESERVED(GiB-h)", "DISK-HDD(GiB-h)", "DISK-SSD(GiB-h)"]
    assert table[2:] == [["default", "1.50", "2.00", "0.50", "1.00", "0.00", "10.00"],
                         ["gpu", "1.50", "2.00", "0.50", "1.00", "0.10", "0.00"],
                         ["TOTAL", "3.00", "4.00", "1.00", "2.00", "0.10", "10.00"]]
    code, out, _ = run("user", "usage", "--since", "24h", "--pool", "gpu", "--output", "json")
    report = json.loads(out)
    assert list(report["pools"]) == ["gpu"] and canned.calls("user.usage")[2][0]["pool"] == "gpu"
    assert abs(report["until"] - report["since"] - 86400) < 600
    assert run("user", "usage", "--since", "yesterday")[2].startswith("error: since: expected a duration ago (24h, 7d)")
    assert len(canned.calls("user.usage")) == 3


def test_pool_verbs(canned: CannedCluster, run: Run) -> None:
    assert run("pool", "create", "gpu", "--description", "GPU hosts") == (0, "pool gpu created\n", "")
    code, out, _ = run("pool", "list")
    assert rows(out) == [["POOL", "DECLARED", "HOSTS", "JOBS", "DESCRIPTION"],
                         ["default", "yes", "0", "0", "where", "hosts", "go", "unless", "told", "otherwise"],
                         ["gpu", "yes", "0", "0", "GPU", "hosts"]]
    assert run("pool", "delete", "gpu", "--output", "json")[1] == '{\n  "pool": "gpu",\n  "deleted": true\n}\n'
    assert run("pool", "delete", "default") == (1, "", "error: pool: the default pool cannot be deleted\n")
    assert run("pool", "create", "Bad_Pool")[2].startswith("error: name: expected a pool name that is a DNS label")


@pytest.mark.parametrize("args", [
    ("user", "whoami"), ("user", "list"), ("user", "show"), ("user", "quota", "show"), ("user", "usage"),
    ("pool", "list"),
])
def test_every_tenancy_read_prints_one_json_document(canned: CannedCluster, run: Run, args: tuple[str, ...]) -> None:
    code, out, err = run(*args, "--output", "json")
    assert code == 0 and err == ""
    json.loads(out)


def test_completion_knows_the_new_nouns(run: Run) -> None:
    code, out, _ = run("--", "--completion")
    assert code == 0
    for word in ("user", "pool", "whoami", "grant", "revoke", "quota", "usage", "--key-out", "--since"):
        assert word in out


def test_json_create_names_the_key_file(canned: CannedCluster, run: Run, tmp_path: Path) -> None:
    target = tmp_path / "keys" / "erin.key"
    os.makedirs(target.parent)
    code, out, _ = run("user", "create", "erin", "--key-out", str(target), "--output", "json")
    created = json.loads(out)
    assert code == 0 and created["key_file"] == str(target) and created["key"] == Keypair.load_public(target)
