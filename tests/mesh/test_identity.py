"""Identity = key: a routing identity is bound to the key that first used it.

Real CURVE sockets on 127.0.0.1: a second key claiming a live (or just gone) identity is refused,
counted and logged and never receives what the server sends to that identity; the same key
dialling again takes it over at once; a reply counts only from the connection and key asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
import zmq

from galaxy.errors import IdentityRefused, InvalidInput, Unreachable
from galaxy.mesh import Client, IdentityPolicy, Keypair, KeyRing, PeerInfo, Request, Server, fingerprint, wire
from tests.mesh.conftest import wait_for

HOST = "host7"


class Keys:
    def __init__(self) -> None:
        self.agent, self.other_agent, self.mallory = Keypair.generate(), Keypair.generate(), Keypair.generate()
        self.ring = KeyRing({self.agent.public: "agent-host7", self.other_agent.public: "agent-host8",
                             self.mallory.public: "mallory"})


@pytest.fixture
def keys() -> Keys:
    return Keys()


def serving(make_client: Callable[..., Client], server: Server, keypair: Keypair, identity: str,
            answer: str, seen: list[Request] | None = None) -> Client:
    """A client that answers the server's `whoami` with `answer`, connected and known to the server."""
    client = make_client(server, keypair=keypair, identity=identity, start=False)

    def whoami(req: Request) -> str:
        if seen is not None:
            seen.append(req)
        return answer
    client.route("whoami", whoami)
    client.start()
    wait_for(lambda: client.call("echo", 1) == 1, what=f"{identity} served")
    return client


@pytest.fixture
def server(make_server: Callable[..., Server], keys: Keys) -> Server:
    srv = make_server(keyring=keys.ring, bind_grace=30.0)
    srv.route("echo", lambda req: req.body)
    srv.route("whoami", lambda req: [req.peer, req.key_name])
    return srv


def test_another_key_claiming_a_live_identity_is_refused_and_the_holder_keeps_working(
        server: Server, make_client: Callable[..., Client], keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="galaxy.mesh")
    joined: list[PeerInfo] = []
    server.on_peer_joined(joined.append)
    real = serving(make_client, server, keys.agent, HOST, "real")
    got_by_mallory: list[Request] = []
    mallory = make_client(server, keypair=keys.mallory, identity=HOST, start=False)
    mallory.route("whoami", lambda req: got_by_mallory.append(req) or "mallory")
    mallory.start()

    with pytest.raises(IdentityRefused) as refused:
        mallory.call("whoami")
    assert refused.value.field == "identity" and HOST in refused.value.message
    assert server.stats["identity_refused"] >= 1
    # Nothing changed: the identity is still the real Agent's, and it is the one the server reaches.
    assert server.peers()[HOST].key == keys.agent.public
    assert server.request(HOST, "whoami", timeout=2) == "real"
    assert real.call("whoami") == [HOST, "agent-host7"]
    assert got_by_mallory == [] and [p.identity for p in joined] == [HOST]
    line = next(r.getMessage() for r in caplog.records if "refused identity" in r.getMessage())
    assert repr(HOST) in line and fingerprint(keys.mallory.public) in line and "mallory" in line


def test_an_identity_stays_bound_for_the_grace_after_its_peer_is_gone(
        make_server: Callable[..., Server], make_client: Callable[..., Client], keys: Keys) -> None:
    server = make_server(keyring=keys.ring, bind_grace=3.0)
    server.route("echo", lambda req: req.body)
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    real = serving(make_client, server, keys.agent, HOST, "real")
    real.close()
    wait_for(lambda: lost, what="the real peer lost")
    mallory = make_client(server, keypair=keys.mallory, identity=HOST)
    with pytest.raises(IdentityRefused):
        mallory.call("echo", "too soon")           # recently live: still the real key's
    with pytest.raises(Unreachable):
        server.request(HOST, "whoami", timeout=1)   # and nothing is sent to the claimant
    # Once the grace is over the identity is free again (ResMan's policy keeps host names reserved).
    wait_for(lambda: _answers(mallory), timeout=10, what="the identity free after the grace")
    assert server.peers()[HOST].key == keys.mallory.public


def _answers(client: Client) -> bool:
    try:
        return client.call("echo", "now", timeout=0.5) == "now"
    except IdentityRefused:
        return False


def test_removing_the_holders_key_frees_its_identity_at_once(
        server: Server, make_client: Callable[..., Client], keys: Keys) -> None:
    """A key rotation: the old key leaves the ring, and the new one may take the identity without waiting."""
    serving(make_client, server, keys.agent, HOST, "old key")
    keys.ring.remove(keys.agent.public)
    successor = Keypair.generate()
    keys.ring.add(successor.public, "agent-host7")
    new = serving(make_client, server, successor, HOST, "new key")
    assert server.request(HOST, "whoami", timeout=2) == "new key"
    assert new.connected and server.stats["identity_refused"] == 0


def test_a_rotated_key_of_the_same_principal_takes_the_identity_over_while_the_old_one_is_trusted(
        server: Server, make_client: Callable[..., Client], keys: Keys) -> None:
    """A key rotation rolled out by the playbook: old and new key both trusted under the host's name
    while the roll lasts; the Agent restarted with the new key answers to its identity at once."""
    old = serving(make_client, server, keys.agent, HOST, "old key")
    successor = Keypair.generate()
    keys.ring.add(successor.public, "agent-host7")          # the old key stays in the ring
    new = serving(make_client, server, successor, HOST, "new key")
    assert server.request(HOST, "whoami", timeout=2) == "new key"
    assert server.peers()[HOST].key == successor.public and server.stats["identity_refused"] == 0
    # Another principal's key is still refused, also now.
    mallory = make_client(server, keypair=keys.mallory, identity=HOST)
    with pytest.raises(IdentityRefused):
        mallory.call("echo", "mine?")
    assert new.connected
    old.close()


def test_the_same_key_dialling_again_takes_its_identity_over_at_once(
        server: Server, make_client: Callable[..., Client], keys: Keys) -> None:
    joined: list[PeerInfo] = []
    lost: list[PeerInfo] = []
    server.on_peer_joined(joined.append)
    server.on_peer_lost(lost.append)
    first = serving(make_client, server, keys.agent, HOST, "first")
    release = threading.Event()
    first.route("hang", lambda req: release.wait(5) and "late", blocking=True)
    in_flight = server.request_async(HOST, "hang", timeout=5)
    wait_for(lambda: server.stats["requests_sent"] >= 1, what="the request in flight")
    # A restarted Agent: a new Client (a new connection) with the same key and identity, while the
    # server has not yet noticed the old one is gone. No grace to wait, no refusal.
    second = serving(make_client, server, keys.agent, HOST, "second")
    assert server.request(HOST, "whoami", timeout=2) == "second"
    with pytest.raises(Unreachable):     # asked of the old connection: failed at once, not timed out
        in_flight.result(timeout=1)
    release.set()
    # The same Client dialling again (its socket replaced) keeps its route, which libzmq hands over.
    second.connect_to(server.endpoint, server.public_key)
    wait_for(lambda: second.call("echo", "again") == "again", what="the same client back")
    assert server.request(HOST, "whoami", timeout=2) == "second"
    assert server.stats["identity_refused"] == 0
    assert [p.identity for p in joined] == [HOST] and lost == []


class AgentsOwnTheirHost(IdentityPolicy):
    """A per-host key `agent-<host>` may hold only `<host>`, and owns it."""

    def refuse(self, identity: str, key_name: str | None) -> str | None:
        if key_name and key_name.startswith("agent-") and key_name != f"agent-{identity}":
            return f"key {key_name} speaks for another host"
        return None

    def owns(self, identity: str, key_name: str | None) -> bool:
        return key_name == f"agent-{identity}"


def test_an_agent_key_claiming_another_hosts_identity_is_refused_by_the_policy(
        server: Server, make_client: Callable[..., Client], keys: Keys) -> None:
    server.identity_policy = AgentsOwnTheirHost()
    real = serving(make_client, server, keys.agent, HOST, "real")
    host8 = make_client(server, keypair=keys.other_agent, identity="host7-spare")
    with pytest.raises(IdentityRefused):
        host8.call("echo", "new id")                     # a host id nobody holds yet: the policy refuses
    wrong = make_client(server, keypair=keys.other_agent, identity=HOST)
    with pytest.raises(IdentityRefused):
        wrong.call("echo", "existing id")                # held by the real Agent: refused as well
    assert server.stats["identity_refused"] >= 2
    assert set(server.peers()) == {HOST} and real.call("echo", "fine") == "fine"


def test_an_owner_takes_its_identity_back_from_whoever_took_it_first(
        server: Server, make_client: Callable[..., Client], keys: Keys) -> None:
    """A user's client takes a host's name before its Agent first comes: the Agent is not kept out."""
    server.identity_policy = AgentsOwnTheirHost()
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    squatter = make_client(server, keypair=keys.mallory, identity=HOST)
    assert squatter.call("echo", "first") == "first"
    serving(make_client, server, keys.agent, HOST, "real")
    assert server.request(HOST, "whoami", timeout=2) == "real"
    assert [(p.identity, p.key_name) for p in lost] == [(HOST, "mallory")]
    with pytest.raises(IdentityRefused):
        squatter.call("echo", "again")                   # and it cannot take it back


def test_a_reply_from_another_connection_or_key_is_ignored(
        server: Server, make_client: Callable[..., Client], keys: Keys,
        raw_dealer: Callable[..., zmq.Socket[bytes]]) -> None:
    """Request ids are a counter, so anyone the server asked something can guess the id of the next
    request to a host. A forged answer with that id — from the forger's own identity, or claiming the
    host's — is refused; the request still gets its real answer."""
    asked = threading.Event()
    release = threading.Event()
    ids: list[int] = []
    real = make_client(server, keypair=keys.agent, identity=HOST, start=False)

    def create(req: Request) -> str:
        ids.append(req.id)
        asked.set()
        release.wait(5)
        return "from the real agent"
    real.route("container.create", create, blocking=True)
    real.start()
    wait_for(lambda: real.call("echo", 1) == 1, what="the real agent known")
    pending = server.request_async(HOST, "container.create", {"secret": "worker key"}, timeout=5)
    assert asked.wait(3)
    forged = wire.encode(ids[0], wire.REP, "container.create", "from mallory")
    own = raw_dealer(server, "mallory-1", keys.mallory)
    own.send(forged)                                     # from an identity of its own
    wait_for(lambda: server.stats["replies_refused"] == 1, what="the forged reply refused")
    posing = raw_dealer(server, HOST, keys.mallory)    # claiming the host's identity (a bare route)
    posing.send(forged)
    wait_for(lambda: server.stats["identity_refused"] >= 1, what="the posing reply refused")
    assert not pending.done()
    release.set()
    assert pending.result(timeout=3) == "from the real agent"
    assert server.peers()[HOST].key == keys.agent.public


def test_a_bare_route_taken_by_another_key_loses_the_peer_and_gives_the_taker_nothing(
        server: Server, keys: Keys, raw_dealer: Callable[..., zmq.Socket[bytes]]) -> None:
    """A bare DEALER's routing id (no Client nonce) can be taken in libzmq by anyone who knows it;
    the server notices at the taker's first message, drops the old peer and refuses the taker."""
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    victim = raw_dealer(server, "bare-host", keys.agent)
    victim.send(wire.encode(1, wire.REQ, "echo", "hi"))
    assert wire.parse(victim.recv()).body == "hi"
    taker = raw_dealer(server, "bare-host", keys.mallory)
    taker.send(wire.encode(2, wire.REQ, "echo", "mine now"))
    answer = wire.parse(taker.recv())
    assert answer.type == wire.ERR and answer.body["code"] == IdentityRefused.code
    wait_for(lambda: lost, what="the old peer dropped")
    assert "bare-host" not in server.peers()
    with pytest.raises(Unreachable):
        server.request("bare-host", "whoami", timeout=1)
    taker.rcvtimeo = 300
    with pytest.raises(zmq.Again):
        taker.recv()                                     # the request never went to the taker


def test_identities_are_checked_where_a_client_is_made(server: Server, keys: Keys) -> None:
    for bad in ("", "a\x00b", "x" * 243):
        with pytest.raises(InvalidInput) as err:
            Client(server.endpoint, server.public_key, keys.agent, bad)
        assert err.value.field == "identity"
