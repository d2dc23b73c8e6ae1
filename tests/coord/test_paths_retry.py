"""Paths and retrying: pure logic, no ZooKeeper needed (connect's failure path included)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError

from galaxy.coord import Paths, connect, retrying
from galaxy.errors import InvalidInput, Unreachable
from galaxy.testing import free_port


def test_layout_follows_the_design() -> None:
    paths = Paths("prod")
    assert paths.root == "/galaxy/prod"
    assert paths.election("resman") == "/galaxy/prod/resman/election"
    assert paths.leader("appmaster") == "/galaxy/prod/appmaster/leader"
    assert paths.state() == "/galaxy/prod/state"
    assert paths.state("jobs") == "/galaxy/prod/state/jobs"
    assert paths.state("jobs", "web") == "/galaxy/prod/state/jobs/web"
    assert paths.naming() == "/galaxy/prod/naming"
    assert paths.naming("web", "web-3") == "/galaxy/prod/naming/web/web-3"
    assert paths.trace("pod", "web-3") == "/galaxy/prod/trace/pod/web-3"
    assert Paths("prod") == paths and hash(Paths("prod")) == hash(paths)


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "x\x00y", "tab\there", "z" * 256, 7])
def test_names_that_would_change_the_path_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        Paths(bad)  # type: ignore[arg-type]
    assert err.value.field == "cluster"
    with pytest.raises(InvalidInput) as err:
        Paths("ok").naming("job", bad)  # type: ignore[arg-type]
    assert err.value.field == "pod"


def test_unknown_role_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        Paths("ok").leader("agent")
    assert err.value.field == "role"


def test_retrying_retries_connection_trouble_then_answers() -> None:
    failures = [ConnectionLoss(), OperationTimeoutError()]

    def flaky(a: int, *, b: int) -> int:
        if failures:
            raise failures.pop(0)
        return a + b

    assert retrying(flaky, 1, b=2, deadline=5.0) == 3
    assert failures == []


def test_retrying_surfaces_answers_at_once_and_gives_up_at_the_deadline() -> None:
    calls = 0

    def missing() -> None:
        nonlocal calls
        calls += 1
        raise NoNodeError()

    with pytest.raises(NoNodeError):
        retrying(missing, deadline=5.0)
    assert calls == 1

    def down() -> None:
        raise ConnectionLoss()

    with pytest.raises(Unreachable, match="did not answer"):
        retrying(down, deadline=0.3)


def test_connect_names_the_hosts_it_could_not_reach() -> None:
    hosts = f"127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable, match=hosts):
        connect(hosts, timeout=0.5)
    with pytest.raises(InvalidInput) as err:
        connect("  ")
    assert err.value.field == "hosts"


def test_each_server_of_an_ensemble_gets_a_share_of_the_session_timeout_to_connect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent server (no reset) must not use up the session timeout before the others are tried
    (tests/coord/test_ensemble.py cuts one of three servers off and connects through the rest)."""
    from galaxy.coord._client import ZooKeeperHandler, host_connect_timeout

    assert host_connect_timeout("a:2181,b:2181,c:2181/chroot", 4.0) == pytest.approx(4.0 / 3)
    assert host_connect_timeout("a:2181", 4.0) == 4.0
    assert host_connect_timeout(",".join(f"h{i}:2181" for i in range(7)), 4.0) == 1.0
    assert host_connect_timeout("a:2181,b:2181", 0.5) == 0.5
    handler = ZooKeeperHandler(1.5)
    seen: dict[str, float] = {}

    def fake(*args: object, **kwargs: float) -> None:
        seen.update(kwargs)
    monkeypatch.setattr("kazoo.handlers.utils.create_tcp_connection", fake)
    handler.create_connection(address=("a", 1), hostname="a", timeout=10.0)
    assert seen["timeout"] == 1.5
