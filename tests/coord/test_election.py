"""Leader election against a real ZooKeeper: one leader, fast handover, fenced writes after deposal."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from galaxy.coord import (
    Election,
    LeaderInfo,
    Leadership,
    Paths,
    StateStore,
    connect,
    publish_leader,
    read_leader,
)
from galaxy.errors import InvalidInput, NotLeader
from tests.coord.helpers import eventually

pytestmark = pytest.mark.zk

REPO = Path(__file__).resolve().parents[2]


class Contender:
    """One replica: its own session, an Election, and a record of its leaderships."""

    def __init__(self, hosts: str, paths: Paths, identity: str, session_timeout: float = 4.0) -> None:
        self.client: KazooClient = connect(hosts, session_timeout=session_timeout)
        self.paths = paths
        self.identity = identity
        self.election = Election(self.client, paths, "resman", identity)
        self.leadership: Leadership | None = None
        self.elected_at: float | None = None
        self.terms = 0

    def serve(self, leadership: Leadership) -> None:
        self.elected_at = time.monotonic()
        self.terms += 1
        publish_leader(self.client, self.paths, "resman",
                       LeaderInfo(self.identity, f"tcp://{self.identity}:7000", f"pk-{self.identity}"),
                       leadership=leadership)
        self.leadership = leadership
        leadership.lost.wait()
        self.leadership = None

    @property
    def leading(self) -> bool:
        return self.leadership is not None and self.leadership.active

    def wait_leadership(self, timeout: float = 10.0) -> Leadership:
        leadership = eventually(lambda: self.leadership, timeout, what=f"{self.identity} elected")
        assert leadership is not None
        return leadership

    def wait_record(self, timeout: float = 10.0) -> LeaderInfo:
        """The leader record, once it names this contender."""
        def probe() -> LeaderInfo | None:
            info = read_leader(self.client, self.paths, "resman")
            return info if info is not None and info.identity == self.identity else None
        info = eventually(probe, timeout, what=f"{self.identity}'s leader record")
        assert info is not None
        return info

    def start(self) -> Contender:
        self.election.start(self.serve)
        return self

    def close(self) -> None:
        self.election.stop()
        self.client.stop()
        self.client.close()


@pytest.fixture
def contenders(zk_hosts: str) -> Iterator[list[Contender]]:
    made: list[Contender] = []
    paths = Paths("c1")
    made.extend(Contender(zk_hosts, paths, f"replica-{i}") for i in range(3))
    try:
        yield made
    finally:
        for contender in made:
            contender.close()


def leaders(group: list[Contender]) -> list[Contender]:
    return [c for c in group if c.leading]


def test_three_contenders_elect_exactly_one_leader_whose_record_is_readable(contenders: list[Contender]) -> None:
    for contender in contenders:
        contender.start()
    leader = eventually(lambda: leaders(contenders), what="a leader")[0]
    # Everyone is queued, and nobody else ever becomes leader while the first one holds.
    eventually(lambda: len(contenders[0].election.contenders()) == 3, what="three contenders")
    assert contenders[0].election.contenders()[0] == leader.identity
    assert leaders(contenders) == [leader]

    info = eventually(lambda: read_leader(leader.client, leader.paths, "resman"), what="leader record")
    assert info == LeaderInfo(leader.identity, f"tcp://{leader.identity}:7000", f"pk-{leader.identity}")


def three_campaigning(contenders: list[Contender]) -> tuple[Contender, Leadership]:
    """Start the three contenders; the one that leads, and its leadership, once all three queue."""
    for contender in contenders:
        contender.start()
    first = eventually(lambda: leaders(contenders), what="a leader")[0]
    eventually(lambda: len(first.election.contenders()) == 3, what="three contenders")
    leadership = first.leadership
    assert leadership is not None
    return first, leadership


def test_resign_hands_over_to_a_standby_quickly_and_removes_the_old_record(contenders: list[Contender]) -> None:
    first, leadership = three_campaigning(contenders)

    resigned_at = time.monotonic()
    leadership.resign()
    assert leadership.lost.is_set() and not leadership.active
    second = eventually(lambda: [c for c in leaders(contenders) if c is not first], what="a new leader")[0]
    assert second.elected_at is not None and second.elected_at - resigned_at < 2.0
    assert second.wait_record().identity == second.identity
    # The resigned replica campaigns again, as a standby at the back of the queue.
    eventually(lambda: first.election.contenders()[-1:] == [first.identity], what="re-queued")
    assert leaders(contenders) == [second]


def test_stop_resigns_long_before_a_session_timeout_and_leaves_the_queue(contenders: list[Contender]) -> None:
    for contender in contenders:
        contender.start()
    first = eventually(lambda: leaders(contenders), what="a leader")[0]
    eventually(lambda: len(first.election.contenders()) == 3, what="three contenders")
    first.election.stop()
    eventually(lambda: [c for c in leaders(contenders) if c is not first], timeout=2.0, what="handover")
    assert first.identity not in contenders[1].election.contenders()
    assert first.terms == 1


def test_leader_killed_with_sigkill_is_replaced_within_session_timeout_plus_one_second(
        zk_hosts: str) -> None:
    session_timeout = 2.0
    paths = Paths("c2")
    proc = subprocess.Popen([sys.executable, "-m", "tests.coord.leader_proc", zk_hosts, "c2", "doomed",
                             str(session_timeout)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    standby = Contender(zk_hosts, paths, "standby", session_timeout=session_timeout)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready and proc.stdout.readline().strip() == b"elected", "the child never led"
        standby.start()
        eventually(lambda: len(standby.election.contenders()) == 2, what="standby queued")
        assert not standby.leading

        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        eventually(lambda: standby.leading, timeout=session_timeout + 5, what="takeover")
        assert standby.elected_at is not None
        assert standby.elected_at - killed_at <= session_timeout + 1.0
        assert standby.wait_record().endpoint == "tcp://standby:7000"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        standby.close()


def test_expired_leader_loses_at_once_and_its_fenced_writes_change_nothing(
        zk_server: object, zk_hosts: str) -> None:
    paths = Paths("c3")
    leader = Contender(zk_hosts, paths, "leader").start()
    standby: Contender | None = None
    try:
        leadership = leader.wait_leadership()
        store = StateStore(leader.client, paths, leadership=leadership)
        store.put("jobs", "before", {"n": 1})
        standby = Contender(zk_hosts, paths, "standby").start()

        zk_server.expire_session(leader.client)  # type: ignore[attr-defined]
        eventually(lambda: leadership.lost.is_set(), timeout=5, what="lost")
        assert not leadership.active and not leadership.wait_active(0.1)
        with pytest.raises(NotLeader):
            store.put("jobs", "after", {"n": 2})
        eventually(lambda: standby.leading, what="the standby takes over")

        # A deposed leader that has not heard yet: same fence, no local knowledge of the loss.
        unaware = Leadership(leader.client, "leader", *leadership.fence)
        stale_store = StateStore(leader.client, paths, leadership=unaware)
        with pytest.raises(NotLeader):
            stale_store.put("jobs", "after", {"n": 2})
        with pytest.raises(NotLeader), stale_store.batch() as batch:
            for i in range(50):
                batch.put("jobs", f"b{i}", {"n": i})
            batch.delete("jobs", "before")
        reader = StateStore(standby.client, paths)
        assert reader.list("jobs") == {"before": {"n": 1}}
    finally:
        leader.close()
        if standby is not None:
            standby.close()


def test_dropped_connection_keeps_the_session_and_the_leadership(zk_server: object, zk_hosts: str) -> None:
    paths = Paths("c4")
    leader = Contender(zk_hosts, paths, "leader").start()
    try:
        leadership = leader.wait_leadership()
        zk_server.drop_connection(leader.client)  # type: ignore[attr-defined]
        assert leadership.wait_active(5.0)
        assert not leadership.lost.is_set()
        StateStore(leader.client, paths, leadership=leadership).put("hosts", "h1", {"ok": True})
        assert StateStore(leader.client, paths).get("hosts", "h1") == {"ok": True}
    finally:
        leader.close()


def test_on_elected_error_releases_the_lock_and_surfaces(zk_client: KazooClient) -> None:
    election = Election(zk_client, Paths("c5"), "appmaster", "faulty")

    def explode(leadership: Leadership) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        election.run(explode, threading.Event())
    assert election.contenders() == []


def test_bad_role_and_identity_are_refused(zk_client: KazooClient) -> None:
    with pytest.raises(InvalidInput) as err:
        Election(zk_client, Paths("c6"), "scheduler", "x")
    assert err.value.field == "role"
    with pytest.raises(InvalidInput) as err:
        Election(zk_client, Paths("c6"), "resman", "")
    assert err.value.field == "identity"


def test_leader_cut_off_from_zookeeper_goes_inactive_then_lost_after_a_session_timeout() -> None:
    """A hung server (SIGSTOP) looks like a partition: SUSPENDED, then lost on the client's own clock."""
    from galaxy.testing import ZooKeeperServer

    with ZooKeeperServer(tick_ms=500) as server:
        leader = Contender(server.hosts, Paths("c7"), "leader", session_timeout=2.0).start()
        try:
            leadership = leader.wait_leadership()
            server.pause()
            try:
                eventually(lambda: not leadership.active, timeout=5, what="suspended")
                assert not leadership.lost.is_set()  # not yet: the session may still come back
                eventually(lambda: leadership.lost.is_set(), timeout=5, what="lost without hearing")
                assert leadership.reason == "no word from ZooKeeper for a session timeout"
            finally:
                server.resume()
        finally:
            leader.close()


def test_a_cut_off_leaders_store_refuses_at_once_instead_of_waiting_for_the_link() -> None:
    """kazoo would queue a request made while disconnected until the link is back; the leader's store
    refuses it instead (Unreachable at its deadline while suspended, NotLeader once lost), so a
    daemon thread holding a lock around a read or write is never held for a whole partition."""
    from galaxy.errors import Unreachable
    from galaxy.testing import ZooKeeperServer

    def outcome(call: Any) -> BaseException | None:
        """What ``call`` raised, or None if it was still waiting 3 s later (on the server's return)."""
        raised: list[BaseException] = []
        worker = threading.Thread(target=lambda: raised.extend(_raised(call)), daemon=True)
        worker.start()
        worker.join(3.0)
        return raised[0] if raised else None

    with ZooKeeperServer(tick_ms=500) as server:
        leader = Contender(server.hosts, Paths("c8"), "leader", session_timeout=6.0).start()
        try:
            leadership = leader.wait_leadership()
            store = StateStore(leader.client, Paths("c8"), leadership=leadership, deadline=0.3)
            store.put("jobs", "web", {"replicas": 1})
            server.pause()
            try:
                eventually(lambda: not leadership.active, timeout=10, what="suspended")
                assert isinstance(outcome(lambda: store.get("jobs", "web")), Unreachable)
                assert isinstance(outcome(lambda: store.put("jobs", "web", {"replicas": 2})),
                                  Unreachable | NotLeader)
                eventually(lambda: leadership.lost.is_set(), timeout=10, what="lost")
                assert isinstance(outcome(lambda: store.get("jobs", "web")), NotLeader)
            finally:
                server.resume()
        finally:
            leader.close()


def _raised(call: Any) -> list[BaseException]:
    try:
        call()
    except BaseException as err:  # noqa: BLE001 - the test looks at what was raised
        return [err]
    return []


def test_leadership_lost_on_the_client_clock_while_the_session_survives_hands_over(
        contenders: list[Contender]) -> None:
    """The leader's connection stayed SUSPENDED for a session timeout, so it stopped leading, but the
    session itself survived (an ensemble re-election restarts every session's clock): its lock node
    must still go, or the whole queue waits behind a replica that no longer leads."""
    first, leadership = three_campaigning(contenders)

    lost_at = time.monotonic()
    leadership._lose("no word from ZooKeeper for a session timeout")      # the timer's call, session intact
    second = eventually(lambda: [c for c in leaders(contenders) if c is not first], timeout=3.0,
                        what="a new leader")[0]
    assert second.elected_at is not None and second.elected_at - lost_at < 2.0
    assert second.wait_record().identity == second.identity
    eventually(lambda: first.election.contenders()[-1:] == [first.identity], what="re-queued")


def test_a_stale_node_of_the_same_session_is_removed_when_campaigning_again(zk_hosts: str) -> None:
    """The resign's delete failed (connection down) and the session survived: the next round drops
    the node this session left as this identity instead of queueing behind it for good."""
    client = connect(zk_hosts, session_timeout=4.0)
    try:
        paths = Paths("c8")
        stale = client.create(f"{paths.election('resman')}/{'0' * 32}__lock__", b"leader",
                              ephemeral=True, sequence=True, makepath=True)
        # Only this identity's nodes go: another identity's node of the same session stays.
        kept = client.create(f"{paths.election('resman')}/{'1' * 32}__lock__", b"someone-else",
                             ephemeral=True, sequence=True)
        election = Election(client, paths, "resman", "leader")
        election.start(lambda leadership: leadership.lost.wait())
        try:
            eventually(lambda: client.exists(stale) is None, timeout=5, what="the stale node removed")
            assert client.exists(kept) is not None
            assert election.contenders() == ["someone-else", "leader"]
        finally:
            election.stop()
    finally:
        client.stop()
        client.close()
