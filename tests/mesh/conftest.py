"""Fixtures for the mesh tests: real CURVE sockets on 127.0.0.1, every node stopped afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from galaxy.mesh import Client, Keypair, KeyRing, Server

FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "liveness": 3}


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def unique(prefix: str) -> str:
    return f"galaxy-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def server_keys() -> Keypair:
    return Keypair.generate()


@pytest.fixture(scope="session")
def client_keys() -> Keypair:
    return Keypair.generate()


@pytest.fixture
def ring(client_keys: Keypair) -> KeyRing:
    keyring = KeyRing()
    keyring.add(client_keys.public, "agent:test")
    return keyring


@pytest.fixture
def make_server(server_keys: Keypair, ring: KeyRing) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(endpoint: str = "tcp://127.0.0.1:0", *, keypair: Keypair | None = None,
             keyring: KeyRing | None = None, start: bool = True, **options: Any) -> Server:
        server = Server(endpoint, keypair or server_keys, ring if keyring is None else keyring,
                        name=unique("server"), **{**FAST, **options})
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def make_client(server_keys: Keypair, client_keys: Keypair) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(server: Server | str, *, identity: str | None = None, keypair: Keypair | None = None,
             server_public: str | None = None, start: bool = True, **options: Any) -> Client:
        endpoint = server if isinstance(server, str) else server.endpoint
        client = Client(endpoint, server_public or server_keys.public, keypair or client_keys,
                        unique("client") if identity is None else identity, name=unique("client"),
                        **{**FAST, "timeout": 2.0, "retries": 0, **options})
        made.append(client)
        return client.start() if start else client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def raw_dealer(server_keys: Keypair, client_keys: Keypair) -> Iterator[Callable[..., zmq.Socket[bytes]]]:
    """A bare CURVE DEALER authorised with the test client key (or ``keypair``): sends whatever bytes
    a test wants, from whatever routing id, as an attacker's own code can."""
    ctx = zmq.Context()

    def make(server: Server, identity: str | None = None, keypair: Keypair | None = None) -> zmq.Socket[bytes]:
        keypair = keypair or client_keys
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = 3000
        sock.sndtimeo = 3000
        sock.curve_serverkey = server.public_key.encode()
        sock.curve_publickey = keypair.public.encode()
        sock.curve_secretkey = keypair.secret.encode()
        sock.routing_id = (identity or unique("raw")).encode()
        sock.connect(server.endpoint)
        return sock

    yield make
    ctx.destroy(0)
