"""The SDK's checks of tenancy arguments, made before anything is sent (no cluster needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from galaxy.errors import InvalidInput
from galaxy.sdk import expand_permissions, parse_since, quota_change

GI = 1 << 30


def test_all_means_every_job_permission_but_not_host_admin() -> None:
    assert expand_permissions("all") == ["job.create", "job.update", "job.delete", "job.read"]
    assert expand_permissions(["job.read", "all", "host.admin"]) == \
        ["job.read", "job.create", "job.update", "job.delete", "host.admin"]
    with pytest.raises(InvalidInput, match="job.create") as caught:
        expand_permissions(["job.raed"])
    assert caught.value.field == "permissions"
    with pytest.raises(InvalidInput):
        expand_permissions([])


def test_quota_figures_take_the_job_files_units() -> None:
    change = quota_change(cpu="500m", memory="16Gi", disk={"ssd": "100Gi", "hdd": 1 << 40}, jobs=10, replicas=0,
                          clear=["disk.nvme"])
    assert change == {"quota": {"cpu": 0.5, "memory": 16 * GI, "disk": {"ssd": 100 * GI, "hdd": 1 << 40},
                                "jobs": 10, "replicas": 0}, "clear": ["disk.nvme"]}
    assert quota_change(cpu=64) == {"quota": {"cpu": 64.0}, "clear": []}   # no 1024-core cap: a cluster-wide limit
    assert quota_change(clear="cpu") == {"quota": {}, "clear": ["cpu"]}


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"memory": "lots"}, "memory", "256Mi"),
    ({"disk": {"ssd": "-1Gi"}}, "disk.ssd", "negative"),
    ({"disk": {"SSD!": "1Gi"}}, "disk", "medium"),
    ({"cpu": "eight"}, "cpu", "500m"),
    ({"cpu": -1}, "cpu", "from 0"),
    ({"jobs": 1.5}, "jobs", "whole number"),
    ({"replicas": True}, "replicas", "whole number"),
    ({"clear": ["gpu"]}, "clear", "disk.<medium>"),
    ({"cpu": 2, "clear": ["cpu"]}, "clear", "both set and cleared"),
    ({}, "quota", "give a limit"),
])
def test_bad_quota_figures_name_their_argument(kwargs: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        quota_change(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_since_reads_durations_dates_and_epochs() -> None:
    now = 1_800_000_000.0
    assert parse_since("24h", now) == now - 86400
    assert parse_since("1d12h", now) == now - 1.5 * 86400
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-01T06:30+01:00", now) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp()
    assert parse_since("1764000000", now) == 1764000000.0
    assert parse_since(1764000000, now) == 1764000000.0
    for bad in ("yesterday", "2026-13-01", "-5h", "", -1):
        with pytest.raises(InvalidInput, match="24h") if bad != -1 else pytest.raises(InvalidInput) as caught:
            parse_since(bad, now)
        assert caught.value.field == "since"


def test_policy_rules_take_the_cli_forms_and_come_out_normalised() -> None:
    from galaxy.sdk import policy_body
    from galaxy.sdk._tenancy import host_path_rule

    assert policy_body() == {"root_users": [], "host_paths": [], "package_sources": [], "capabilities": []}
    body = policy_body(root_users=("carol", "bob"), host_paths=["/b:rw", "/a", {"path": "/c", "writable": False}],
                       package_sources=["https://h:8443/x/"], capabilities=["chown"])
    assert body == {"root_users": ["bob", "carol"],
                    "host_paths": [{"path": "/a", "writable": False}, {"path": "/b", "writable": True},
                                   {"path": "/c", "writable": False}],
                    "package_sources": ["https://h:8443/x"], "capabilities": ["CHOWN"]}
    assert host_path_rule("/srv/a:b:ro", "x") == {"path": "/srv/a:b", "writable": False}
    with pytest.raises(InvalidInput) as caught:
        policy_body(root_users="bob")
    assert caught.value.field == "root_users"
