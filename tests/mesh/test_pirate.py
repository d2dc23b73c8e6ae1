"""Timeouts, retries with the same id, the reply cache, heartbeats and reconnection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import cbor2
import pytest
import zmq

from galaxy.errors import Timeout, Unreachable
from galaxy.mesh import Client, Keypair, PeerInfo, Request, Server
from tests.mesh.conftest import unique, wait_for


def test_retry_after_a_lost_attempt_runs_the_handler_once(server: Server,
                                                          make_client: Callable[..., Client]) -> None:
    runs: list[int] = []
    release = threading.Event()

    @server.route("slow", blocking=True)
    def slow(req: Request) -> str:
        runs.append(req.id)
        if len(runs) == 1:
            release.wait(5)  # the first attempt outlives the caller's timeout
        return "done"

    client = make_client(server, timeout=0.3, retries=3)
    future = client.call_async("slow")
    wait_for(lambda: client.stats["retries"] >= 1, what="a retry")
    release.set()
    assert future.result(5) == "done"
    assert len(runs) == 1
    assert server.stats["duplicates"] >= 1


def test_duplicate_request_gets_the_cached_reply(server: Server,
                                                 raw_dealer: Callable[..., zmq.Socket[bytes]]) -> None:
    counter = iter(range(1, 100))
    server.route("next", lambda req: next(counter))
    sock = raw_dealer(server)
    request = cbor2.dumps({"v": 1, "id": 77, "type": "req", "method": "next", "body": None})
    replies = []
    for _ in range(3):
        sock.send(request)
        replies.append(cbor2.loads(sock.recv()))
    assert [r["body"] for r in replies] == [1, 1, 1] and {r["id"] for r in replies} == {77}
    sock.send(cbor2.dumps({"v": 1, "id": 78, "type": "req", "method": "next", "body": None}))
    assert cbor2.loads(sock.recv())["body"] == 2
    assert server.stats["duplicates"] == 2


def test_timeout_after_all_retries(server: Server, make_client: Callable[..., Client]) -> None:
    never = threading.Event()
    server.route("hang", lambda req: never.wait(3), blocking=True)
    client = make_client(server, timeout=0.2, retries=2)
    with pytest.raises(Timeout) as err:
        client.call("hang")
    assert err.value.field == "timeout"
    assert client.stats["retries"] == 2 and client.stats["timeouts"] == 1
    never.set()


def test_server_request_times_out(server: Server, make_client: Callable[..., Client]) -> None:
    never = threading.Event()
    client = make_client(server, identity="galaxy-mute")
    client.route("hang", lambda req: never.wait(3), blocking=True)
    wait_for(lambda: "galaxy-mute" in server.peers(), what="registration")
    with pytest.raises(Timeout):
        server.request("galaxy-mute", "hang", timeout=0.2)
    never.set()


_VICTIM = """
import sys, time
from galaxy.mesh import Client, Keypair
client = Client(sys.argv[1], sys.argv[2], Keypair(sys.argv[3], sys.argv[4]), sys.argv[5],
                heartbeat_interval=0.1, liveness=3).start()
client.call("hello")
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def victim_process(server: Server, client_keys: Keypair) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def spawn(identity: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _VICTIM, server.endpoint, server.public_key, client_keys.public,
             client_keys.secret, identity], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_killed_client_is_reported_lost_after_liveness_intervals(
        server: Server, victim_process: Callable[[str], subprocess.Popen[str]]) -> None:
    lost: list[tuple[float, PeerInfo]] = []
    server.on_peer_lost(lambda info: lost.append((time.monotonic(), info)))
    server.route("hello", lambda req: "hi")
    identity = unique("victim")
    proc = victim_process(identity)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert identity in server.peers()

    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    wait_for(lambda: lost, timeout=5, what="on_peer_lost")
    when, info = lost[0]
    # liveness 3 x 0.1 s: the last heartbeat was at most one interval before the kill
    assert 0.15 <= when - killed <= 0.3 + 1.0
    assert info.identity == identity and identity not in server.peers()


def test_server_restart_on_the_same_endpoint_is_found_again(
        make_server: Callable[..., Server], make_client: Callable[..., Client]) -> None:
    first = make_server()
    first.route("who", lambda req: "first")
    endpoint = first.endpoint
    client = make_client(first, timeout=1.0, retries=5)
    events: list[str] = []
    client.on_server_lost(lambda: events.append("lost"))
    client.on_server_joined(lambda: events.append("joined"))
    assert client.call("who") == "first"
    assert client.connected

    first.stop()
    wait_for(lambda: not client.connected, what="the client to notice the server is gone")
    second = make_server(endpoint)
    second.route("who", lambda req: "second")
    assert client.call("who") == "second"
    wait_for(lambda: events == ["joined", "lost", "joined"], what="lost/joined callbacks")


def test_connect_to_moves_calls_in_flight_to_the_new_server(
        make_server: Callable[..., Server], make_client: Callable[..., Client]) -> None:
    old = make_server()
    old_answer = threading.Event()
    old.route("who", lambda req: old_answer.wait(3) and "old", blocking=True)  # a standby that stalls
    new = make_server(keypair=Keypair.generate())
    new.route("who", lambda req: "new")
    client = make_client(old, timeout=5.0, retries=0)
    wait_for(lambda: client.connected, what="the first connection")

    in_flight = client.call_async("who")
    client.connect_to("tcp://127.0.0.1:galaxy-not-a-port", new.public_key)  # refused, old link kept
    client.connect_to(new.endpoint, new.public_key)
    assert in_flight.result(3) == "new"
    assert client.call("who") == "new"
    assert client.endpoint == new.endpoint
    assert client.stats["loop_errors"] == 0
    old_answer.set()


def test_close_fails_calls_in_flight(server: Server, make_client: Callable[..., Client]) -> None:
    never = threading.Event()
    server.route("hang", lambda req: never.wait(3), blocking=True)
    client = make_client(server, timeout=5.0)
    future = client.call_async("hang")
    wait_for(lambda: client.stats["requests_sent"] >= 1, what="the request to go out")
    client.close()
    assert isinstance(future.exception(3), Unreachable)
    never.set()


def test_heartbeats_keep_an_idle_connection_alive(server: Server, make_client: Callable[..., Client]) -> None:
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    client = make_client(server, identity="galaxy-idle")
    wait_for(lambda: server.stats["heartbeats"] >= 10, what="ten heartbeats")  # ~1 s, 3x liveness
    assert lost == [] and client.connected and "galaxy-idle" in server.peers()
    assert client.stats["heartbeats"] >= 5  # the server answers them



def test_a_peer_the_server_talks_to_needs_no_heartbeat_echo(server: Server,
                                                           make_client: Callable[..., Client]) -> None:
    """Server messages count as life, so the server skips echoes to a peer it keeps telling things
    (events: the peer answers nothing, so it still heartbeats); the peer stays connected."""
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    client = make_client(server, identity="galaxy-busy")
    client.on_event("news", lambda req: None)
    wait_for(lambda: "galaxy-busy" in server.peers(), what="the client to join")
    deadline = time.monotonic() + 30
    while server.stats["heartbeats"] < 10 and time.monotonic() < deadline:
        server.send_event("galaxy-busy", "news", {})
        time.sleep(0.01)
    assert server.stats["heartbeats_implied"] >= 5
    assert lost == [] and client.connected and "galaxy-busy" in server.peers()


def test_a_client_that_only_sends_events_still_hears_the_server(server: Server,
                                                                make_client: Callable[..., Client]) -> None:
    """Sending alone does not tell a client the server lives: one that only fires events (an Agent
    reporting a burst of container changes, while ResMan sends it nothing) still heartbeats once an
    interval for the echo, so it never takes a live server for lost."""
    lost: list[str] = []
    seen: list[Request] = []
    server.on_event("state", seen.append)
    client = make_client(server, identity="galaxy-chatty")
    client.on_server_lost(lambda: lost.append("lost"))
    wait_for(lambda: "galaxy-chatty" in server.peers(), what="the client to join")
    ended = time.monotonic() + 1.0                 # ten intervals, three times the liveness
    while time.monotonic() < ended:
        client.send_event("state", {"id": "c1"})
        time.sleep(0.01)
    assert len(seen) > 50 and lost == [] and client.connected
    assert 3 <= client.stats["heartbeats"] <= 15   # echoes: about one per interval, not one per tick


def test_a_peer_that_answers_the_server_sends_no_heartbeats(server: Server,
                                                            make_client: Callable[..., Client]) -> None:
    """Anything a client sends counts as life: a peer answering requests (an Agent polled every
    interval) needs no heartbeats of its own, and neither side takes the other for lost."""
    lost: list[PeerInfo] = []
    server.on_peer_lost(lost.append)
    client = make_client(server, identity="galaxy-answers")
    client.route("ping", lambda req: "pong")
    wait_for(lambda: "galaxy-answers" in server.peers(), what="the client to join")
    before = server.stats["heartbeats"]
    ended = time.monotonic() + 1.0                 # ten intervals, three times the liveness
    while time.monotonic() < ended:
        assert server.request("galaxy-answers", "ping", {}, timeout=2.0) == "pong"
        time.sleep(0.02)
    assert server.stats["heartbeats"] - before <= 1     # at most one already due when the pings began
    assert lost == [] and client.connected and "galaxy-answers" in server.peers()
