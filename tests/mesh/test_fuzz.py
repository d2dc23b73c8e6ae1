"""Garbage from an authorised peer never crashes or stalls a Server; it is counted, then forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy.mesh import Client, Keypair, KeyRing, Server
from tests.mesh.conftest import FAST, unique, wait_for

MAX_FRAME = 4096
PROBE = 0  # ids of the probe requests never collide with the garbage's (which are > 0 or absent)

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
GOOD = {"v": 1, "id": 5, "type": "req", "method": "echo", "body": None}
bad_fields = st.sampled_from([
    ("v", 2), ("v", "1"), ("v", True), ("v", None), ("id", -1), ("id", "5"), ("id", 2**64), ("id", 1.5),
    ("type", "request"), ("type", 1), ("type", ["req"]), ("method", 7), ("method", "m" * 300),
    ("method", None),
])


@st.composite
def broken_envelopes(draw: st.DrawFn) -> dict[Any, Any]:
    envelope = dict(GOOD)
    for key, value in draw(st.lists(bad_fields, min_size=1, max_size=3)):
        envelope[key] = value
    for key in draw(st.lists(st.sampled_from(["v", "id", "type", "method", "body"]), max_size=2)):
        envelope.pop(key, None)
    if "v" in envelope and envelope.get("v") == 1 and type(envelope.get("v")) is int and \
            envelope.keys() >= {"id", "type", "method", "body"} and envelope != GOOD:
        envelope["v"] = 3  # keep every example broken
    if envelope == GOOD:
        envelope["v"] = 3
    return envelope


garbage = st.one_of(
    st.binary(max_size=200),
    cbor_values.map(cbor2.dumps),
    broken_envelopes().map(cbor2.dumps),
    st.integers(MAX_FRAME + 1, 2 * MAX_FRAME - 100).map(
        lambda n: cbor2.dumps({**GOOD, "body": "x" * n})),  # oversize, under libzmq's hard cap
)
messages = st.lists(garbage, min_size=1, max_size=3)  # more than one frame is itself an error


@dataclass
class Target:
    server: Server
    client: Client
    sock: zmq.Socket[bytes]
    keypair: Keypair  # the authorised key the raw socket uses


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[Target]:
    server_kp, client_kp = Keypair.generate(), Keypair.generate()
    server = Server("tcp://127.0.0.1:0", server_kp, KeyRing({client_kp.public: "fuzzer"}),
                    max_frame=MAX_FRAME, name=unique("fuzz"), **FAST).start()
    server.route("echo", lambda req: req.body)
    client = Client(server.endpoint, server_kp.public, client_kp, unique("good"), timeout=2.0,
                    name=unique("good"), **FAST).start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = 3000
    sock.curve_serverkey = server_kp.public.encode()
    sock.curve_publickey = client_kp.public.encode()
    sock.curve_secretkey = client_kp.secret.encode()
    sock.routing_id = unique("raw").encode()
    sock.connect(server.endpoint)
    try:
        yield Target(server, client, sock, client_kp)
    finally:
        ctx.destroy(0)
        client.close()
        server.stop()


def _probe(sock: zmq.Socket[bytes]) -> list[dict[str, Any]]:
    """Send a good request; return every reply up to and including its answer (errors come first)."""
    sock.send(cbor2.dumps({"v": 1, "id": PROBE, "type": "req", "method": "echo", "body": "probe"}))
    replies = []
    while True:
        reply = cbor2.loads(sock.recv())
        replies.append(reply)
        if reply["id"] == PROBE and reply["type"] == "rep":
            return replies


@settings(max_examples=150, deadline=None)
@given(frames=messages)
def test_garbage_is_counted_and_the_server_keeps_serving(
        fuzz_target: Target, frames: list[bytes]) -> None:
    server, sock = fuzz_target.server, fuzz_target.sock
    before = server.stats
    sock.send_multipart(frames)
    replies = _probe(sock)

    after = server.stats
    assert after["dropped_malformed"] == before["dropped_malformed"] + 1
    assert after["loop_errors"] == 0 and after["handler_errors"] == 0
    errors = replies[:-1]
    assert len(errors) <= 1
    for err in errors:  # a recognisable request gets a protocol error with its own id
        assert err["type"] == "err" and err["body"]["code"] == "protocol" and err["id"] == 5
    assert replies[-1]["body"] == "probe"


def test_good_calls_still_work_after_the_fuzzing(fuzz_target: Target) -> None:
    assert fuzz_target.client.call("echo", {"after": "fuzz"}) == {"after": "fuzz"}


def test_wrong_version_request_gets_a_protocol_error_with_its_id(
        fuzz_target: Target) -> None:
    sock = fuzz_target.sock
    sock.send(cbor2.dumps({**GOOD, "v": 2, "id": 41}))
    reply = cbor2.loads(sock.recv())
    assert (reply["type"], reply["id"], reply["body"]["code"]) == ("err", 41, "protocol")
    assert "version" in reply["body"]["message"]


def test_frames_over_the_hard_cap_cut_the_connection_not_the_server(
        fuzz_target: Target) -> None:
    server, client = fuzz_target.server, fuzz_target.client
    ctx = zmq.Context()
    try:
        rude = ctx.socket(zmq.DEALER)
        rude.linger = 0
        rude.curve_serverkey = server.public_key.encode()
        kp = fuzz_target.keypair
        rude.curve_publickey, rude.curve_secretkey = kp.public.encode(), kp.secret.encode()
        rude.routing_id = unique("rude").encode()
        rude.connect(server.endpoint)
        for _ in range(3):
            rude.send(b"\x00" * (4 * MAX_FRAME))
    finally:
        ctx.destroy(0)
    assert client.call("echo", "fine") == "fine"


def test_a_flood_of_messages_does_not_starve_other_peers(
        fuzz_target: Target) -> None:
    server, client, sock = fuzz_target.server, fuzz_target.client, fuzz_target.sock
    before = server.stats["dropped_malformed"]
    for i in range(2000):
        sock.send(b"\xff not cbor %d" % i)
    assert client.call("echo", "through the flood") == "through the flood"
    wait_for(lambda: server.stats["dropped_malformed"] >= before + 2000, what="the flood to be counted")


def test_oversize_request_and_extra_frames_get_protocol_errors(fuzz_target: Target) -> None:
    sock = fuzz_target.sock
    sock.send(cbor2.dumps({**GOOD, "id": 42, "body": "x" * (MAX_FRAME + 10)}))
    reply = cbor2.loads(sock.recv())
    assert (reply["type"], reply["id"], reply["body"]["code"]) == ("err", 42, "protocol")
    assert "exceeds" in reply["body"]["message"]
    sock.send_multipart([cbor2.dumps({**GOOD, "id": 43}), b"extra"])
    reply = cbor2.loads(sock.recv())
    assert (reply["type"], reply["id"], reply["body"]["code"]) == ("err", 43, "protocol")
    sock.send(cbor2.dumps({**GOOD, "id": 44, "method": "galaxy.missing"}))
    reply = cbor2.loads(sock.recv())
    assert (reply["id"], reply["body"]["code"], reply["body"]["field"]) == (44, "not_found", "method")
