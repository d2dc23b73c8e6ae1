from __future__ import annotations

import pytest

from galaxy.errors import InvalidInput, PermissionDenied, QuotaExceeded
from galaxy.mesh import Keypair
from galaxy.spec import parse_job
from galaxy.tenancy import (
    Demand,
    Quota,
    User,
    check_quota,
    check_user_name,
    job_demand,
    kind_of,
    require,
    require_admin,
    resolve,
)

GIB = 1 << 30


def spec(replicas: int = 2, cpu: float = 1, memory: str = "1Gi", disk: str | None = "2Gi") -> object:
    resources: dict[str, object] = {"cpu": cpu, "memory": memory}
    if disk:
        resources["disks"] = [{"medium": "ssd", "size": disk, "path": "/data"}]
    return parse_job({"name": "web", "replicas": replicas, "resources": resources,
                      "program": {"version": "1", "start": "sleep 1000"}})


@pytest.mark.parametrize("name", ["admin", "resman", "agent-h1", "appmaster-x", "worker", "Bad", "1x", "", "a" * 33])
def test_user_names_never_take_component_names_or_bad_shapes(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_user_name(name)
    assert err.value.field == "user"


@pytest.mark.parametrize(("name", "kind"), [("admin", "admin"), ("resman", "resman"), ("resman-h1", "resman"),
                                            ("appmaster-h2", "appmaster"), ("agent", "agent"), ("agent-7", "agent"),
                                            ("worker:web", "worker"), ("alice", "user"), (None, "unknown")])
def test_kind_follows_the_key_name(name: str | None, kind: str) -> None:
    assert kind_of(name) == kind


def test_grants_decide_per_pool_and_permission() -> None:
    alice = User.new("alice", Keypair.generate().public).granted("prod", ["job.create", "job.read"])
    who = resolve("alice", {"alice": alice})
    require(who, "job.create", "prod")
    with pytest.raises(PermissionDenied) as err:
        require(who, "job.create", "test")
    assert "job.create" in str(err.value) and "test" in str(err.value)
    with pytest.raises(PermissionDenied):
        require(who, "job.delete", "prod")
    with pytest.raises(PermissionDenied):
        require_admin(who, "creating users")
    revoked = alice.revoked("prod", ["job.create"])
    assert revoked.grants == {"prod": frozenset({"job.read"})}
    assert alice.revoked("prod", None).grants == {}


def test_a_user_without_a_record_and_components_hold_nothing() -> None:
    with pytest.raises(PermissionDenied):
        require(resolve("mallory", {}), "job.read", "default")
    with pytest.raises(PermissionDenied) as err:
        require(resolve("agent-1", {}), "job.read", "default")
    assert "may not use the user API" in str(err.value)
    require(resolve("admin", {}), "host.admin", "anything")


def test_record_round_trips() -> None:
    user = User.new("bob", Keypair.generate().public, admin=True).granted("p1", ["job.read"]) \
        .with_quota(Quota(cpu=4, memory=8 * GIB, disk={"ssd": GIB}, jobs=3, replicas=10))
    assert User.from_dict(user.to_dict()) == user


def test_quota_parse_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        Quota.from_dict({"cpu": -1})
    assert err.value.field == "quota.cpu"
    with pytest.raises(InvalidInput) as err:
        Quota.from_dict({"gpus": 1})
    assert err.value.field == "quota"
    merged = Quota(cpu=2, jobs=1).merged(Quota(memory=GIB), frozenset({"jobs"}))
    assert (merged.cpu, merged.memory, merged.jobs) == (2, GIB, None)


def test_job_demand_multiplies_the_per_replica_ask() -> None:
    d = job_demand(spec(replicas=3, cpu=0.5))
    assert (d.cpu, d.memory, d.disk, d.jobs, d.replicas) == (1.5, 3 * GIB, {"ssd": 6 * GIB}, 1, 3)
    bigger = job_demand(spec(replicas=3, cpu=0.5), also=spec(cpu=2, disk=None))
    assert bigger.cpu == 6 and bigger.disk == {"ssd": 6 * GIB}


def test_quota_check_reports_asked_used_limit() -> None:
    quota = Quota(cpu=4, disk={"ssd": 10 * GIB})
    used = job_demand(spec(replicas=2))                        # 2 cores, 4 GiB ssd
    check_quota("alice", quota, used, job_demand(spec(replicas=2)))
    with pytest.raises(QuotaExceeded) as err:
        check_quota("alice", quota, used, job_demand(spec(replicas=3)))
    assert err.value.field == "quota.cpu"
    assert err.value.details == {"quota": "cpu", "asked": 3.0, "used": 2.0, "limit": 4.0, "unit": "cores"}
    assert "asked 3 cores, used 2 cores, limit 4 cores" in str(err.value)
    with pytest.raises(QuotaExceeded) as err:
        check_quota("alice", Quota(disk={"ssd": 5 * GIB}), used, Demand(disk={"ssd": 2 * GIB}))
    assert err.value.field == "quota.disk.ssd"


def test_shrinking_passes_even_over_a_lowered_limit() -> None:
    check_quota("alice", Quota(cpu=1), job_demand(spec(replicas=4)), Demand(cpu=-2, replicas=-2))


def test_quota_error_keeps_its_figures_on_the_wire() -> None:
    from galaxy.errors import GalaxyError

    with pytest.raises(QuotaExceeded) as err:
        check_quota("a", Quota(jobs=0), Demand(), Demand(jobs=1))
    back = GalaxyError.from_wire(err.value.to_wire())
    assert isinstance(back, QuotaExceeded) and back.details == err.value.details
