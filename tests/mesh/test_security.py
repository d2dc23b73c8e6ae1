"""CURVE + ZAP: only keys in the KeyRing get answers, and removing a key cuts a peer off at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from galaxy.errors import Timeout, Unreachable
from galaxy.mesh import Client, Keypair, KeyRing, PeerInfo, Request, Server
from tests.mesh.conftest import unique, wait_for


def test_unknown_key_gets_no_answer_known_key_does(server: Server, make_client: Callable[..., Client]) -> None:
    calls: list[Request] = []

    @server.route("echo")
    def echo(req: Request) -> object:
        calls.append(req)
        return req.body

    stranger = make_client(server, keypair=Keypair.generate(), timeout=0.5, retries=1)

    with pytest.raises(Timeout):
        stranger.call("echo", "let me in")
    assert not stranger.connected
    assert calls == [] and server.peers() == {}
    assert server.stats["zap_denied"] >= 1

    assert make_client(server).call("echo", "member") == "member"
    assert [c.body for c in calls] == ["member"]


def test_client_with_the_wrong_server_key_gets_no_answer(server: Server,
                                                        make_client: Callable[..., Client]) -> None:
    server.route("echo", lambda req: req.body)
    impostor_view = make_client(server, server_public=Keypair.generate().public, timeout=0.5)
    with pytest.raises(Timeout):
        impostor_view.call("echo", 1)


def test_key_name_comes_from_the_keyring_not_the_message(make_server: Callable[..., Server],
                                                         make_client: Callable[..., Client]) -> None:
    alice, bob = Keypair.generate(), Keypair.generate()
    ring = KeyRing({alice.public: "user:alice", bob.public: "user:bob"})
    server = make_server(keyring=ring)
    server.route("whoami", lambda req: [req.key_name, req.key])
    as_alice = make_client(server, keypair=alice, identity="galaxy-claims-to-be-bob")
    as_bob = make_client(server, keypair=bob)
    assert as_alice.call("whoami", {"user": "bob"}) == ["user:alice", alice.public]
    assert as_bob.call("whoami") == ["user:bob", bob.public]


def test_removing_a_key_cuts_off_a_connected_client_at_once(
        make_server: Callable[..., Server], make_client: Callable[..., Client]) -> None:
    keep, revoke = Keypair.generate(), Keypair.generate()
    ring = KeyRing({keep.public: "agent:keep", revoke.public: "agent:revoke"})
    server = make_server(keyring=ring)
    served: list[str | None] = []

    @server.route("work")
    def work(req: Request) -> str:
        served.append(req.key_name)
        return "done"

    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    victim_id = unique("victim")
    victim = make_client(server, keypair=revoke, identity=victim_id, timeout=0.5)
    other = make_client(server, keypair=keep)
    victim.route("status", lambda req: "alive")
    assert victim.call("work") == "done" and other.call("work") == "done"

    assert ring.remove(revoke.public)
    # The very next message is refused: no heartbeat interval, no reconnect needed.
    with pytest.raises(Timeout):
        victim.call("work")
    assert served == ["agent:revoke", "agent:keep"]
    assert victim_id not in server.peers()
    with pytest.raises(Unreachable):
        server.request(victim_id, "status", timeout=1)
    heard: list[Request] = []
    victim.on_event("notice", heard.append)
    server.send_event(victim_id, "notice", "you should not see this")
    assert server.stats["dropped_unauthorized"] >= 1
    wait_for(lambda: [p for p in lost if p.identity == victim_id], what="on_peer_lost for the revoked key")
    assert other.call("work") == "done"  # the others are untouched

    ring.add(revoke.public, "agent:revoke-again")  # re-admitted: the same connection works again
    assert victim.call("work", timeout=2) == "done"
    assert served[-1] == "agent:revoke-again"
    assert heard == []  # the event sent while revoked never went out
