"""Requests and events both ways over one CURVE connection, and how errors travel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from galaxy.errors import Conflict, GalaxyError, InvalidInput, NotFound, Unreachable
from galaxy.mesh import Client, InternalError, PeerInfo, Request, Server
from tests.mesh.conftest import unique, wait_for


def test_round_trip_carries_body_and_authenticated_key(server: Server, make_client: Callable[..., Client],
                                                       client_keys: Any) -> None:
    seen: list[Request] = []

    @server.route("echo")
    def echo(req: Request) -> Any:
        seen.append(req)
        return {"got": req.body}

    client = make_client(server, identity="galaxy-agent-7")
    body = {"cores": 1.5, "tags": ["a", "b"], "blob": b"\x00\xff", "n": None}
    assert client.call("echo", body) == {"got": body}
    req = seen[0]
    assert (req.peer, req.key, req.key_name, req.method) == ("galaxy-agent-7", client_keys.public,
                                                             "agent:test", "echo")


def test_router_side_starts_a_request_to_a_connected_dealer(server: Server,
                                                            make_client: Callable[..., Client]) -> None:
    client = make_client(server, identity="galaxy-agent-9")
    client.route("status", lambda req: {"host": "h9", "asked": req.body, "by": req.key})
    wait_for(lambda: "galaxy-agent-9" in server.peers(), what="the client to register")

    reply = server.request("galaxy-agent-9", "status", [1, 2])
    assert reply == {"host": "h9", "asked": [1, 2], "by": server.public_key}
    futures = [server.request_async("galaxy-agent-9", "status", i) for i in range(20)]
    assert [f.result(5)["asked"] for f in futures] == list(range(20))


def test_request_callback_hands_every_ending_to_done_in_the_io_thread(server: Server,
                                                                     make_client: Callable[..., Client]) -> None:
    client = make_client(server, identity="galaxy-agent-cb")
    client.route("status", lambda req: {"asked": req.body})
    client.route("fail", lambda req: (_ for _ in ()).throw(Conflict("busy", field="id")))
    client.route("slow", lambda req: threading.Event().wait(1.0), blocking=True)
    wait_for(lambda: "galaxy-agent-cb" in server.peers(), what="the client to register")
    ended: dict[str, Any] = {}
    threads: set[str] = set()

    def done(name: str) -> Callable[[Any], None]:
        def record(outcome: Any) -> None:
            threads.add(threading.current_thread().name)
            ended[name] = outcome
        return record

    server.request_callback("galaxy-agent-cb", "status", 7, timeout=5, done=done("answer"))
    server.request_callback("galaxy-agent-cb", "fail", None, timeout=5, done=done("error"))
    server.request_callback("galaxy-agent-cb", "slow", None, timeout=0.2, done=done("timeout"))
    server.request_callback("galaxy-nobody", "status", None, timeout=5, done=done("unreachable"))
    wait_for(lambda: len(ended) == 4, what="four endings")
    assert ended["answer"].result() == {"asked": 7} and ended["answer"].exception() is None
    assert isinstance(ended["error"].exception(), Conflict) and ended["error"].exception().field == "id"
    with pytest.raises(Conflict):
        ended["error"].result()
    assert isinstance(ended["timeout"].exception(), GalaxyError) and "slow" in str(ended["timeout"].exception())
    assert isinstance(ended["unreachable"].exception(), Unreachable)
    assert threads == {server._thread.name}          # the I/O thread: no pool, no Future


def test_a_failing_done_callback_leaves_the_server_serving(server: Server, make_client: Callable[..., Client]) -> None:
    client = make_client(server, identity="galaxy-agent-cb2")
    client.route("status", lambda req: req.body)
    wait_for(lambda: "galaxy-agent-cb2" in server.peers(), what="the client to register")
    server.request_callback("galaxy-agent-cb2", "status", 1, timeout=5, done=lambda outcome: 1 / 0)
    assert server.request("galaxy-agent-cb2", "status", 2, timeout=5) == 2


def test_server_request_to_unknown_peer_is_unreachable(server: Server) -> None:
    with pytest.raises(Unreachable) as err:
        server.request("galaxy-nobody", "status", timeout=1)
    assert err.value.field == "peer"


def test_events_travel_both_ways(server: Server, make_client: Callable[..., Client]) -> None:
    to_server: list[Request] = []
    to_client: list[Request] = []
    server.on_event("report", to_server.append)
    client = make_client(server, identity="galaxy-evt")
    client.on_event("command", to_client.append, blocking=True)

    client.send_event("report", {"pod": "p1"})
    wait_for(lambda: to_server, what="the event at the server")
    assert (to_server[0].body, to_server[0].peer, to_server[0].key_name) == ({"pod": "p1"}, "galaxy-evt",
                                                                              "agent:test")
    server.send_event("galaxy-evt", "command", "stop")
    wait_for(lambda: to_client, what="the event at the client")
    assert to_client[0].body == "stop"


def test_remote_galaxy_error_arrives_as_the_same_type_with_field(server: Server,
                                                                 make_client: Callable[..., Client]) -> None:
    @server.route("submit")
    def submit(req: Request) -> None:
        raise InvalidInput("must be positive", field="resources.cpu")

    @server.route("create", blocking=True)
    def create(req: Request) -> None:
        raise Conflict("job web exists", field="name")

    client = make_client(server)
    with pytest.raises(InvalidInput) as err:
        client.call("submit", {})
    assert (err.value.field, err.value.message) == ("resources.cpu", "must be positive")
    with pytest.raises(Conflict) as conflict:
        client.call("create")
    assert conflict.value.field == "name"


def test_unknown_method_is_not_found_and_bugs_are_internal(server: Server,
                                                          make_client: Callable[..., Client]) -> None:
    @server.route("crash")
    def crash(req: Request) -> None:
        raise KeyError("oops")

    @server.route("unencodable")
    def unencodable(req: Request) -> Any:
        return object()

    client = make_client(server)
    with pytest.raises(NotFound) as err:
        client.call("galaxy.no.such.method")
    assert err.value.field == "method"
    for method in ("crash", "unencodable"):
        with pytest.raises(GalaxyError) as bug:
            client.call(method)
        assert bug.value.code == InternalError.code
    assert client.call_async("galaxy.no.such.method").exception(5) is not None
    assert server.stats["handler_errors"] == 1
    server.route("ok", lambda req: "still serving")
    assert client.call("ok") == "still serving"


def test_blocking_handlers_run_concurrently_on_the_pool(make_server: Callable[..., Server],
                                                        make_client: Callable[..., Client]) -> None:
    server = make_server(workers=4)
    barrier = threading.Barrier(4, timeout=5)

    @server.route("meet", blocking=True)
    def meet(req: Request) -> int:
        barrier.wait()  # only returns once four handlers run at the same time
        return int(req.body)

    server.route("quick", lambda req: "quick")
    client = make_client(server)
    futures = [client.call_async("meet", i) for i in range(4)]
    assert client.call("quick") == "quick"  # the I/O thread is not blocked meanwhile
    assert sorted(f.result(5) for f in futures) == [0, 1, 2, 3]


def test_peer_callbacks_and_peers(server: Server, make_client: Callable[..., Client]) -> None:
    joined: list[PeerInfo] = []
    server.on_peer_joined(joined.append)
    client = make_client(server, identity="galaxy-joiner")
    wait_for(lambda: joined, what="on_peer_joined")
    assert joined[0].identity == "galaxy-joiner" and joined[0].key_name == "agent:test"
    assert set(server.peers()) == {"galaxy-joiner"}
    assert client.connected


def test_ipc_transport(make_server: Callable[..., Server], make_client: Callable[..., Client],
                       tmp_path: Path) -> None:
    server = make_server(f"ipc://{tmp_path}/galaxy-mesh.sock")
    server.route("echo", lambda req: req.body)
    assert server.endpoint == f"ipc://{tmp_path}/galaxy-mesh.sock"
    assert make_client(server).call("echo", "over ipc") == "over ipc"


def test_bad_arguments_fail_locally_with_the_field(server: Server, make_client: Callable[..., Client]) -> None:
    client = make_client(server, max_frame=4096)
    with pytest.raises(InvalidInput) as err:
        client.call("echo", "x" * 5000)
    assert err.value.field == "body"
    with pytest.raises(InvalidInput) as err:
        client.call("echo", object())
    assert err.value.field == "body"
    with pytest.raises(InvalidInput) as err:
        server.route("_mesh.hb", lambda req: None)
    assert err.value.field == "method"
    with pytest.raises(InvalidInput) as err:
        make_client(server, identity="", start=False)
    assert err.value.field == "identity"
    with pytest.raises(InvalidInput) as err:
        make_client(server, server_public="nope", start=False)
    assert err.value.field == "server_public"


def test_bind_failure_and_calls_after_close(make_server: Callable[..., Server],
                                            make_client: Callable[..., Client]) -> None:
    first = make_server()
    with pytest.raises(Conflict) as err:
        make_server(first.endpoint)
    assert err.value.field == "endpoint"
    with pytest.raises(InvalidInput):
        make_server("tcp://127.0.0.1:galaxy")
    client = make_client(first)
    client.close()
    with pytest.raises(Unreachable):
        client.call("echo")


def test_call_from_a_non_blocking_handler_is_refused_not_deadlocked(
        server: Server, make_client: Callable[..., Client]) -> None:
    client = make_client(server, identity=unique("self"))

    @client.route("nested")
    def nested(req: Request) -> str:
        client.call("anything")
        return "unreachable"

    wait_for(lambda: client.identity in server.peers(), what="registration")
    with pytest.raises(InvalidInput):
        server.request(client.identity, "nested", timeout=2)
